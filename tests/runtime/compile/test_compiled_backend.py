"""The compiled backend against a real tenant schema: shop.yaml is pushed, rows are
inserted, and every compiled access rule, check, guard and invariant runs under the
tenant's role and answers what the definition says; the event graph names the right
jobs, workflows and invariant triggers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from psycopg import sql

from runtime.compile import compile_definition
from runtime.compile.events import Hop
from runtime.db import tenant_transaction
from runtime.definition import load_definition
from tenants.definitions import definition_push
from tenants.services import Actor

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def backend(name: str):
    return compile_definition(load_definition((EXAMPLES / f"{name}.yaml").read_text()))


def test_the_event_graph_of_shop_and_helpdesk():
    shop, helpdesk = backend("shop"), backend("helpdesk")
    assert dict(shop.events.starts) == {"Order.paid": (("job", "send_receipt"),)}
    assert dict(helpdesk.events.starts) == {"Ticket.created": (("job", "triage"), ("workflow", "sla"))}
    assert dict(helpdesk.events.waits) == {"Reply.created": ("sla",)}


def test_invariant_triggers_say_which_writes_recheck_which_anchors():
    shop = backend("shop")
    credit = shop.invariants["within_credit_limit"]
    assert {(t.written, t.hops) for t in credit.triggers} == {
        ("Customer", ()),
        ("Order", (Hop("up", "customer", "Order"),)),
    }
    lines = shop.invariants["order_total_matches_lines"]
    assert {(t.written, t.hops) for t in lines.triggers} == {
        ("Order", ()),
        ("OrderLine", (Hop("up", "order", "OrderLine"),)),
    }
    assert {t.invariant for t in shop.events.invariants_by_entity["Order"]} == {
        "within_credit_limit", "order_total_matches_lines",
    }
    assert "Product" not in shop.events.invariants_by_entity


def test_a_whole_entity_collection_in_an_invariant_triggers_every_anchor():
    definition = load_definition(
        """
version: 1
entities:
  Team: {fields: {name: {type: string}}}
  Seat: {fields: {team: {type: ref, to: Team, related_name: seats}, holder: {type: user}}}
invariants:
  someone_somewhere:
    for: Team
    rule: "Seat.exists(s, s.team == record.id)"
"""
    )
    triggers = compile_definition(definition).invariants["someone_somewhere"].triggers
    assert {(t.written, t.all_anchors) for t in triggers} == {("Team", False), ("Seat", True)}


def test_two_hops_invert_through_a_middle_entity():
    definition = load_definition(
        """
version: 1
entities:
  Customer: {fields: {name: {type: string}, limit: {type: decimal, default: 0}}}
  Order: {fields: {customer: {type: ref, to: Customer, related_name: orders}}}
  Line: {fields: {order: {type: ref, to: Order, related_name: lines}, amount: {type: decimal, default: 0}}}
invariants:
  lines_within_limit:
    for: Customer
    rule: "record.orders.map(o, o.lines.map(l, l.amount).sum()).sum() <= record.limit"
"""
    )
    triggers = {t.written: t.hops for t in compile_definition(definition).invariants["lines_within_limit"].triggers}
    assert triggers["Line"] == (Hop("up", "order", "Line"), Hop("up", "customer", "Order"))


@pytest.fixture
def shop_tenant(committed_tenants, alice):
    tenant, _ = committed_tenants(alice, "Shop")
    result = definition_push(
        tenant=tenant, source=(EXAMPLES / "shop.yaml").read_text(), content_type="application/yaml", actor=Actor(alice)
    )
    assert result.status == "applied", result.errors
    ids = {k: uuid.uuid4() for k in ("ann", "bob", "staff", "c_ann", "c_bob", "o_ann", "o_bob")}
    with tenant_transaction(tenant.id) as conn:
        for user, role in (("ann", "customer"), ("bob", "customer"), ("staff", "staff")):
            conn.execute("INSERT INTO _users (id, email, role) VALUES (%s, %s, %s)", [ids[user], f"{user}@x.io", role])
        for who in ("ann", "bob"):
            conn.execute(
                'INSERT INTO "Customer" (id, account, name, email, credit_limit) VALUES (%s, %s, %s, %s, 100)',
                [ids[f"c_{who}"], ids[who], who, f"{who}@shop.io"],
            )
            conn.execute(
                'INSERT INTO "Order" (id, customer, total, status) VALUES (%s, %s, %s, %s)',
                [ids[f"o_{who}"], ids[f"c_{who}"], 60 if who == "ann" else 0, "placed" if who == "ann" else "draft"],
            )
    return tenant, ids


def visible(tenant, entity, rule, auth) -> int:
    query = sql.SQL("SELECT count(*) FROM {} AS r WHERE {}").format(sql.Identifier(entity), rule.sql.sql)
    with tenant_transaction(tenant.id) as conn:
        return conn.execute(query, rule.sql.bind(auth=auth)).fetchone()[0]


@pytest.mark.parametrize(
    "who,entity,expected",
    [
        ("ann", "Order", 1), ("bob", "Order", 1), ("staff", "Order", 2), (None, "Order", 0),
        ("ann", "Customer", 1), ("staff", "Customer", 2), (None, "Customer", 0),
        (None, "Product", 0), ("ann", "OrderLine", 0),
    ],
)
def test_compiled_read_rules_run_under_the_tenant_role_and_show_exactly_the_allowed_rows(shop_tenant, who, entity, expected):
    tenant, ids = shop_tenant
    roles = {"ann": "customer", "bob": "customer", "staff": "staff"}
    auth = None if who is None else {"id": ids[who], "role": roles[who], "email": f"{who}@x.io"}
    rule = backend("shop").entities[entity].access["read"]
    assert visible(tenant, entity, rule, auth) == expected


def test_compiled_guard_and_invariant_evaluate_on_real_rows(shop_tenant):
    tenant, ids = shop_tenant
    shop = backend("shop")
    place = shop.entities["Order"].transitions["place"]
    assert place.from_states == ("draft",) and place.to == "placed"
    # bob's draft has total 0: the guard `record.total > 0` is false; ann's is true
    assert visible(tenant, "Order", place.guard, None) == 1
    credit = shop.invariants["within_credit_limit"]
    assert visible(tenant, "Customer", credit.rule, None) == 2     # 60 <= 100 for ann, 0 for bob
    with tenant_transaction(tenant.id) as conn:
        conn.execute('UPDATE "Customer" SET credit_limit = 50 WHERE id = %s', [ids["c_ann"]])
    assert visible(tenant, "Customer", credit.rule, None) == 1     # ann's 60 > 50 now breaks it
