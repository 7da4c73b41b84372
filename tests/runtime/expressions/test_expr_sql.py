"""Expression in, SQL out: one table row per construct, rendered without a connection.

`RULES` are entity-scoped booleans compiled with `compile_rule(..., alias="r")`, or values
and conditions in the scope of the `add_to_order` action; the last column holds the
literal parameters (numbers, booleans and null are inlined, strings never are). `SCOPED`
covers the other scopes (jobs, waits, transition steps, update rows); its last column
holds the runtime values the fragment needs. Semantics are tested against Postgres in
test_expr_postgres.py; this file pins the SQL shape.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from psycopg import sql

from expr_defs import expr, shop
from runtime.definition.model import DefinitionInvalid
from runtime.expressions import Scope, compile_expression, compile_rule
from runtime.expressions import types as T
from runtime.expressions.scope import action_scope, event_type, http_result_type, transition_steps_scope

DEFINITION = shop()

RULES = [
    # literals and comparisons
    ('Order', 'true',
     'COALESCE(true, false)',
     {}),
    ('Order', 'record.total > 0',
     'COALESCE(("r"."total" > 0), false)',
     {}),
    ('Order', 'record.total >= 10.5',
     'COALESCE(("r"."total" >= 10.5), false)',
     {}),
    ('Order', 'record.priority < 3',
     'COALESCE(("r"."priority" < 3), false)',
     {}),
    ('Order', 'record.priority <= -1',
     'COALESCE(("r"."priority" <=  -1), false)',
     {}),
    ('Order', 'record.total != 0',
     'COALESCE(("r"."total" <> 0), false)',
     {}),
    ('Order', "record.status == 'draft'",
     'COALESCE(("r"."status" = %(lit:draft)s::text), false)',
     {'lit:draft': 'draft'}),
    # null tests: == null is IS NULL, nothing else is
    ('Order', 'record.note == null',
     'COALESCE(("r"."note" IS NULL), false)',
     {}),
    ('Order', 'record.note != null',
     'COALESCE(("r"."note" IS NOT NULL), false)',
     {}),
    ('Order', 'null == record.note',
     'COALESCE(("r"."note" IS NULL), false)',
     {}),
    ('Order', 'null == null',
     'COALESCE(true, false)',
     {}),
    # logic: three-valued inside, COALESCE(..., false) at the top
    ('Order', '!(record.total > 0)',
     'COALESCE((NOT ("r"."total" > 0)), false)',
     {}),
    ('Order', '!record.receipt_sent',
     'COALESCE((NOT "r"."receipt_sent"), false)',
     {}),
    ('Order', 'record.receipt_sent',
     'COALESCE("r"."receipt_sent", false)',
     {}),
    ('Order', 'record.receipt_sent == false',
     'COALESCE(("r"."receipt_sent" = false), false)',
     {}),
    ('Order', "record.total > 0 && record.status == 'placed'",
     'COALESCE((("r"."total" > 0) AND ("r"."status" = %(lit:placed)s::text)), false)',
     {'lit:placed': 'placed'}),
    ('Order', "record.total > 0 || record.status == 'placed'",
     'COALESCE((("r"."total" > 0) OR ("r"."status" = %(lit:placed)s::text)), false)',
     {'lit:placed': 'placed'}),
    # the caller: parameters, NULL when anonymous
    ('Order', 'record.owner == auth.id',
     'COALESCE(("r"."owner" = %(auth.id)s::uuid), false)',
     {}),
    ('Order', 'record.owner == auth',
     'COALESCE(("r"."owner" = %(auth.id)s::uuid), false)',
     {}),
    ('Order', 'auth == null',
     'COALESCE((%(auth.id)s::uuid IS NULL), false)',
     {}),
    ('Order', 'auth != null',
     'COALESCE((%(auth.id)s::uuid IS NOT NULL), false)',
     {}),
    ('Order', "auth.role == 'staff'",
     'COALESCE((%(auth.role)s::text = %(lit:staff)s::text), false)',
     {'lit:staff': 'staff'}),
    ('Order', "auth.email.endsWith('@example.com')",
     'COALESCE((right(%(auth.email)s::text, char_length(%(lit:@example.com)s::text)) = %(lit:@example.com)s::text), false)',
     {'lit:@example.com': '@example.com'}),
    # references: compare as ids, traverse by scalar subquery
    ('Order', 'record.customer == record.customer',
     'COALESCE(("r"."customer" = "r"."customer"), false)',
     {}),
    ('Order', 'record.customer.id == record.customer',
     'COALESCE(("r"."customer" = "r"."customer"), false)',
     {}),
    ('Order', 'record.customer.account == auth.id',
     'COALESCE(((SELECT "_x1"."account" FROM "Customer" AS "_x1" WHERE "_x1"."id" = "r"."customer") = %(auth.id)s::uuid), false)',
     {}),
    ('Order', "record.customer.name == 'Ada'",
     'COALESCE(((SELECT "_x1"."name" FROM "Customer" AS "_x1" WHERE "_x1"."id" = "r"."customer") = %(lit:Ada)s::text), false)',
     {'lit:Ada': 'Ada'}),
    ('Order', 'record.customer.account.email == auth.email',
     'COALESCE(((SELECT "_x2"."email" FROM "_users" AS "_x2" WHERE "_x2"."id" = (SELECT "_x1"."account" FROM "Customer" AS "_x1" WHERE "_x1"."id" = "r"."customer")) = %(auth.email)s::text), false)',
     {}),
    ('Order', "record.owner.role == 'staff'",
     'COALESCE(((SELECT "_x1"."role" FROM "_users" AS "_x1" WHERE "_x1"."id" = "r"."owner") = %(lit:staff)s::text), false)',
     {'lit:staff': 'staff'}),
    # in a literal list
    ('Order', "record.status in ['placed', 'paid']",
     'COALESCE(("r"."status" IN (%(lit:placed)s::text, %(lit:paid)s::text)), false)',
     {'lit:paid': 'paid', 'lit:placed': 'placed'}),
    ('Order', 'record.priority in [1, 2, 3]',
     'COALESCE(("r"."priority" IN (1, 2, 3)), false)',
     {}),
    ('Order', 'record.priority in []',
     'COALESCE(false, false)',
     {}),
    # arithmetic: division and modulo by zero are unknown, not errors
    ('Order', 'record.total + 1 > 2',
     'COALESCE((("r"."total" + 1) > 2), false)',
     {}),
    ('Order', 'record.total - record.priority * 2 > 0',
     'COALESCE((("r"."total" - ("r"."priority" * 2)) > 0), false)',
     {}),
    ('Order', 'record.total / record.priority > 1',
     'COALESCE((("r"."total" / NULLIF("r"."priority", 0)) > 1), false)',
     {}),
    ('Order', 'record.priority % 2 == 0',
     'COALESCE((mod("r"."priority", NULLIF(2, 0)) = 0), false)',
     {}),
    ('Order', '-record.total < 0',
     'COALESCE(((- "r"."total") < 0), false)',
     {}),
    ('Order', 'record.weight * 2.5 > record.total',
     'COALESCE((("r"."weight" * 2.5) > "r"."total"), false)',
     {}),
    # strings
    ('Order', "record.note + '!' == 'hi!'",
     'COALESCE((("r"."note" || %(lit:~21)s::text) = %(lit:hi~21)s::text), false)',
     {'lit:hi~21': 'hi!', 'lit:~21': '!'}),
    ('Order', 'size(record.note) > 3',
     'COALESCE((char_length("r"."note") > 3), false)',
     {}),
    ('Order', 'record.note.size() > 3',
     'COALESCE((char_length("r"."note") > 3), false)',
     {}),
    ('Order', "lower(record.note) == 'x'",
     'COALESCE((lower("r"."note") = %(lit:x)s::text), false)',
     {'lit:x': 'x'}),
    ('Order', "upper(record.note) == 'X'",
     'COALESCE((upper("r"."note") = %(lit:X)s::text), false)',
     {'lit:X': 'X'}),
    ('Order', "record.note.startsWith('Re:')",
     'COALESCE(starts_with("r"."note", %(lit:Re:)s::text), false)',
     {'lit:Re:': 'Re:'}),
    ('Order', "record.note.endsWith('?')",
     'COALESCE((right("r"."note", char_length(%(lit:~3f)s::text)) = %(lit:~3f)s::text), false)',
     {'lit:~3f': '?'}),
    ('Order', "record.note.contains('urgent')",
     'COALESCE((strpos("r"."note", %(lit:urgent)s::text) > 0), false)',
     {'lit:urgent': 'urgent'}),
    ('Order', "record.note.matches('^[A-Z]+$')",
     'COALESCE(("r"."note" ~ %(lit:~5e~5bA-Z~5d+~24)s::text), false)',
     {'lit:~5e~5bA-Z~5d+~24': '^[A-Z]+$'}),
    ('Order', "string(record.priority) == '3'",
     'COALESCE((CAST("r"."priority" AS text) = %(lit:3)s::text), false)',
     {'lit:3': '3'}),
    # time
    ('Order', 'record.placed_at < now',
     'COALESCE(("r"."placed_at" < now()), false)',
     {}),
    ('Order', "record.placed_at < now - duration('24h')",
     'COALESCE(("r"."placed_at" < (now() - %(dur:24h)s::interval)), false)',
     {'dur:24h': timedelta(seconds=86400)}),
    ('Order', "record.placed_at + duration('1h30m') > timestamp('2026-01-01T00:00:00Z')",
     'COALESCE((("r"."placed_at" + %(dur:1h30m)s::interval) > %(ts:2026-01-01T00:00:00Z)s::timestamptz), false)',
     {'dur:1h30m': timedelta(seconds=5400), 'ts:2026-01-01T00:00:00Z': datetime(2026, 1, 1, tzinfo=timezone.utc)}),
    ('Order', "now - record.placed_at > duration('7d')",
     'COALESCE(((now() - "r"."placed_at") > %(dur:7d)s::interval), false)',
     {'dur:7d': timedelta(seconds=604800)}),
    ('Order', 'record.due < now',
     'COALESCE(("r"."due" < now()), false)',
     {}),
    ('Order', "record.due + duration('1d') > now",
     'COALESCE(((CAST("r"."due" AS timestamptz) + %(dur:1d)s::interval) > now()), false)',
     {'dur:1d': timedelta(seconds=86400)}),
    # ternary: unknown condition gives unknown, not the else branch
    ('Order', "(record.total > 100 ? 'big' : 'small') == 'big'",
     'COALESCE(((CASE ("r"."total" > 100) WHEN true THEN %(lit:big)s::text WHEN false THEN %(lit:small)s::text END) = %(lit:big)s::text), false)',
     {'lit:big': 'big', 'lit:small': 'small'}),
    ('Order', '(record.total > 100 ? record.customer : null) == null',
     'COALESCE(((CASE ("r"."total" > 100) WHEN true THEN "r"."customer" WHEN false THEN NULL END) IS NULL), false)',
     {}),
    # json (dyn) fields, enums, uuids, urls
    ('Order', "record.customer.meta.plan == 'pro'",
     'COALESCE(((((SELECT "_x1"."meta" FROM "Customer" AS "_x1" WHERE "_x1"."id" = "r"."customer") -> %(lit:plan)s::text) #>> \'{}\') = %(lit:pro)s::text), false)',
     {'lit:plan': 'plan', 'lit:pro': 'pro'}),
    ('Order', 'record.customer.meta.limits.max > 3',
     'COALESCE((CAST(((((SELECT "_x1"."meta" FROM "Customer" AS "_x1" WHERE "_x1"."id" = "r"."customer") -> %(lit:limits)s::text) -> %(lit:max)s::text) #>> \'{}\') AS numeric) > 3), false)',
     {'lit:limits': 'limits', 'lit:max': 'max'}),
    ('Order', "record.customer.meta['tier'] == 'gold'",
     'COALESCE(((((SELECT "_x1"."meta" FROM "Customer" AS "_x1" WHERE "_x1"."id" = "r"."customer") -> %(lit:tier)s::text) #>> \'{}\') = %(lit:gold)s::text), false)',
     {'lit:gold': 'gold', 'lit:tier': 'tier'}),
    ('Order', "record.customer.tier == 'gold'",
     'COALESCE(((SELECT "_x1"."tier" FROM "Customer" AS "_x1" WHERE "_x1"."id" = "r"."customer") = %(lit:gold)s::text), false)',
     {'lit:gold': 'gold'}),
    ('Order', 'record.ref_code == record.id',
     'COALESCE(("r"."ref_code" = "r"."id"), false)',
     {}),
    ('Order', "record.website.startsWith('https://')",
     'COALESCE(starts_with("r"."website", %(lit:https://)s::text), false)',
     {'lit:https://': 'https://'}),
    # reverse collections and macros
    ('Order', 'record.lines.exists(l, l.quantity > 10)',
     'COALESCE(EXISTS (SELECT 1 FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id" AND ("_x1"."quantity" > 10)), false)',
     {}),
    ('Order', 'record.lines.all(l, l.quantity > 0)',
     'COALESCE((NOT EXISTS (SELECT 1 FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id" AND (("_x1"."quantity" > 0)) IS NOT TRUE)), false)',
     {}),
    ('Order', 'record.lines.exists_one(l, l.quantity > 10)',
     'COALESCE(((SELECT count(*) FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id" AND ("_x1"."quantity" > 10)) = 1), false)',
     {}),
    ('Order', 'record.lines.size() > 0',
     'COALESCE(((SELECT count(*) FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id") > 0), false)',
     {}),
    ('Order', 'size(record.lines) == 0',
     'COALESCE(((SELECT count(*) FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id") = 0), false)',
     {}),
    ('Order', 'record.lines.map(l, l.quantity * l.unit_price).sum() == record.total',
     'COALESCE(((SELECT COALESCE(sum(("_x1"."quantity" * "_x1"."unit_price")), 0) FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id") = "r"."total"), false)',
     {}),
    ('Order', 'record.lines.map(l, l.quantity).sum() > 1',
     'COALESCE(((SELECT CAST(COALESCE(sum("_x1"."quantity"), 0) AS bigint) FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id") > 1), false)',
     {}),
    ('Order', 'record.lines.map(l, l.unit_price).max() < 100',
     'COALESCE(((SELECT max("_x1"."unit_price") FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id") < 100), false)',
     {}),
    ('Order', 'record.lines.map(l, l.unit_price).min() > 0',
     'COALESCE(((SELECT min("_x1"."unit_price") FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id") > 0), false)',
     {}),
    ('Order', 'record.lines.filter(l, l.quantity > 1).size() < 5',
     'COALESCE(((SELECT count(*) FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id" AND ("_x1"."quantity" > 1)) < 5), false)',
     {}),
    ('Order', 'record.lines.map(l, l.quantity > 1, l.unit_price).sum() > 0',
     'COALESCE(((SELECT COALESCE(sum("_x1"."unit_price"), 0) FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id" AND ("_x1"."quantity" > 1)) > 0), false)',
     {}),
    ('Order', 'record.lines.map(l, l.product).exists(p, p.stock > 0)',
     'COALESCE(EXISTS (SELECT 1 FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id" AND ((SELECT "_x2"."stock" FROM "Product" AS "_x2" WHERE "_x2"."id" = "_x1"."product") > 0)), false)',
     {}),
    ('Order', 'record.lines.exists(l, l.product.stock < l.quantity)',
     'COALESCE(EXISTS (SELECT 1 FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id" AND ((SELECT "_x2"."stock" FROM "Product" AS "_x2" WHERE "_x2"."id" = "_x1"."product") < "_x1"."quantity")), false)',
     {}),
    ('Order', 'record.customer.orders.size() > 1',
     'COALESCE(((SELECT count(*) FROM "Order" AS "_x1" WHERE "_x1"."customer" = "r"."customer") > 1), false)',
     {}),
    ('Order', "record.customer.members.exists(m, m.user == auth.id && m.role == 'admin')",
     'COALESCE(EXISTS (SELECT 1 FROM "Membership" AS "_x1" WHERE "_x1"."customer" = "r"."customer" AND (("_x1"."user" = %(auth.id)s::uuid) AND ("_x1"."role" = %(lit:admin)s::text))), false)',
     {'lit:admin': 'admin'}),
    # whole entities as collections, in over collections, chains, nesting
    ('Order', 'Membership.exists(m, m.user == auth.id && m.customer == record.customer)',
     'COALESCE(EXISTS (SELECT 1 FROM "Membership" AS "_x1" WHERE (("_x1"."user" = %(auth.id)s::uuid) AND ("_x1"."customer" = "r"."customer"))), false)',
     {}),
    ('Order', 'Order.filter(o, o.customer == record.customer).size() < 10',
     'COALESCE(((SELECT count(*) FROM "Order" AS "_x1" WHERE ("_x1"."customer" = "r"."customer")) < 10), false)',
     {}),
    ('Order', "record.customer in Customer.filter(c, c.tier == 'gold')",
     'COALESCE(("r"."customer" IN (SELECT "_x1"."id" FROM "Customer" AS "_x1" WHERE ("_x1"."tier" = %(lit:gold)s::text))), false)',
     {'lit:gold': 'gold'}),
    ('Order', 'auth.id in record.customer.members.map(m, m.user)',
     'COALESCE((%(auth.id)s::uuid IN (SELECT "_x1"."user" FROM "Membership" AS "_x1" WHERE "_x1"."customer" = "r"."customer")), false)',
     {}),
    ('Order', 'record.lines.map(l, l.quantity).filter(q, q > 2).size() > 0',
     'COALESCE(((SELECT count(*) FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id" AND ("_x1"."quantity" > 2)) > 0), false)',
     {}),
    ('Order', '[1, 2, 3].exists(x, x == record.priority)',
     'COALESCE(EXISTS (SELECT 1 FROM unnest(CAST(ARRAY[1, 2, 3] AS bigint[])) WITH ORDINALITY AS "_x1"(v, n) WHERE ("_x1"."v" = "r"."priority")), false)',
     {}),
    ('Order', 'record.lines.exists(l, record.lines.exists(k, k.quantity > l.quantity))',
     'COALESCE(EXISTS (SELECT 1 FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = "r"."id" AND EXISTS (SELECT 1 FROM "OrderLine" AS "_x2" WHERE "_x2"."order" = "r"."id" AND ("_x2"."quantity" > "_x1"."quantity"))), false)',
     {}),
    # the examples' invariant and a two-deep traversal
    ('Customer', "record.orders.filter(o, o.status in ['placed', 'paid']).map(o, o.total).sum() <= record.credit_limit",
     'COALESCE(((SELECT COALESCE(sum("_x1"."total"), 0) FROM "Order" AS "_x1" WHERE "_x1"."customer" = "r"."id" AND ("_x1"."status" IN (%(lit:placed)s::text, %(lit:paid)s::text))) <= "r"."credit_limit"), false)',
     {'lit:paid': 'paid', 'lit:placed': 'placed'}),
    ('OrderLine', 'record.order.customer.account == auth.id',
     'COALESCE(((SELECT "_x2"."account" FROM "Customer" AS "_x2" WHERE "_x2"."id" = (SELECT "_x1"."customer" FROM "Order" AS "_x1" WHERE "_x1"."id" = "r"."order")) = %(auth.id)s::uuid), false)',
     {}),
    # action inputs (values): parameters, refs traversed by id, collections as arrays
    ('value', 'input.quantity',
     '%(input.quantity)s::bigint',
     {}),
    ('value', 'input.order.customer.account',
     '(SELECT "_x2"."account" FROM "Customer" AS "_x2" WHERE "_x2"."id" = (SELECT "_x1"."customer" FROM "Order" AS "_x1" WHERE "_x1"."id" = %(input.order.id)s::uuid))',
     {}),
    ('value', 'input.order.id',
     '%(input.order.id)s::uuid',
     {}),
    ('value', 'input.order',
     '%(input.order.id)s::uuid',
     {}),
    ('value', 'input.product.price * input.quantity',
     '((SELECT "_x1"."price" FROM "Product" AS "_x1" WHERE "_x1"."id" = %(input.product.id)s::uuid) * %(input.quantity)s::bigint)',
     {}),
    ('value', 'input.data.x',
     '%(input.data.x)s::jsonb',
     {}),
    ('value', 'input.data.items[0]',
     '%(input.data.items[0])s::jsonb',
     {}),
    ('value', "'Note: ' + input.note",
     '(%(lit:Note:~20)s::text || %(input.note)s::text)',
     {'lit:Note:~20': 'Note: '}),
    ('value', "Order.filter(o, o.status == 'draft' && o.created_at < now - duration('24h'))",
     'ARRAY(SELECT "_x1"."id" FROM "Order" AS "_x1" WHERE (("_x1"."status" = %(lit:draft)s::text) AND ("_x1"."created_at" < (now() - %(dur:24h)s::interval))) ORDER BY "_x1"."created_at", "_x1"."id")',
     {'dur:24h': timedelta(seconds=86400), 'lit:draft': 'draft'}),
    ('value', 'input.order.lines.map(l, l.quantity)',
     'ARRAY(SELECT "_x1"."quantity" FROM "OrderLine" AS "_x1" WHERE "_x1"."order" = %(input.order.id)s::uuid ORDER BY "_x1"."created_at", "_x1"."id")',
     {}),
    # action conditions
    ('cond', "input.order.customer.account == auth.id && input.order.status == 'draft'",
     'COALESCE((((SELECT "_x2"."account" FROM "Customer" AS "_x2" WHERE "_x2"."id" = (SELECT "_x1"."customer" FROM "Order" AS "_x1" WHERE "_x1"."id" = %(input.order.id)s::uuid)) = %(auth.id)s::uuid) AND ((SELECT "_x3"."status" FROM "Order" AS "_x3" WHERE "_x3"."id" = %(input.order.id)s::uuid) = %(lit:draft)s::text)), false)',
     {'lit:draft': 'draft'}),
    ('cond', 'input.when > now',
     'COALESCE((%(input.when)s::timestamptz > now()), false)',
     {}),
    ('cond', 'input.data.ok',
     "COALESCE(CAST((%(input.data.ok)s::jsonb #>> '{}') AS boolean), false)",
     {}),
    ('cond', 'input.data.n > 3',
     "COALESCE((CAST((%(input.data.n)s::jsonb #>> '{}') AS numeric) > 3), false)",
     {}),
]


@pytest.mark.parametrize("where, source, expected_sql, expected_params", RULES,
                         ids=[f"{w}: {s}" for w, s, _, _ in RULES])
def test_expression_compiles_to_sql(where, source, expected_sql, expected_params):
    if where in DEFINITION.entities:
        compiled = compile_rule(DEFINITION, where, expr(source), "r")
    else:
        compiled = compile_expression(DEFINITION, expr(source), action_scope(DEFINITION, "add_to_order"),
                                      condition=where == "cond")
    assert compiled.as_string() == expected_sql
    assert dict(compiled.params) == expected_params


AI_RESULT = T.Obj("an ai result", (("category", T.STRING), ("priority", T.Scalar("string", ("low", "high")))))
SCOPES = {
    "job": Scope("job send_receipt", input={"record": T.Row("Order")}, input_owner="job send_receipt",
                 bindings={"contact": http_result_type(), "verdict": AI_RESULT, "order": T.Row("Order"),
                           "ids": T.Collection(T.Row("Order")), "count": T.INT}, secrets=True),
    "wait": Scope("workflow sla", input={"record": T.Row("Order")},
                  event=event_type(DEFINITION, "OrderLine.created")),
    "transition": transition_steps_scope("Order", "place"),
}

# (scope, source, SQL, runtime values needed); "?" marks a condition, "update" the rows of
# an `update ... where` (record is the alias "u" of the UPDATE).
SCOPED = [
    ('job', 'input.record.customer.email',
     '(SELECT "_x2"."email" FROM "Customer" AS "_x2" WHERE "_x2"."id" = (SELECT "_x1"."customer" FROM "Order" AS "_x1" WHERE "_x1"."id" = %(input.record.id)s::uuid))',
     [['input', 'record', 'id']]),
    ('job', 'input.record.total',
     '(SELECT "_x1"."total" FROM "Order" AS "_x1" WHERE "_x1"."id" = %(input.record.id)s::uuid)',
     [['input', 'record', 'id']]),
    ('job', "'Bearer ' + secrets.MAIL_KEY",
     '(%(lit:Bearer~20)s::text || %(secrets.MAIL_KEY)s::text)',
     [['secrets', 'MAIL_KEY']]),
    ('job', 'contact.status',
     '%(contact.status)s::bigint',
     [['contact', 'status']]),
    ('job', "'https://crm.example/contacts/' + contact.body.id",
     "(%(lit:https://crm.example/contacts/)s::text || (%(contact.body.id)s::jsonb #>> '{}'))",
     [['contact', 'body', 'id']]),
    ('job?', 'contact.status == 200 && contact.body.ok',
     "COALESCE(((%(contact.status)s::bigint = 200) AND CAST((%(contact.body.ok)s::jsonb #>> '{}') AS boolean)), false)",
     [['contact', 'body', 'ok'], ['contact', 'status']]),
    ('job', 'verdict.category',
     '%(verdict.category)s::text',
     [['verdict', 'category']]),
    ('job?', "verdict.priority == 'high'",
     'COALESCE((%(verdict.priority)s::text = %(lit:high)s::text), false)',
     [['verdict', 'priority']]),
    ('job', 'order.id',
     '%(order.id)s::uuid',
     [['order', 'id']]),
    ('job', 'order.total',
     '(SELECT "_x1"."total" FROM "Order" AS "_x1" WHERE "_x1"."id" = %(order.id)s::uuid)',
     [['order', 'id']]),
    ('job?', 'order == null',
     'COALESCE((%(order.id)s::uuid IS NULL), false)',
     [['order', 'id']]),
    ('job?', 'input.record.id in ids',
     'COALESCE((%(input.record.id)s::uuid IN (SELECT "_x1"."id" FROM "Order" AS "_x1" WHERE "_x1"."id" = ANY(%(ids)s::uuid[]))), false)',
     [['ids'], ['input', 'record', 'id']]),
    ('job', 'ids.map(o, o.total).sum()',
     '(SELECT COALESCE(sum("_x1"."total"), 0) FROM "Order" AS "_x1" WHERE "_x1"."id" = ANY(%(ids)s::uuid[]))',
     [['ids']]),
    ('job', 'count + 1',
     '(%(count)s::bigint + 1)',
     [['count']]),
    ('wait?', 'event.record.order == input.record.id',
     'COALESCE(((SELECT "_x1"."order" FROM "OrderLine" AS "_x1" WHERE "_x1"."id" = %(event.record.id)s::uuid) = %(input.record.id)s::uuid), false)',
     [['event', 'record', 'id'], ['input', 'record', 'id']]),
    ('wait?', 'event.record.order.customer == input.record.customer',
     'COALESCE(((SELECT "_x2"."customer" FROM "Order" AS "_x2" WHERE "_x2"."id" = (SELECT "_x1"."order" FROM "OrderLine" AS "_x1" WHERE "_x1"."id" = %(event.record.id)s::uuid)) = (SELECT "_x3"."customer" FROM "Order" AS "_x3" WHERE "_x3"."id" = %(input.record.id)s::uuid)), false)',
     [['event', 'record', 'id'], ['input', 'record', 'id']]),
    ('transition', 'record.total',
     '(SELECT "_x1"."total" FROM "Order" AS "_x1" WHERE "_x1"."id" = %(record.id)s::uuid)',
     [['record', 'id']]),
    ('transition?', 'record.customer.account == auth.id',
     'COALESCE(((SELECT "_x2"."account" FROM "Customer" AS "_x2" WHERE "_x2"."id" = (SELECT "_x1"."customer" FROM "Order" AS "_x1" WHERE "_x1"."id" = %(record.id)s::uuid)) = %(auth.id)s::uuid), false)',
     [['auth', 'id'], ['record', 'id']]),
    ('update', "record.status == 'draft' && record.total < 10",
     'COALESCE((("u"."status" = %(lit:draft)s::text) AND ("u"."total" < 10)), false)',
     []),
]


@pytest.mark.parametrize("where, source, expected_sql, expected_needs", SCOPED,
                         ids=[f"{w}: {s}" for w, s, _, _ in SCOPED])
def test_scoped_expression_compiles_to_sql(where, source, expected_sql, expected_needs):
    options = {"condition": where.endswith("?") or where == "update"}
    if where == "update":
        options["alias"] = "u"
    scope = SCOPES["transition" if where == "update" else where.rstrip("?")]
    compiled = compile_expression(DEFINITION, expr(source), scope, **options)
    assert compiled.as_string() == expected_sql
    assert sorted(map(list, compiled.needs)) == expected_needs


def test_compiling_twice_gives_the_same_text():
    source = "record.orders.filter(o, o.status in ['placed', 'paid']).map(o, o.total).sum() <= record.credit_limit"
    first = compile_rule(DEFINITION, "Customer", expr(source), "r")
    second = compile_rule(shop(), "Customer", expr(source), "r")
    assert first.as_string() == second.as_string()
    assert first.params == second.params


def test_equal_placeholder_names_always_hold_equal_values():
    a = compile_rule(DEFINITION, "Order", expr("record.status == 'paid' && record.note == 'x'"), "r")
    b = compile_rule(DEFINITION, "Order", expr("record.note == 'paid' || record.note == 'x y'"), "r")
    merged = {**a.params, **b.params}
    for name, value in merged.items():
        assert a.params.get(name, value) == value and b.params.get(name, value) == value
    assert len(merged) == 3


def test_long_strings_get_hashed_placeholder_names():
    text = "a" * 60 + "%)s"
    compiled = compile_rule(DEFINITION, "Order", expr(f"record.note == '{text}'"), "r")
    (name, value), = compiled.params.items()
    assert name.startswith("lit#") and value == text
    assert text not in compiled.as_string()


def test_bind_fills_runtime_values_and_nulls_for_anonymous_callers():
    compiled = compile_expression(DEFINITION, expr("input.order.customer.account == auth.id && "
                                                   "input.note == auth.email && input.data.n > 1"),
                                  action_scope(DEFINITION, "add_to_order"), condition=True)
    anonymous = compiled.bind(auth=None, input={"order": "0b9f0b0e-0000-4000-8000-000000000001"})
    assert anonymous == {"auth.email": None, "auth.id": None, "input.data.n": None,
                         "input.note": None, "input.order.id": "0b9f0b0e-0000-4000-8000-000000000001"}
    signed_in = compiled.bind(auth={"id": "u1", "email": "a@b.c", "role": "staff"},
                              input={"order": {"id": "o1"}, "data": {"n": 3}})
    assert signed_in["auth.id"] == "u1" and signed_in["input.order.id"] == "o1"
    assert signed_in["input.data.n"].obj == 3        # json values travel as Jsonb


def test_a_reserved_or_empty_alias_is_refused():
    for alias in ("_x1", ""):
        with pytest.raises(ValueError):
            compile_rule(DEFINITION, "Order", expr("record.total > 0"), alias)


def test_compiling_an_invalid_expression_raises_with_every_error():
    with pytest.raises(DefinitionInvalid) as raised:
        compile_rule(DEFINITION, "Order", expr("record.totl > 0 && record.nope", "/entities/Order/access/read"), "r")
    assert [(e.code, e.path) for e in raised.value.errors] == [
        ("expr.unknown_field", "/entities/Order/access/read")] * 2


def test_the_fragment_embeds_in_a_bigger_query():
    rule = compile_rule(DEFINITION, "Order", expr("record.customer.account == auth.id"), "o")
    query = sql.SQL("SELECT {} FROM {} AS {} WHERE {}").format(
        sql.Identifier("o", "id"), sql.Identifier("Order"), sql.Identifier("o"), rule.sql)
    assert query.as_string(None) == (
        'SELECT "o"."id" FROM "Order" AS "o" WHERE COALESCE(((SELECT "_x1"."account" FROM "Customer" '
        'AS "_x1" WHERE "_x1"."id" = "o"."customer") = %(auth.id)s::uuid), false)')
