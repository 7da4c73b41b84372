"""The PostgREST URL grammar as tables: a query string in, typed values out; malformed
input in, 400 with its code out. No database: the grammar does not know the definition."""

from __future__ import annotations

import doctest
from urllib.parse import parse_qsl

import pytest

from runtime.api import grammar, read, request as request_module, respond
from runtime.api.errors import ApiError
from runtime.api.grammar import parse_query
from runtime.api.request import (
    Column, Embed, FieldRef, Filter, JsonStep, Logic, OrderTerm, Preferences, Range, Star,
)


def parse(qs: str, method: str = "GET", **headers):
    return parse_query(method, parse_qsl(qs, keep_blank_values=True), headers)


def col(name, *path, alias=None, cast=None):
    return Column(FieldRef(name, tuple(path)), alias, cast)


def f(name, op, value, negated=False, modifier=None, path=()):
    return Filter(FieldRef(name, tuple(path)), op, value, negated, modifier)


SELECTS = [
    ("", (Star(),)),
    ("select=*", (Star(),)),
    ("select=id,title", (col("id"), col("title"))),
    ("select= id , title ", (col("id"), col("title"))),
    ("select=t:title", (col("title", alias="t"),)),
    ("select=total::text", (col("total", cast="text"),)),
    ("select=n:total::int", (col("total", alias="n", cast="int"),)),
    ("select=meta->plan", (col("meta", JsonStep("->", "plan")),)),
    ("select=meta->tags->>0", (col("meta", JsonStep("->", "tags"), JsonStep("->>", 0)),)),
    ('select="title"', (col("title"),)),
    ("select=*,customer(*)", (Star(), Embed("customer", (Star(),)))),
    ("select=buyer:customer(name)", (Embed("customer", (col("name"),), alias="buyer"),)),
    ("select=orders!inner(id)", (Embed("orders", (col("id"),), inner=True),)),
    ("select=orders!left(id)", (Embed("orders", (col("id"),)),)),
    ("select=Author!reviewer(name)", (Embed("Author", (col("name"),), hint="reviewer"),)),
    ("select=Author!reviewer!inner(name)", (Embed("Author", (col("name"),), hint="reviewer", inner=True),)),
    ("select=name,orders(id,lines(quantity,product(sku)))",
     (col("name"), Embed("orders", (col("id"), Embed("lines", (col("quantity"), Embed("product", (col("sku"),)))))))),
    ("select=id,customer!inner()", (col("id"), Embed("customer", (), inner=True))),
]


@pytest.mark.parametrize("qs, expected", SELECTS, ids=[s for s, _ in SELECTS])
def test_it_parses_select(qs, expected):
    assert parse(qs).select == expected


FILTERS = [
    ("id=eq.5", [((), f("id", "eq", "5"))]),
    ("title=eq.", [((), f("title", "eq", ""))]),
    ("title=eq.a.b.c", [((), f("title", "eq", "a.b.c"))]),
    ('title=eq."quoted"', [((), f("title", "eq", '"quoted"'))]),       # quotes are literal at top level
    ("age=not.gte.18", [((), f("age", "gte", "18", True))]),
    ("done=is.null", [((), f("done", "is", "null"))]),
    ("done=is.TRUE", [((), f("done", "is", "true"))]),
    ("done=not.is.null", [((), f("done", "is", "null", True))]),
    ("done=is.not_null", [((), f("done", "is", "not_null"))]),
    ("id=in.(1,2,3)", [((), f("id", "in", ("1", "2", "3")))]),
    ('name=in.("a,b",c,"d\\"e")', [((), f("name", "in", ("a,b", "c", 'd"e')))]),
    ("id=in.()", [((), f("id", "in", ()))]),
    ("name=like.*mug*", [((), f("name", "like", "*mug*"))]),
    ("name=ilike(any).{a*,*b}", [((), f("name", "ilike", ("a*", "*b"), modifier="any"))]),
    ("meta=cs.{\"a\":1}", [((), f("meta", "cs", '{"a":1}'))]),
    ("title=fts.cat %26 dog", [((), f("title", "fts", "cat & dog"))]),
    ("title=wfts(french).chat", [((), f("title", "wfts", "chat", modifier="french"))]),
    ("title=plfts.a b", [((), f("title", "plfts", "a b"))]),
    ("meta->>plan=eq.pro", [((), f("meta", "eq", "pro", path=(JsonStep("->>", "plan"),)))]),
    ("customer.name=eq.Ann", [(("customer",), f("name", "eq", "Ann"))]),
    ("lines.product.sku=eq.x", [(("lines", "product"), f("sku", "eq", "x"))]),
    ("id=gt.1&id=lt.5", [((), f("id", "gt", "1")), ((), f("id", "lt", "5"))]),
    ("or=(a.eq.1,b.gt.2)", [((), Logic("or", (f("a", "eq", "1"), f("b", "gt", "2"))))]),
    ("not.or=(a.eq.1)", [((), Logic("or", (f("a", "eq", "1"),), negated=True))]),
    ("and=(a.not.eq.1,or(b.is.null,c.in.(1,2)))",
     [((), Logic("and", (f("a", "eq", "1", True), Logic("or", (f("b", "is", "null"), f("c", "in", ("1", "2")))))))]),
    ('or=(title.eq."a,b",title.like."*\\"x*")', [((), Logic("or", (f("title", "eq", "a,b"), f("title", "like", '*"x*'))))]),
    ("orders.or=(status.eq.paid,total.gt.10)",
     [(("orders",), Logic("or", (f("status", "eq", "paid"), f("total", "gt", "10"))))]),
    ("orders.not.and=(status.eq.paid)", [(("orders",), Logic("and", (f("status", "eq", "paid"),), negated=True))]),
    ("select=id&limit=1&apikey=x&order=id", []),
]


@pytest.mark.parametrize("qs, expected", FILTERS, ids=[s for s, _ in FILTERS])
def test_it_parses_filters(qs, expected):
    assert list(parse(qs).conditions) == expected


ORDERS = [
    ("order=id", ((), (OrderTerm(FieldRef("id")),))),
    ("order=due.desc.nullslast,title.asc", ((), (OrderTerm(FieldRef("due"), True, "last"),
                                                 OrderTerm(FieldRef("title"))))),
    ("order=due.nullsfirst", ((), (OrderTerm(FieldRef("due"), False, "first"),))),
    ("order=meta->>n.desc", ((), (OrderTerm(FieldRef("meta", (JsonStep("->>", "n"),)), True),))),
    ("order=customer(name).desc", ((), (OrderTerm(FieldRef("name"), True, relation="customer"),))),
    ("orders.order=total.desc", (("orders",), (OrderTerm(FieldRef("total"), True),))),
]


@pytest.mark.parametrize("qs, expected", ORDERS, ids=[s for s, _ in ORDERS])
def test_it_parses_order(qs, expected):
    assert parse(qs).orders == (expected,)


RANGES = [
    ("limit=10", {}, {(): Range(0, 10)}),
    ("limit=10&offset=20", {}, {(): Range(20, 10)}),
    ("offset=5", {}, {(): Range(5, None)}),
    ("orders.limit=2", {}, {("orders",): Range(0, 2)}),
    ("", {"Range": "0-9", "Range-Unit": "items"}, {(): Range(0, 10)}),
    ("limit=5", {"Range": "2-20"}, {(): Range(2, 3)}),
    ("", {"Range": "bogus"}, {}),
]


@pytest.mark.parametrize("qs, headers, expected", RANGES, ids=[f"{s} {h}" for s, h, _ in RANGES])
def test_it_parses_ranges(qs, headers, expected):
    assert dict(parse(qs, **headers).ranges) == expected


def test_it_reads_prefer_accept_columns_and_on_conflict():
    r = parse("columns=title,done&on_conflict=sku", "POST",
              Prefer="return=representation,resolution=merge-duplicates, missing=default",
              Accept="application/vnd.pgrst.object+json")
    assert r.preferences == Preferences(return_="representation", resolution="merge-duplicates", missing="default")
    assert r.single and r.columns == ("title", "done") and r.on_conflict == ("sku",)
    assert parse("", Prefer="count=exact").preferences.count == "exact"
    assert parse("", Accept="application/json").single is False


MALFORMED = [
    ("select=id,", "PGRST100"),
    ("select=id,,title", "PGRST100"),
    ("select=customer(name", "PGRST100"),
    ("select=customer(name))", "PGRST100"),
    ("select=a:b:c", "PGRST100"),
    ("select=1bad:title", "PGRST100"),
    ("select=title::", "PGRST100"),
    ("select=...customer(name)", "PGRST100"),
    ("select=title.sum()", "PGRST100"),
    ("select=a!b!c!d(x)", "PGRST100"),
    ("select=" + "a(" * 40 + "b" + ")" * 40, "PGRST100"),
    ("id=5", "PGRST100"),
    ("id=eq", "PGRST100"),
    ("id=equals.5", "PGRST100"),
    ("id=in.1,2", "PGRST100"),
    ("id=in.(1,2", "PGRST100"),
    ("done=is.maybe", "PGRST100"),
    ("id=eq(any).5", "PGRST100"),
    ("id=fts().x", "PGRST100"),
    ("id=is(x).null", "PGRST100"),
    ("or=a.eq.1", "PGRST100"),
    ("or=(a.eq.1", "PGRST100"),
    ("or=(a.eq.1))", "PGRST100"),
    ("or=(a)", "PGRST100"),
    ("or=()", "PGRST100"),
    ('or=(a.eq."x)', "PGRST100"),
    ("or=" + "(or" * 40 + "(a.eq.1" + ")" * 41, "PGRST100"),
    ("order=id.up", "PGRST100"),
    ("order=id.desc.desc", "PGRST100"),
    ("order=", "PGRST100"),
    ("order=id,", "PGRST100"),
    ("limit=-1", "PGRST100"),
    ("limit=ten", "PGRST100"),
    ("offset=1e3", "PGRST100"),
    ("limit=99999999999999999999999", "PGRST100"),
    (".eq=1", "PGRST100"),
    ("a..b=eq.1", "PGRST100"),
]


@pytest.mark.parametrize("qs, code", MALFORMED, ids=[s[:60] for s, _ in MALFORMED])
def test_it_refuses_malformed_input_with_400(qs, code):
    with pytest.raises(ApiError) as caught:
        parse(qs)
    assert caught.value.status == 400
    assert caught.value.code == code
    assert caught.value.message


def test_it_refuses_unknown_preferences_only_when_strict():
    assert parse("", Prefer="count=many").preferences.invalid == ("count=many",)
    with pytest.raises(ApiError) as caught:
        parse("", Prefer="handling=strict, count=many")
    assert (caught.value.status, caught.value.code) == (400, "PGRST122")


def test_it_answers_406_for_media_types_it_cannot_produce():
    with pytest.raises(ApiError) as caught:
        parse("", Accept="text/csv")
    assert (caught.value.status, caught.value.code) == (406, "PGRST107")


@pytest.mark.parametrize("module", [grammar, request_module, respond, read])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def request_for(query_string: str):
    from django.test import RequestFactory

    return RequestFactory().get("/t/x/rest/v1/Todo", QUERY_STRING=query_string)


def test_the_query_string_is_read_as_django_reads_it():
    from django.http import QueryDict

    for qs in ("select=*&title=eq.caf%C3%A9&a=&b", "title=eq.%ff%fe", "x=1&x=2&y=%20+z", "a.b=eq.1;c"):
        expected = [(k, v) for k, vs in QueryDict(qs.encode("iso-8859-1")).lists() for v in vs]
        assert sorted(grammar.query_items(request_for(qs))) == sorted(expected), qs


def test_too_many_parameters_or_a_nul_are_refused_with_400(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    with pytest.raises(ApiError) as refused:
        grammar.parse_request(request_for("&".join(f"f{n}=eq.{n}" for n in range(11))))
    assert refused.value.status == 400 and "at most 10" in refused.value.message
    assert grammar.parse_request(request_for("&".join(f"f{n}=eq.{n}" for n in range(10)))).conditions
    with pytest.raises(ApiError) as refused:
        grammar.parse_request(request_for("title=eq.a%00b"))
    assert refused.value.status == 400


def test_parts_parsed_once_are_the_same_answer_and_refusals_are_not_remembered():
    first = parse("select=id,title&order=due.desc&title=eq.a", Prefer="count=exact")
    again = parse("select=id,title&order=due.desc&title=eq.b", Prefer="count=exact")
    assert first.select is again.select and first.orders == again.orders
    assert again.conditions[0][1].value == "b"
    for _ in range(2):
        with pytest.raises(ApiError):
            parse("select=id,,title")
