"""The walk over a whole definition: every expression found, in the right scope and role.

Definitions are written as YAML and loaded through the real loader (which runs
`typecheck_definition` itself, so loading without an exception already means "no errors").
"""

from __future__ import annotations

import pytest

from runtime.expressions import compile_expression, expression_sites, typecheck_definition
from runtime.expressions import types as T

ONBOARDING = """
version: 1
secrets: [CRM_KEY]
entities:
  Customer:
    fields:
      email: {type: email}
      vip: {type: boolean}
  Order:
    fields:
      customer: {type: ref, to: Customer, related_name: orders}
      total: {type: decimal}
      status: {type: enum, values: [draft, paid], default: draft}
    states:
      field: status
      transitions:
        pay:
          from: draft
          to: paid
          steps:
            - update: Customer
              id: record.customer
              set: {vip: "record.total > 100 || record.customer.vip"}
jobs:
  send_nudge:
    input: {customer: {type: ref, to: Customer}}
    steps:
      - assert: "input.customer.email != null"
workflows:
  onboarding:
    input: {customer: {type: ref, to: Customer}}
    on: [Customer.created]
    steps:
      - http: {method: POST, url: "'https://crm.example/contacts'",
               headers: {Authorization: "'Bearer ' + secrets.CRM_KEY"},
               body: {email: "input.customer.email"}}
        as: contact
        compensate:
          - http: {method: DELETE, url: "'https://crm.example/contacts/' + contact.body.id"}
      - let: {spent: "input.record.orders.map(o, o.total).sum()", open: "input.record.orders.filter(o, o.status == 'draft')"}
      - for_each: open
        as: order
        do:
          - assert: "order.total <= spent"
      - wait: {event: Order.paid, match: "event.record.customer == input.customer.id", timeout: 7d}
        as: first_order
      - if: "first_order == null && contact.status == 201"
        then:
          - enqueue: send_nudge
            with: {customer: input.customer.id}
        else:
          - update: Order
            where: "record.customer == input.record && record.total < first_order.total"
            set: {total: "first_order.total + 1"}
"""


def load(text: str):
    try:
        from runtime.definition import load_definition
    except ImportError as ex:  # pragma: no cover - the parser is written in parallel
        pytest.skip(f"runtime.definition.load_definition is not available yet: {ex}")
    return load_definition(text, "application/yaml")


def test_the_spec_s_workflow_shapes_type_check():
    definition = load(ONBOARDING)
    assert typecheck_definition(definition) == []


def test_sites_carry_scope_role_and_the_record_alias():
    definition = load(ONBOARDING)
    sites = {s.expr.path: s for s in expression_sites(definition)}
    base = "/workflows/onboarding/steps"
    assert sites[f"{base}/0/compensate/0/http/url"].scope.bindings["contact"] == T.Obj(
        "an http result", (("status", T.INT), ("body", T.DYN), ("headers", T.DYN)))
    assert sites[f"{base}/0/http/headers/Authorization"].scope.secrets is True
    assert sites[f"{base}/1/let/spent"].type == T.DECIMAL
    assert sites[f"{base}/2/for_each"].type == T.Collection(T.Row("Order"))
    assert sites[f"{base}/2/do/0/assert"].scope.bindings["order"] == T.Row("Order")
    assert sites[f"{base}/3/wait/match"].role == "condition"
    assert sites[f"{base}/4/if"].scope.bindings["first_order"] == T.Row("Order")
    where = sites[f"{base}/4/else/0/where"]
    assert (where.role, where.record_alias, where.scope.record) == ("condition", True, "Order")
    pay_set = sites["/entities/Order/states/transitions/pay/steps/0/set/vip"]
    assert (pay_set.scope.record, pay_set.record_alias, pay_set.expect) == ("Order", False, T.BOOL)
    pay_id = sites["/entities/Order/states/transitions/pay/steps/0/id"]
    assert (pay_id.scope.record, pay_id.record_alias) == ("Order", False)


def test_transition_steps_read_record_through_its_id_parameter():
    definition = load(ONBOARDING)
    site = next(s for s in expression_sites(definition)
                if s.expr.path == "/entities/Order/states/transitions/pay/steps/0/id")
    compiled = compile_expression(definition, site.expr, site.scope, expect=site.expect)
    assert compiled.as_string() == '(SELECT "_x1"."customer" FROM "Order" AS "_x1" WHERE "_x1"."id" = %(record.id)s::uuid)'
    assert compiled.bind(record={"id": "r1"}) == {"record.id": "r1"}


def test_let_bound_collections_travel_as_arrays():
    definition = load(ONBOARDING)
    sites = {s.expr.path: s for s in expression_sites(definition)}
    let = sites["/workflows/onboarding/steps/1/let/open"]
    assert compile_expression(definition, let.expr, let.scope).as_string() == (
        'ARRAY(SELECT "_x1"."id" FROM "Order" AS "_x1" WHERE "_x1"."customer" = %(input.record.id)s::uuid '
        'AND ("_x1"."status" = %(lit:draft)s::text) ORDER BY "_x1"."created_at", "_x1"."id")')
    loop = sites["/workflows/onboarding/steps/2/for_each"]
    assert compile_expression(definition, loop.expr, loop.scope).as_string() == "%(open)s::uuid[]"
    check = sites["/workflows/onboarding/steps/2/do/0/assert"]
    assert compile_expression(definition, check.expr, check.scope, condition=True).as_string() == (
        'COALESCE(((SELECT "_x1"."total" FROM "Order" AS "_x1" WHERE "_x1"."id" = %(order.id)s::uuid) '
        '<= %(spent)s::numeric), false)')


def test_a_malformed_tree_gives_errors_not_exceptions():
    from dataclasses import replace

    from expr_defs import entity, expr, shop
    from runtime.definition.model import Action, Expr, Invariant, Step

    base = shop()
    odd_steps = (
        Step("create", "Nope", {"set": {"x": expr("1")}}, "/actions/odd/steps/0", "made"),
        Step("update", None, None, "/actions/odd/steps/1"),
        Step("mystery", {"a": [expr("made.x"), None]}, {"then": "not steps"}, "/actions/odd/steps/2"),
        Step("for_each", expr("input.n"), {"do": (Step("assert", expr("item"), {}, "/x/0"),)}, "/actions/odd/steps/3", "item"),
        Step("http", "not a mapping", {}, "/actions/odd/steps/4", "contact"),
        Step("wait", {"event": 42, "match": expr("event.record == null")}, {}, "/actions/odd/steps/5", "w"),
        Step("let", {"input": expr("1", "/actions/odd/steps/6/let/input")}, {}, "/actions/odd/steps/6"),
        Step("assert", Expr(None, "/actions/odd/steps/7/assert"), {}, "/actions/odd/steps/7"),
    )
    definition = replace(
        base,
        entities={**base.entities, "Dangling": entity("Dangling", to="ref:Nowhere", access={"read": "record.to.x == 1"})},
        actions={"odd": Action("odd", {}, odd_steps, "/actions/odd", returns=expr("made"))},
        invariants={"lost": Invariant("lost", "Nowhere", expr("record.x"), None, "/invariants/lost")},
    )
    errors = typecheck_definition(definition)
    assert errors and all(e.code.startswith("expr.") and e.code != "expr.internal" for e in errors)
    assert {e.path for e in errors} >= {"/actions/odd/steps/6/let/input", "/actions/odd/steps/7/assert"}
