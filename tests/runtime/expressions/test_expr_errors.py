"""Type errors: (scope, expression, code, a piece of the message) in, one error out.

Scopes: `rule` is an entity rule of Order (record, auth, entities; no input), `action` the
`add_to_order` action (input), `job` a job step without secrets, `http` an http step value.
The invalid definitions under fixtures/invalid/ are the same errors in whole documents,
loaded through the real definition loader; together they cover every error code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from expr_defs import expr, shop
from runtime.definition.model import DefinitionError
from runtime.expressions import CODES, Scope, action_scope, check_expression, entity_scope
from runtime.expressions import types as T

DEFINITION = shop()
SCOPES = {
    "rule": entity_scope("Order", "the read rule of Order"),
    "action": action_scope(DEFINITION, "add_to_order"),
    "job": Scope("job j", input={"record": T.Row("Order")}, input_owner="job j"),
    "http": Scope("job j", input={}, input_owner="job j", secrets=True),
    "wait": Scope("workflow w", input={}, input_owner="workflow w").with_event(
        T.Obj("event Order.paid", (("record", T.Row("Order")),))),
}

ERRORS = [
    ("rule", "record.customer.emial == 'x'", "expr.unknown_field", "Customer has no field 'emial' (fields: id, account, name, email"),
    ("rule", "record.totl > 0", "expr.unknown_field", "did you mean 'total'?"),
    ("rule", "auth.name == 'x'", "expr.unknown_field", "a user has no field 'name' (fields: id, email, role)"),
    ("rule", "record.owner.name == 'x'", "expr.unknown_field", "a user has no field 'name'"),
    ("action", "input.qty > 0", "expr.unknown_field", "action add_to_order has no input 'qty' (inputs: order, product"),
    ("action", "input.order.customer.emial == 'x'", "expr.unknown_field", "Customer has no field 'emial'"),
    ("rule", "foo == 1", "expr.unknown_name", "foo is not available in the read rule of Order (names: auth, now, record"),
    ("action", "record.total > 0", "expr.unknown_name", "record is not available in action add_to_order"),
    ("rule", "event.record == null", "expr.unknown_name", "event is not available"),
    # found by Hypothesis: a list of objects once reached the compiler and crashed it
    ("wait", "size([event]) > 0", "expr.type_mismatch", "list items must be values or rows"),
    ("rule", "record.total > 'x'", "expr.type_mismatch", "cannot apply > to decimal (record.total) and string ('x')"),
    ("rule", "record.customer == record.owner", "expr.type_mismatch", "a reference to Customer (record.customer) and a reference to a user"),
    ("rule", "record.customer == record.lines.map(l, l.order).min()", "expr.type_mismatch", "min() needs comparable values"),
    ("rule", "(record.total > 1 ? 'a' : 2) == 'a'", "expr.type_mismatch", "both branches of ?: must have one type"),
    ("rule", "record.note + 1 == 'x'", "expr.type_mismatch", "cannot apply + to string"),
    ("rule", "record.total % 1.5 == 0.0", "expr.type_mismatch", "% needs integers or decimals"),
    ("rule", "record.total == null + 1", "expr.type_mismatch", "cannot apply + to null"),
    ("rule", "lower(record.total) == 'x'", "expr.type_mismatch", "expected lower(string), but record.total is decimal"),
    ("rule", "record.lines.sum() > 0", "expr.type_mismatch", "map the rows to a field first"),
    ("rule", "[1, 'a'].exists(x, true)", "expr.type_mismatch", "list items must have one type"),
    ("rule", "record.total", "expr.not_boolean", "must be a boolean, but record.total is decimal"),
    ("rule", "!record.total", "expr.not_boolean", "the operand of ! must be a boolean"),
    ("rule", "record.lines.exists(l, l.quantity)", "expr.not_boolean", "the predicate of exists() must be a boolean"),
    ("rule", "null", "expr.not_boolean", "must be a boolean"),
    ("rule", "record.total > 0 ? 1 : 0", "expr.not_boolean", "must be a boolean, but record.total > 0 ? 1 : 0 is int"),
    ("rule", "record.lines > 0", "expr.collection_as_scalar", "record.lines is a collection of OrderLine rows"),
    ("rule", "record.lines.quantity > 0", "expr.collection_as_scalar", "use map(x, x.quantity)"),
    ("rule", "Order == null", "expr.collection_as_scalar", "Order is a collection of Order rows"),
    ("rule", "input.qty > 0", "expr.input_not_available", "input is not available in the read rule of Order"),
    ("job", "secrets.MAIL_KEY == 'x'", "expr.secret_not_allowed", "secrets can only be read in the values of http and ai steps"),
    ("http", "secrets.NOPE", "expr.unknown_secret", "no secret 'NOPE' is declared (secrets: MAIL_KEY)"),
    ("rule", "record.note.shout()", "expr.unknown_function", "unknown function 'shout' (functions: all, contains"),
    ("rule", "has(record.note)", "expr.unknown_function", "unknown function 'has'"),
    ("rule", "lower(record.note, 'x') == 'a'", "expr.bad_arguments", "expected lower(string), got 2 argument(s)"),
    ("rule", "duration('forever') > duration('1h')", "expr.bad_arguments", "expected a duration like '24h'"),
    ("rule", "timestamp('2026-01-01') < now", "expr.bad_arguments", "with a zone"),
    ("rule", "timestamp(record.note) < now", "expr.bad_arguments", "takes one literal string"),
    ("rule", "record.lines.exists(1, true)", "expr.bad_arguments", "with a variable name first"),
    ("rule", "record.lines.all(l)", "expr.bad_arguments", "expected <collection>.all(x, predicate)"),
    ("rule", "size(record.lines, 1) > 0", "expr.bad_arguments", "size() takes one collection"),
    ("rule", "record.total.exists(x, x > 1)", "expr.not_collection", "exists() needs a collection, but record.total is decimal"),
    ("rule", "1 in record.note", "expr.not_collection", "the right side of in must be a list or a collection"),
    ("rule", "sum(record.total) > 0", "expr.not_collection", "sum() needs a collection"),
    ("rule", "record.status == 'shiped'", "expr.unknown_enum_value", "'shiped' is not one of the values draft, placed, paid"),
    ("rule", "record.status in ['placed', 'payed']", "expr.unknown_enum_value", "'payed'"),
    ("rule", "record.lines.exists(record, true)", "expr.shadowed_name", "the variable 'record' hides `record`"),
    ("rule", "record.lines.exists(Product, true)", "expr.shadowed_name", "'Product'"),
    ("job", "Order.exists(auth, true)", "expr.shadowed_name", "'auth'"),
    ("rule", "record.total > 0 &&", "expr.syntax", "unexpected end of expression"),
    ("rule", "record.total = 1", "expr.syntax", "unexpected"),
    ("rule", "record.total > 0 and true", "expr.syntax", "unexpected"),
    ("rule", "$", "expr.syntax", "unexpected character '$'"),
    ("rule", "   ", "expr.syntax", "empty expression"),
    ("rule", "{'a': 1}.a == 1", "expr.unsupported", "map literals are not supported"),
    ("rule", "record.lines[0].quantity > 1", "expr.unsupported", "indexing with [] is not supported"),
    ("rule", "b'abc' == record.note", "expr.unsupported", "bytes literals are not supported"),
    ("rule", "99999999999999999999 > record.total", "expr.bad_literal", "must fit in 64 bits"),
    ("rule", "record.note == '\\x00'", "expr.bad_literal", "NUL"),
    ("rule", "1e999 > record.total", "expr.bad_literal", "out of range"),
    ("rule", "!" * 70 + "true", "expr.too_complex", "nests more than"),
    ("rule", "record.lines.exists(l, " * 70 + "true" + ")" * 70, "expr.too_complex", "nests more than"),
    ("rule", " || ".join(["true"] * 1500), "expr.too_complex", "characters long"),
]


@pytest.mark.parametrize("where, source, code, message", ERRORS, ids=[f"{c}: {s[:50]}" for _, s, c, _ in ERRORS])
def test_expression_is_refused_with(where, source, code, message):
    checked = check_expression(DEFINITION, expr(source, "/somewhere"), SCOPES[where],
                               condition=where in ("rule", "action", "job"))
    assert [(e.code, e.path) for e in checked.errors] == [(code, "/somewhere")], checked.errors
    assert message in checked.errors[0].message


def test_every_error_is_reported_not_just_the_first():
    checked = check_expression(DEFINITION, expr("record.totl > 0 && record.nope == 'x' && frob()"),
                               SCOPES["rule"], condition=True)
    assert [e.code for e in checked.errors] == ["expr.unknown_field", "expr.unknown_field",
                                                "expr.unknown_function"]


def test_one_mistake_is_reported_once():
    checked = check_expression(DEFINITION, expr("record.totl + 1 > 2 * record.totl.x"), SCOPES["rule"],
                               condition=True)
    assert [e.code for e in checked.errors] == ["expr.unknown_field", "expr.unknown_field"]


# -- whole invalid definitions ---------------------------------------------------------

INVALID = Path(__file__).parent / "fixtures" / "invalid"
FIXTURES = sorted(INVALID.glob("*.yaml"))


def expectations(text: str) -> set[tuple[str, str]]:
    found = set()
    for line in text.splitlines():
        if line.startswith("# expect:"):
            code, _, path = line.removeprefix("# expect:").strip().partition(" ")
            found.add((code, path))
    return found


def _loader():
    try:
        from runtime.definition import DefinitionInvalid, load_definition
    except ImportError as ex:  # pragma: no cover - the parser is written in parallel
        pytest.skip(f"runtime.definition.load_definition is not available yet: {ex}")
    return load_definition, DefinitionInvalid


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_invalid_definition_reports_exactly_its_expected_errors(path):
    load_definition, DefinitionInvalid = _loader()
    text = path.read_text(encoding="utf-8")
    expected = expectations(text)
    assert expected, f"{path.name} has no '# expect:' line"
    with pytest.raises(DefinitionInvalid) as caught:
        load_definition(text, "application/yaml")
    got = {(e.code, e.path) for e in caught.value.errors}
    report = "\n".join(f"  # expect: {e.code} {e.path}    ({e.message})" for e in caught.value.errors)
    assert got == expected, f"{path.name} reported:\n{report}"


def test_every_error_code_is_exercised():
    covered = {code for _, _, code, _ in ERRORS}
    for path in FIXTURES:
        covered |= {code for code, _ in expectations(path.read_text(encoding="utf-8"))}
    assert set(CODES) - {"expr.internal"} == covered
    assert len(FIXTURES) >= 15


def test_errors_are_definition_errors_with_the_expressions_path():
    checked = check_expression(DEFINITION, expr("record.nope", "/entities/Order/access/read"),
                               SCOPES["rule"], condition=True)
    assert checked.errors == [DefinitionError(
        "expr.unknown_field", "/entities/Order/access/read", checked.errors[0].message)]
