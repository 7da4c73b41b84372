"""The example definitions validate with zero errors and build the model the runtime expects."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runtime.definition import Definition, load_definition, parse_definition, validate_definition
from runtime.definition.model import DEFAULT_AUTH_ID, DEFAULT_NOW, Expr, Step

EXAMPLES = Path(__file__).parents[3] / "examples"


def load(name: str) -> Definition:
    return load_definition((EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8"))


def test_every_example_is_valid(example_text):
    definition = load_definition(example_text)
    assert definition.version == 1
    assert definition.source == parse_definition(example_text)


def test_yaml_and_json_build_the_same_definition(example_text):
    import json

    tree = parse_definition(example_text)
    assert load_definition(json.dumps(tree), "application/json") == load_definition(example_text)


def test_entities_get_system_fields_and_normalised_options():
    shop = load("shop")
    order = shop.entities["Order"]
    assert list(order.fields)[:1] == ["id"] and list(order.fields)[-2:] == ["created_at", "updated_at"]
    assert order.fields["id"].system and order.fields["id"].type == "uuid"
    assert order.fields["created_at"].default == DEFAULT_NOW
    assert order.fields["customer"].to == "Customer" and order.fields["customer"].related_name == "orders"
    assert shop.entities["Product"].fields["title"].max_length == 255   # strings default to 255
    assert shop.entities["Customer"].fields["name"].max_length == 200
    assert order.indexes == (("customer", "status"),)
    assert order.fields["customer"].path == "/entities/Order/fields/customer"


def test_state_machines_are_normalised():
    order = load("shop").entities["Order"]
    assert order.states.field == "status"
    assert order.states.transitions["place"].from_states == ("draft",)
    assert order.states.transitions["cancel"].from_states == ("draft", "placed")
    place = order.states.transitions["place"]
    assert place.when == Expr("record.total > 0", "/entities/Order/states/transitions/place/when")


def test_jobs_have_seconds_and_tuples():
    shop = load("shop")
    receipt = shop.jobs["send_receipt"]
    assert receipt.on == ("Order.paid",)
    assert receipt.retry.attempts == 5 and receipt.retry.backoff_seconds == 30.0
    assert receipt.timeout_seconds == 30.0
    assert shop.jobs["cancel_stale_drafts"].schedule == "0 * * * *"


def test_steps_carry_expressions_with_paths():
    shop = load("shop")
    http, update = shop.jobs["send_receipt"].steps
    assert isinstance(http, Step) and http.kind == "http" and http.path == "/jobs/send_receipt/steps/0"
    assert http.target["method"] == "POST"
    assert http.target["headers"]["Authorization"].path == "/jobs/send_receipt/steps/0/http/headers/Authorization"
    assert http.target["body"]["to"].source == "input.record.customer.email"
    assert update.target == "Order"
    assert update.args["id"] == Expr("input.record.id", "/jobs/send_receipt/steps/1/id")
    assert update.args["set"]["receipt_sent"] == Expr("true", "/jobs/send_receipt/steps/1/set/receipt_sent",
                                                      literal=True, is_literal=True)
    loop = shop.jobs["cancel_stale_drafts"].steps[0]
    assert loop.kind == "for_each" and loop.as_name == "stale"
    assert loop.args["do"][0].kind == "transition" and loop.args["do"][0].target == "Order.cancel"


def test_workflow_steps_and_ai_outputs():
    helpdesk = load("helpdesk")
    wait, branch = helpdesk.workflows["sla"].steps
    assert wait.target["event"] == "Reply.created" and wait.target["timeout"] == 4 * 3600
    assert wait.as_name == "first_reply"
    assert branch.args["then"][0].target == "Ticket.escalate"
    ai = helpdesk.jobs["triage"].steps[0]
    assert ai.target["output"]["priority"].values == ("low", "normal", "high", "urgent")
    assert helpdesk.entities["Ticket"].fields["author"].default == DEFAULT_AUTH_ID


def test_literals_get_their_cel_spelling():
    tree = {"version": 1, "entities": {"Item": {"fields": {"n": {"type": "float"}, "b": {"type": "boolean"},
                                                          "j": {"type": "json"}}}},
            "actions": {"a": {"steps": [{"create": "Item", "set": {"n": 2.5, "b": False, "j": None}}],
                              "returns": 7}}}
    action = validate_definition(tree).actions["a"]
    values = action.steps[0].args["set"]
    assert [values[k].source for k in ("n", "b", "j")] == ["2.5", "false", "null"]
    assert values["b"].is_literal and values["b"].literal is False
    assert action.returns == Expr("7", "/actions/a/returns", literal=7, is_literal=True)


@pytest.mark.parametrize("name", ["shop", "helpdesk"])
def test_validation_is_fast(name):
    tree = parse_definition((EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8"))
    validate_definition(tree, typecheck=False)   # warm caches (schema, CEL grammar)
    runs = []
    for _ in range(15):
        start = time.perf_counter()
        validate_definition(tree, typecheck=False)
        runs.append(time.perf_counter() - start)
    # A few ms on a developer machine; the bound is loose so that a busy CI box does not flake.
    assert sorted(runs)[len(runs) // 2] < 0.05
