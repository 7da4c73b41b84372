"""Compiled expressions evaluated by a real Postgres, over the rows of conftest.py.

Each row: (entity, expression, row, caller, expected). Rules are compiled with
`compile_rule` and run as `SELECT <rule> FROM "<Entity>" AS r WHERE r.id = %(rid)s`, so the
expected value is what the rule decides: unknown counts as false. Who is who: alice is
staff and admin of Bob's customer; bob owns `o_placed` and `o_paid` (through customer
`c_bob`); carol owns `o_carol`; `o_paid` has a null note, owner, priority and time, and no
lines; `c_none` has no account, tier or meta.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from psycopg import sql

from expr_db import IDS, run
from expr_defs import expr, shop
from runtime.expressions import compile_expression, compile_rule
from runtime.expressions.scope import action_scope

DEFINITION = shop()
ANON = None

RULES = [
    # null handling: an anonymous caller never matches, not even a null owner
    ("Order", "record.owner == auth.id", "o_placed", "bob", True),
    ("Order", "record.owner == auth.id", "o_placed", ANON, False),
    ("Order", "record.owner == auth.id", "o_paid", ANON, False),
    ("Order", "record.owner == auth", "o_paid", ANON, False),
    ("Order", "record.owner == auth.id", "o_paid", "bob", False),
    ("Order", "!(record.owner == auth.id)", "o_paid", ANON, False),
    ("Order", "!(record.owner == auth.id)", "o_placed", "carol", True),
    ("Order", "record.owner != auth.id", "o_paid", "bob", False),
    ("Order", "auth == null", "o_placed", ANON, True),
    ("Order", "auth == null", "o_placed", "bob", False),
    ("Order", "auth != null && auth.role == 'customer'", "o_placed", "bob", True),
    ("Order", "auth.role == 'staff'", "o_placed", "alice", True),
    ("Order", "auth.role == 'staff'", "o_placed", ANON, False),
    ("Order", "record.note == null", "o_paid", ANON, True),
    ("Order", "record.note != null", "o_paid", ANON, False),
    ("Order", "record.note == null || record.note != upper(record.note)", "o_paid", ANON, True),
    ("Order", "record.note == null || record.note != upper(record.note)", "o_draft", ANON, False),
    ("Order", "record.note == null || record.note != upper(record.note)", "o_placed", ANON, True),
    ("Order", "record.priority > 0 || true", "o_paid", ANON, True),
    ("Order", "!(record.priority > 0 && true)", "o_paid", ANON, False),
    ("Order", "!(record.priority > 0 && false)", "o_paid", ANON, True),
    ("Order", "record.customer.account == auth.id", "o_draft", ANON, False),
    ("Order", "(record.total > 100 ? record.customer : null) == null", "o_placed", ANON, True),
    # references, one and two deep
    ("Order", "record.customer.account == auth.id", "o_placed", "bob", True),
    ("Order", "record.customer.account == auth.id", "o_placed", "carol", False),
    ("OrderLine", "record.order.customer.account == auth.id", "l1", "bob", True),
    ("OrderLine", "record.order.customer.account == auth.id", "l1", "carol", False),
    ("OrderLine", "record.order.customer.account == auth.id", "l1", ANON, False),
    ("OrderLine", "record.product.sku == 'PEN' && record.order.status == 'placed'", "l1", ANON, True),
    ("Order", "record.customer.account.email == auth.email", "o_placed", "bob", True),
    ("Order", "record.owner.role == 'customer'", "o_placed", ANON, True),
    ("Order", "record.customer.id == record.customer && record.customer.name == 'Bob'", "o_placed", ANON, True),
    # reverse collections: empty and non-empty
    ("Order", "record.lines.map(l, l.quantity * l.unit_price).sum() == record.total", "o_placed", ANON, True),
    ("Order", "record.lines.map(l, l.quantity * l.unit_price).sum() == record.total", "o_paid", ANON, False),
    ("Order", "record.lines.map(l, l.quantity * l.unit_price).sum() == 0", "o_paid", ANON, True),
    ("Order", "record.lines.map(l, l.quantity).sum() == 6", "o_placed", ANON, True),
    ("Order", "record.lines.exists(l, l.quantity > 3)", "o_placed", ANON, True),
    ("Order", "record.lines.exists(l, l.quantity > 3)", "o_paid", ANON, False),
    ("Order", "record.lines.all(l, l.quantity > 0)", "o_paid", ANON, True),
    ("Order", "record.lines.all(l, l.quantity > 0)", "o_placed", ANON, True),
    ("Order", "record.lines.all(l, l.product.stock > 0)", "o_placed", ANON, False),
    ("Order", "record.lines.exists_one(l, l.product.sku == 'INK')", "o_placed", ANON, True),
    ("Order", "size(record.lines) == 2 && record.lines.size() == 2", "o_placed", ANON, True),
    ("Order", "record.lines.size() == 0", "o_paid", ANON, True),
    ("Order", "record.lines.map(l, l.unit_price).max() == 10", "o_placed", ANON, True),
    ("Order", "record.lines.map(l, l.unit_price).min() == 2.5", "o_placed", ANON, True),
    ("Order", "record.lines.map(l, l.unit_price).min() == null", "o_paid", ANON, True),
    ("Order", "record.lines.map(l, l.quantity).filter(q, q > 2).size() == 1", "o_placed", ANON, True),
    ("Order", "record.lines.map(l, l.product).exists(p, p.stock == 0)", "o_placed", ANON, True),
    ("Order", "record.lines.filter(l, l.quantity > 1).map(l, l.product.price).sum() == 12.5", "o_placed", ANON, True),
    ("Customer", "record.orders.filter(o, o.status in ['placed', 'paid']).map(o, o.total).sum() <= record.credit_limit", "c_bob", ANON, True),
    ("Customer", "record.orders.filter(o, o.status in ['placed', 'paid']).map(o, o.total).sum() == 50", "c_bob", ANON, True),
    ("Customer", "record.orders.filter(o, o.status in ['placed', 'paid']).map(o, o.total).sum() <= record.credit_limit", "c_none", ANON, True),
    ("Customer", "record.orders.filter(o, o.status == 'paid').size() == 0", "c_carol", ANON, True),
    # whole entities, `in` over collections
    ("Order", "Membership.exists(m, m.user == auth.id && m.customer == record.customer && m.role == 'admin')", "o_placed", "alice", True),
    ("Order", "Membership.exists(m, m.user == auth.id && m.customer == record.customer && m.role == 'admin')", "o_placed", "bob", False),
    ("Order", "Membership.exists(m, m.user == auth.id && m.customer == record.customer && m.role == 'admin')", "o_placed", ANON, False),
    ("Order", "auth.id in record.customer.members.map(m, m.user)", "o_placed", "bob", True),
    ("Order", "auth.id in record.customer.members.map(m, m.user)", "o_placed", "carol", False),
    ("Order", "auth.id in record.customer.members.map(m, m.user)", "o_placed", ANON, False),
    ("Order", "record.customer in Customer.filter(c, c.tier == 'gold')", "o_placed", ANON, True),
    ("Order", "record.customer in Customer.filter(c, c.tier == 'gold')", "o_carol", ANON, False),
    ("Order", "Order.filter(o, o.customer == record.customer).size() == 2", "o_placed", ANON, True),
    ("Order", "Order.all(o, o.total >= 0) && Product.exists(p, p.stock == 0)", "o_placed", ANON, True),
    ("Order", "record.lines.exists(l, record.lines.exists(k, k.quantity > l.quantity))", "o_placed", ANON, True),
    ("Order", "record.lines.exists(l, record.lines.map(l, l.quantity).sum() == 6 && l.quantity == 4)", "o_placed", ANON, True),
    # `in` literal lists
    ("Order", "record.status in ['placed', 'paid']", "o_placed", ANON, True),
    ("Order", "record.status in ['placed', 'paid']", "o_draft", ANON, False),
    ("Order", "record.priority in [1, 2]", "o_placed", ANON, True),
    ("Order", "record.priority in [1, 2]", "o_paid", ANON, False),
    ("Order", "!(record.priority in [1, 2])", "o_paid", ANON, False),
    ("Order", "!(record.priority in [])", "o_paid", ANON, True),
    ("Order", "[1, 2, 3].exists(x, x == record.priority)", "o_placed", ANON, True),
    # strings, including quotes and percent signs in literals
    ("Order", "record.note.startsWith('he') && record.note.endsWith('lo') && record.note.contains('ell')", "o_placed", ANON, True),
    ("Order", "size(record.note) == 5 && record.note.size() == 5", "o_placed", ANON, True),
    ("Order", "lower(record.note) == 'shouting' && upper('a') == 'A'", "o_draft", ANON, True),
    ("Order", "record.note + '!' == 'hello!'", "o_placed", ANON, True),
    ("Order", "record.note.matches('^h[a-z]+$')", "o_placed", ANON, True),
    ("Order", "record.note.matches('^h[a-z]+$')", "o_draft", ANON, False),
    ("Order", "record.note.matches('^Re: ') && record.note.endsWith('?')", "o_carol", ANON, True),
    ("Order", "record.note.contains('%') || '50%' + record.note == '50%hello'", "o_placed", ANON, True),
    ("Order", "record.note != 'it\\'s' && \"%(x)s\" != record.note", "o_placed", ANON, True),
    ("Order", "string(record.priority) == '2'", "o_placed", ANON, True),
    ("Order", "record.website.startsWith('https://')", "o_placed", ANON, True),
    # durations and timestamps
    ("Order", "record.placed_at < now - duration('24h')", "o_carol", ANON, True),
    ("Order", "record.placed_at < now - duration('24h')", "o_placed", ANON, False),
    ("Order", "record.placed_at < now - duration('24h')", "o_paid", ANON, False),
    ("Order", "now - record.placed_at > duration('1d') && now - record.placed_at < duration('3d')", "o_carol", ANON, True),
    ("Order", "record.placed_at > timestamp('2020-01-01T00:00:00Z')", "o_placed", ANON, True),
    ("Order", "record.due < timestamp('2026-01-11T00:00:00Z')", "o_placed", ANON, True),
    ("Order", "record.due + duration('1d') == timestamp('2026-01-11T00:00:00Z')", "o_placed", ANON, True),
    ("Order", "record.created_at <= now && record.updated_at <= now", "o_placed", ANON, True),
    # ternary
    ("Order", "(record.total > 25 ? 'big' : 'small') == 'big'", "o_placed", ANON, True),
    ("Order", "(record.total > 25 ? 'big' : 'small') == 'big'", "o_carol", ANON, False),
    ("Order", "record.priority > 1 ? true : true", "o_paid", ANON, False),
    ("Order", "record.total > 25 ? record.customer.tier == 'gold' : false", "o_placed", ANON, True),
    # arithmetic
    ("Order", "record.total / record.priority == 15", "o_placed", ANON, True),
    ("Order", "record.total / record.priority >= 0", "o_draft", ANON, False),
    ("Order", "record.priority % 2 == 0 && 7 / 2 == 3 && -7 % 3 == -1", "o_placed", ANON, True),
    ("Order", "record.weight * 2.0 == 3.0 && record.total - 1 == 29", "o_placed", ANON, True),
    # json fields
    ("Customer", "record.meta.plan == 'pro'", "c_bob", ANON, True),
    ("Customer", "record.meta.plan == 'pro'", "c_carol", ANON, False),
    ("Customer", "record.meta.plan == null", "c_carol", ANON, True),
    ("Customer", "record.meta.plan == null", "c_none", ANON, True),
    ("Customer", "record.meta.limits.max > 3 && record.meta.tags[1] == 'b'", "c_bob", ANON, True),
    ("Customer", "record.score > 4 && record.tier == 'gold'", "c_bob", ANON, True),
]


@pytest.mark.parametrize("entity, source, row, caller, expected", RULES,
                         ids=[f"{e}: {s} [{r}, {c}]" for e, s, r, c, _ in RULES])
def test_rule_decides_like_this(pg, entity, source, row, caller, expected):
    rule = compile_rule(DEFINITION, entity, expr(source), "r")
    query = sql.SQL("SELECT {} FROM {} AS r WHERE r.id = %(rid)s").format(rule.sql, sql.Identifier(entity))
    params = {**rule.bind(auth=_auth(caller)), "rid": IDS[row]}
    assert run(pg, query, params) is expected


# Action values and conditions: (expression, condition?, input, caller, expected)
ACTION = [
    ("input.order.customer.account", False, {"order": "o_placed"}, ANON, IDS["bob"]),
    ("input.order.customer.account", False, {"order": str(IDS["o_draft"])}, ANON, None),
    ("input.order.customer.account == auth.id && input.order.status == 'placed'", True,
     {"order": "o_placed"}, "bob", True),
    ("input.order.customer.account == auth.id && input.order.status == 'placed'", True,
     {"order": "o_placed"}, ANON, False),
    ("input.order.customer.account == auth.id", True, {}, ANON, False),
    ("input.product.price * input.quantity", False, {"product": "p_ink", "quantity": 4}, ANON, Decimal("10.0")),
    ("input.product.stock >= input.quantity", True, {"product": "p_ink", "quantity": 1}, ANON, False),
    ("'Note: ' + input.note", False, {"note": "x%y 'z'"}, ANON, "Note: x%y 'z'"),
    ("Order.filter(o, o.status == 'draft').size()", False, {}, ANON, 1),
    ("input.order.lines.map(l, l.quantity)", False, {"order": "o_placed"}, ANON, [2, 4]),
    ("input.order.lines", False, {"order": "o_placed"}, ANON, [IDS["l1"], IDS["l2"]]),
    ("input.order.lines.map(l, l.quantity).sum()", False, {"order": "o_paid"}, ANON, 0),
    ("input.data.n > 3", True, {"data": {"n": 5}}, ANON, True),
    ("input.data.n > 3", True, {"data": None}, ANON, False),
    ("input.data.tags[0] + '!'", False, {"data": {"tags": ["a"]}}, ANON, "a!"),
    ("input.when < now", True, {"when": "2020-01-01T00:00:00Z"}, ANON, True),
    ("input.quantity > 0 ? 'some' : 'none'", False, {"quantity": 0}, ANON, "none"),
]


@pytest.mark.parametrize("source, condition, given, caller, expected", ACTION,
                         ids=[f"{s} {g}" for s, _, g, _, _ in ACTION])
def test_action_expression_evaluates_to(pg, source, condition, given, caller, expected):
    compiled = compile_expression(DEFINITION, expr(source), action_scope(DEFINITION, "add_to_order"),
                                  condition=condition)
    given = {k: IDS.get(v, v) if isinstance(v, str) else v for k, v in given.items()}
    params = compiled.bind(auth=_auth(caller), input=given)
    assert run(pg, sql.SQL("SELECT {}").format(compiled.sql), params) == expected


def _auth(name):
    if name is None:
        return None
    roles = {"alice": "staff", "bob": "customer", "carol": "customer"}
    emails = {"alice": "alice@example.com", "bob": "bob@example.com", "carol": "carol@shop.test"}
    return {"id": IDS[name], "email": emails[name], "role": roles[name]}
