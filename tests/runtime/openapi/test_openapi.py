"""The per-tenant OpenAPI document: valid OpenAPI 3 for every example, generated from the
definition (entities, filters, actions, transitions, auth), and only for the tenant's keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from runtime.api.openapi import build_document
from runtime.compile import compile_definition
from runtime.definition import load_definition
from tenants.definitions import definition_push
from tenants.services import Actor

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("example", ["todo", "shop", "helpdesk"])
def test_each_example_gives_a_valid_openapi_3_document(example):
    backend = compile_definition(load_definition((EXAMPLES / f"{example}.yaml").read_text()))
    document = build_document(backend, example, 1)
    validate(document)
    assert all(f"/rest/v1/{name}" in document["paths"] for name in backend.definition.entities)


def test_the_shop_document_lists_filters_actions_transitions_and_auth():
    backend = compile_definition(load_definition((EXAMPLES / "shop.yaml").read_text()))
    doc = build_document(backend, "shop", 3)
    assert doc["info"]["version"] == "3" and doc["servers"] == [{"url": "/t/shop"}]
    order = doc["paths"]["/rest/v1/Order"]
    assert {"get", "post", "patch", "delete"} <= set(order)
    assert "status" in {p.get("name") for p in order["get"]["parameters"]}
    assert doc["components"]["schemas"]["Order"]["properties"]["status"]["enum"] == [
        "draft", "placed", "paid", "shipped", "cancelled"]
    assert "/rest/v1/rpc/Order.place" in doc["paths"]
    assert doc["components"]["schemas"]["add_to_order_input"]["required"] == ["order", "product", "quantity"]
    assert "/auth/v1/signup" in doc["paths"] and "/auth/v1/token" in doc["paths"]
    assert "Only the service key" in doc["paths"]["/rest/v1/Customer"]["delete"]["description"]


def test_get_rest_v1_serves_the_document_with_the_tenants_key_only(committed_tenants, alice, client):
    tenant, keys = committed_tenants(alice, "Docs")
    other, other_keys = committed_tenants(alice, "Other")
    definition_push(tenant=tenant, source=(EXAMPLES / "todo.yaml").read_text(), content_type="application/yaml",
                    actor=Actor(alice))
    response = client.get(f"/t/{tenant.slug}/rest/v1/", HTTP_APIKEY=keys["anon"])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openapi+json")
    validate(json.loads(response.content))
    assert client.get(f"/t/{tenant.slug}/rest/v1/", HTTP_APIKEY=other_keys["anon"]).status_code == 401
    assert client.get(f"/t/{tenant.slug}/rest/v1/").status_code == 401
    # a tenant without a definition says so
    missing = client.get(f"/t/{other.slug}/rest/v1/", HTTP_APIKEY=other_keys["anon"])
    assert missing.status_code == 404 and "no definition" in missing.json()["message"]


def test_a_reused_slug_never_serves_the_previous_tenants_document(committed_tenants, alice, client):
    from tenants.services import tenant_delete

    first, keys = committed_tenants(alice, "Docs", slug="docs")
    definition_push(tenant=first, source=(EXAMPLES / "todo.yaml").read_text(), content_type="application/yaml",
                    actor=Actor(alice))
    assert "/rest/v1/Todo" in client.get("/t/docs/rest/v1/", HTTP_APIKEY=keys["anon"]).json()["paths"]
    tenant_delete(tenant=first, actor=Actor(alice))
    second, keys = committed_tenants(alice, "Docs again", slug="docs")
    definition_push(tenant=second, source=(EXAMPLES / "shop.yaml").read_text(), content_type="application/yaml",
                    actor=Actor(alice))
    paths = client.get("/t/docs/rest/v1/", HTTP_APIKEY=keys["anon"]).json()["paths"]
    assert "/rest/v1/Customer" in paths and "/rest/v1/Todo" not in paths
