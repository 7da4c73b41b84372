"""Tenant isolation and hostile input on the read side: another tenant's keys and tokens
get 401, and crafted selects, filters and names (quotes, semicolons, schema-qualified
names, JSON paths, very long strings) never get a 500, another tenant's rows or a row the
caller's rules hide."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from api_tenants import SERVICE, module_api_tenant


@pytest.fixture(scope="module")
def pair(django_db_setup, django_db_blocker):
    """Tenants A and B, both serving todo.yaml; A's rows are marked SECRET-A."""
    with module_api_tenant(django_db_blocker, "todo") as a, module_api_tenant(django_db_blocker, "todo") as b:
        a.alice = a.user("alice@example.com", "member")
        a.mallory = a.user("mallory@example.com", "member")
        a.insert("Todo", owner=a.alice.id, title="SECRET-A alice's todo")
        b.mallory = b.user("mallory@example.com", "member")
        b.insert("Todo", owner=b.mallory.id, title="mallory's own todo")
        yield a, b


def test_another_tenants_keys_and_tokens_are_refused(pair, db):
    a, b = pair
    for headers in [
        {"apikey": b.keys["anon"]},
        {"apikey": b.keys["service"]},
        {"apikey": b.keys["service"], "Authorization": f"Bearer {b.keys['service']}"},
        {"apikey": a.keys["anon"], "Authorization": f"Bearer {b.mallory.token}"},
        {"apikey": b.keys["anon"], "Authorization": f"Bearer {a.alice.token}"},
        {"Authorization": f"Bearer {b.keys['service']}"},
        {"apikey": a.keys["anon"], "Authorization": "Bearer not-a-token"},
        {},
    ]:
        r = a.get("Todo?select=title", as_=headers)
        assert r.status_code == 401, (headers, r.content)
        assert b"SECRET" not in r.content


def test_rows_of_the_same_tenant_are_hidden_by_the_rule(pair, db):
    a, _ = pair
    assert a.get("Todo?select=title", as_=a.mallory).json() == []
    assert a.get("Todo?select=title", as_=a.alice).json() == [{"title": "SECRET-A alice's todo"}]
    assert len(a.get("Todo?select=title", as_=SERVICE).json()) == 1


def _hostile(a, b):
    schema = f"t_{a.tenant.id}"
    return [
        # names that try to leave the schema or the entity
        f"{schema}.Todo?select=title", f'"{schema}"."Todo"?select=title', "public.tenants_tenant",
        "tenants_tenant", "_users", "_audit", "pg_catalog.pg_roles", "Todo;DROP TABLE Todo", "Todo%00",
        "..%2F..%2Fapi%2Fv1%2Ftenants", "Todo?select=*,_users(*)", "Todo?select=*,owner(*)",
        f"Todo?select=title,{schema}.Todo(*)", "Todo?select=title,tenants_tenant(*)",
        "Todo?select=password_hash", "Todo?select=owner->>password_hash", "Todo?select=_search",
        # quotes, semicolons, comments in every position
        "Todo?select=title\";select 1;--", "Todo?select=\"title\"\"\",done", "Todo?select=a\"b:title",
        "Todo?title=eq.'; DROP TABLE \"Todo\"; --", "Todo?title=eq.%27%20OR%201%3D1%20--",
        "Todo?or=(title.eq.x,id.not.is.null);--)", "Todo?order=title;DELETE FROM Todo",
        "Todo?order=title.desc,(select 1)", "Todo?title=in.(\"a\"\",b)", "Todo?title=like.%25%25%25",
        "Todo?select=title::text;drop", "Todo?select=title::pg_catalog.text",
        "Todo?title=fts(pg_catalog.english).x", "Todo?title=fts.'a'%3A*%20%26%20!b",
        "Todo?title=eq.%25(p1)s", "Todo?select=%25(p1)s:title", "Todo?select=x%25s:title",
        "Todo?select=title->>%25s", "Todo?title->>%25(auth.id)s=eq.1",
        # JSON paths on non-json fields, odd keys
        "Todo?select=title->a->>b", "Todo?title->>a=eq.1", "Todo?select=due->0",
        # ids and other typed values that do not parse
        "Todo?id=eq.not-a-uuid", "Todo?due=gt.31-31-2020", "Todo?done=eq.maybe", "Todo?id=in.(1,2)",
        f"Todo?owner=eq.{a.alice.id}", "Todo?owner=neq.00000000-0000-0000-0000-000000000000",
        # very long and very deep
        "Todo?title=eq." + "x" * 60000, "Todo?select=" + ",".join(["title"] * 400),
        "Todo?or=(" + ",".join(f"title.eq.{i}" for i in range(400)) + ")",
        "Todo?select=" + "a:" * 50 + "title", "Todo?title=in.(" + ",".join(["x"] * 5000) + ")",
        "Todo?title=match." + "(a*)*" * 50 + "b", "Todo?title=like." + "%25_" * 2000,
        "Todo?limit=9223372036854775807", "Todo?offset=99999999999999999",
        # unicode
        "Todo?title=eq.%F0%9F%92%A9", "Todo?select=t%C3%AFtle", "Todo?%E2%80%AEtitle=eq.x",
    ]


def test_hostile_requests_never_500_nor_leak(pair, db):
    a, b = pair
    for path in _hostile(a, b):
        for api, caller in [(b, b.mallory), (a, a.mallory), (a, None)]:
            url = f"/t/{api.slug}/rest/v1/{path}"
            r = api.get(url, as_=caller)
            assert r.status_code < 500, (path[:200], r.status_code, r.content[:300])
            assert b"SECRET" not in r.content, (path[:200], r.content[:300])
            if r.status_code >= 400:
                body = r.json()
                assert set(body) == {"code", "message", "details", "hint"}, body


def test_a_caller_cannot_name_another_tenants_schema(pair, db):
    a, b = pair
    r = b.get(quote(f"t_{a.tenant.id}.Todo", safe="") + "?select=title", as_=SERVICE)
    assert r.status_code == 404 and r.json()["code"] == "PGRST205"
