"""Property tests: the checker never crashes, and compiled SQL is always safe to run.

1. Random token soup and random (untyped) expression trees over the example definitions'
   names, in every kind of scope: checking yields DefinitionErrors with known codes, never
   an exception; whatever passes also compiles, and the SQL is safe (see `assert_safe`).
2. Random well-typed rules over the test definition: they check without errors, compile to
   safe SQL, and Postgres evaluates them to true or false (never NULL, never an error).
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from psycopg import errors as pg_errors, sql

from expr_db import IDS, run
from expr_defs import expr, shop
from runtime.expressions import CODES, Scope, check_expression, compile_expression, compile_rule
from runtime.expressions.compiled import path_name
from runtime.expressions import types as T
from runtime.expressions.scope import (
    action_scope, entity_scope, event_type, http_result_type, run_scope,
)

PLACEHOLDER = re.compile(r"%\(([^)]*)\)s")


DEFINITION = shop()


def _definitions():
    found = [DEFINITION]
    try:
        from runtime.definition import load_definition
    except ImportError:  # pragma: no cover - the parser is written in parallel
        return found
    for path in sorted((Path(__file__).parents[3] / "examples").glob("*.yaml")):
        found.append(load_definition(path.read_text(encoding="utf-8"), "application/yaml"))
    return found


DEFINITIONS = _definitions()


def _scopes(definition):
    scopes = [entity_scope(name, f"a rule of {name}") for name in definition.entities]
    steps = [action_scope(definition, name) for name in definition.actions]
    steps += [run_scope(definition, "job", name).with_secrets() for name in definition.jobs]
    steps += [run_scope(definition, "workflow", name) for name in definition.workflows]
    entity = sorted(definition.entities)[0]
    verdict = T.Obj("an ai result", (("x", T.STRING), ("n", T.INT)))
    for scope in steps or [Scope("steps", input={})]:
        # every kind of step result, so that the trees below meet them often
        scope = scope.bind("contact", http_result_type()).bind("verdict", verdict)
        scope = scope.bind("order", T.Row(entity)).bind("open", T.Collection(T.Row(entity)))
        scopes += [scope, scope.with_event(event_type(definition, f"{entity}.created"))]
    return scopes


CASES = [(d, s) for d in DEFINITIONS for s in _scopes(d)]
NAMES = sorted({n for d in DEFINITIONS for e in d.entities.values() for n in (e.name, *e.fields)}
               | {f.related_name for d in DEFINITIONS for e in d.entities.values()
                  for f in e.fields.values() if f.related_name}
               | {"record", "auth", "input", "now", "secrets", "event", "contact", "x", "id", "email",
                  "role", "body", "status", "MAIL_KEY", "has", "type", "int", "verdict", "order",
                  "open", "n"})
FUNCTIONS = ["exists", "all", "exists_one", "filter", "map", "size", "sum", "min", "max", "lower",
             "upper", "startsWith", "endsWith", "contains", "matches", "duration", "timestamp",
             "string", "has", "frob"]
LITERALS = ["1", "-2", "0x10", "2.5", "1e3", "'a'", "'%s'", "\"q\"", "r'\\d'", "true", "false", "null",
            "'24h'", "'2026-01-01T00:00:00Z'", "b'x'", "1u", "'''ml'''", "99999999999999999999"]
TOKENS = NAMES + FUNCTIONS + LITERALS + list("()[]{}.,?:!-+*/%<>") + [
    "==", "!=", "<=", ">=", "&&", "||", " in ", "'", "\"", "\\", "$"]


def assert_safe(compiled, definition, alias=None):
    """No schema anywhere, no value inlined, no stray % for psycopg to misread."""
    text = compiled.as_string()
    names = PLACEHOLDER.findall(text)
    declared = set(compiled.params) | {path_name(n) for n in compiled.needs}
    assert set(names) == declared, (names, declared)
    bare = PLACEHOLDER.sub("", text)
    assert "%" not in bare
    assert "'" not in bare.replace("'{}'", ""), bare      # strings only travel as parameters
    known = {"_users", alias, "v", "n"} | set(definition.entities)   # v, n: columns of unnest()
    known |= {f for e in definition.entities.values() for f in e.fields}
    for ident in re.findall(r'"([^"]*)"', bare):
        assert ident in known or re.fullmatch(r"_x\d+", ident), ident
    for first, _ in re.findall(r'"([^"]+)"\."([^"]+)"', bare):
        assert first == alias or re.fullmatch(r"_x\d+", first), first   # alias.column, never schema.table
    assert not re.search(r'"\."[^"]*"\."', bare)
    assert not re.search(r"\b(public|pg_catalog|information_schema|pg_temp)\b", bare, re.I)


def _check_and_compile(definition, scope, source, pg=None):
    for condition in (True, False):
        checked = check_expression(definition, expr(source, "/fuzz"), scope, condition=condition)
        for error in checked.errors:
            assert error.code in CODES and error.code != "expr.internal", error
            assert error.path == "/fuzz" and error.message
        if not checked.errors:
            alias = "r" if scope.record else None
            compiled = compile_expression(definition, expr(source), scope, alias=alias, condition=condition)
            assert_safe(compiled, definition, alias)
            if pg is not None and definition is DEFINITION:
                _execute(pg, compiled, scope.record)


def _execute(pg, compiled, entity):
    """Postgres accepts the SQL (all runtime values NULL: an anonymous caller, empty input)."""
    query = sql.SQL("SELECT {}").format(compiled.sql)
    if entity:
        query = sql.SQL("{} FROM {} AS r").format(query, sql.Identifier(entity))
    try:
        run(pg, query, compiled.bind())
    except (pg_errors.NumericValueOutOfRange, pg_errors.InvalidRegularExpression):
        pass        # values Postgres is right to refuse at run time; the SQL itself was fine


token_soup = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=30).map(" ".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.integers(0, len(CASES) - 1), source=st.one_of(token_soup, st.text(max_size=40)))
def test_random_text_never_crashes_the_checker(pg, case, source):
    _check_and_compile(*CASES[case], source, pg)


def _trees():
    leaf = st.one_of(st.sampled_from(NAMES), st.sampled_from(LITERALS))

    def extend(inner):
        args = st.lists(inner, max_size=3).map(", ".join)
        return st.one_of(
            st.tuples(inner, st.sampled_from(NAMES)).map(lambda t: f"{t[0]}.{t[1]}"),
            st.tuples(inner, st.sampled_from(FUNCTIONS), args).map(lambda t: f"{t[0]}.{t[1]}({t[2]})"),
            st.tuples(st.sampled_from(FUNCTIONS), args).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(inner, st.sampled_from(["exists", "all", "filter", "map", "exists_one"]),
                      st.sampled_from(["x", "o", "record", "m"]), inner).map(
                lambda t: f"{t[0]}.{t[1]}({t[2]}, {t[3]})"),
            st.tuples(inner, st.sampled_from(["==", "!=", "<", ">=", "+", "-", "*", "/", "%", "&&",
                                              "||", "in"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(["!", "-"]), inner).map("".join),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
            st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
        )

    return st.recursive(leaf, extend, max_leaves=12)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.integers(0, len(CASES) - 1), source=_trees())
def test_random_expression_trees_never_crash_the_checker(pg, case, source):
    _check_and_compile(*CASES[case], source, pg)


# -- well-typed rules, evaluated by Postgres -------------------------------------------

def _cel_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


STRINGS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                  max_size=8).map(_cel_string)


def _rules(var: str | None):
    nums = ["record.total", "record.priority", "record.weight", "record.customer.credit_limit",
            "record.lines.size()", "size(record.note)", "record.lines.map(l, l.quantity).sum()",
            "record.customer.orders.map(o, o.total).sum()"]
    texts = ["record.note", "record.customer.email", "record.customer.name", "auth.role", "auth.email",
             "record.owner.email", "record.customer.account.role"]
    bools = ["true", "false", "record.receipt_sent", "auth == null", "record.note == null",
             "record.owner == auth.id", "record.customer.account == auth.id",
             "record.status in ['placed', 'paid']", "record.priority in [1, 2]",
             "record.placed_at < now - duration('1h')", "record.due < timestamp('2026-01-11T00:00:00Z')"]
    if var == "l":      # an OrderLine
        nums += [f"{var}.quantity", f"{var}.unit_price", f"{var}.product.stock"]
        bools += [f"{var}.product.sku == 'PEN'"]
    elif var == "m":    # a Membership
        bools += [f"{var}.role == 'admin'", f"{var}.customer == record.customer"]
    num = st.deferred(lambda: st.one_of(
        st.sampled_from(nums), st.integers(-20, 20).map(str), st.sampled_from(["2.5", "0.0", "1e2"]),
        st.tuples(num, st.sampled_from("+-*/"), num).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(boolean, num, num).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})")))
    text = st.deferred(lambda: st.one_of(
        st.sampled_from(texts), STRINGS,
        st.tuples(text, text).map(lambda t: f"({t[0]} + {t[1]})"),
        st.tuples(st.sampled_from(["lower", "upper"]), text).map(lambda t: f"{t[0]}({t[1]})")))
    macros = [] if var else [
        st.tuples(st.sampled_from(["exists", "all", "exists_one"]), _rules("l")).map(
            lambda t: f"record.lines.{t[0]}(l, {t[1]})"),
        _rules("m").map(lambda b: f"Membership.exists(m, m.user == auth.id && {b})")]
    boolean = st.deferred(lambda: st.one_of(
        st.sampled_from(bools),
        st.tuples(num, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), num).map(" ".join),
        st.tuples(text, st.sampled_from(["==", "!=", "<"]), text).map(" ".join),
        st.tuples(text, st.sampled_from(["startsWith", "endsWith", "contains"]), text).map(
            lambda t: f"{t[0]}.{t[1]}({t[2]})"),
        text.map(lambda s: f"{s}.matches('^[a-z]+$')"),
        boolean.map(lambda b: f"!({b})"),
        st.tuples(boolean, st.sampled_from(["&&", "||"]), boolean).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(boolean, boolean, boolean).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        *macros))
    return boolean


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=_rules(None), row=st.sampled_from(["o_placed", "o_paid", "o_draft", "o_carol"]),
       caller=st.sampled_from([None, "alice", "bob"]))
def test_well_typed_rules_compile_and_evaluate_to_a_boolean(pg, source, row, caller):
    checked = check_expression(DEFINITION, expr(source), entity_scope("Order", "a rule"), condition=True)
    assert checked.errors == [], source
    rule = compile_rule(DEFINITION, "Order", expr(source), "r")
    assert_safe(rule, DEFINITION, "r")
    auth = None if caller is None else {"id": IDS[caller], "email": f"{caller}@example.com", "role": "staff"}
    query = sql.SQL("SELECT {} FROM {} AS r WHERE r.id = %(rid)s").format(rule.sql, sql.Identifier("Order"))
    try:
        result = run(pg, query, {**rule.bind(auth=auth), "rid": IDS[row]})
    except pg_errors.NumericValueOutOfRange:
        return          # a product of random numbers left bigint's range: Postgres is right to refuse
    assert result in (True, False)
