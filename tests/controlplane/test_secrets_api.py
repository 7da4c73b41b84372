"""Secrets and AI settings through the admin API: write-only values, encrypted at rest,
names checked, declared names listed, who may do what, and the value never in an answer,
an error, the audit log or a log line.

Alice owns `acme`, Bob is a viewer on it, Dave a developer, Charlie a stranger.
"""

from __future__ import annotations

import json
import logging

import pytest

from tenants import ai as tenant_ai
from tenants.definitions import definition_push
from tenants.models import AuditEvent, Secret
from tenants.secrets import secret_set, secrets_for
from tenants.services import Actor, member_set
from tests.conftest import client_for, make_user

VALUE = "whsec_Zq8Xw2LmN4pR7tY1"
SECRETS = "/api/v1/tenants/acme/secrets"


@pytest.fixture
def dave(acme, alice):
    user = make_user("dave@example.com")
    member_set(tenant=acme, email=user.email, role="developer", actor=Actor(alice))
    return user


def put(client, name: str, value=VALUE, path=SECRETS):
    return client.put(f"{path}/{name}", {"value": value}, format="json")


def assert_error_shape(response, status: int, code: str, path: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "errors"} and body["message"]
    assert body["code"] == code
    if path is not None:
        assert [e["path"] for e in body["errors"]] == [path]


# setting, listing, removing -------------------------------------------------------------


def test_a_secret_is_set_once_replaced_and_never_answered(acme, alice):
    client = client_for(alice)
    created = put(client, "MAIL_KEY")
    assert created.status_code == 201
    assert created.json() == {"name": "MAIL_KEY", "declared": False, "set": True,
                              "updated_at": created.json()["updated_at"], "updated_by": "alice@example.com"}
    replaced = put(client, "MAIL_KEY", "another-value")
    assert replaced.status_code == 200
    listed = client.get(SECRETS)
    assert [s["name"] for s in listed.json()] == ["MAIL_KEY"]
    for response in (created, replaced, listed):
        assert VALUE not in response.content.decode() and "another-value" not in response.content.decode()
    assert secrets_for(acme.id) == {"MAIL_KEY": "another-value"}


def test_values_are_encrypted_at_rest(acme, alice):
    put(client_for(alice), "MAIL_KEY")
    stored = bytes(Secret.objects.get(tenant=acme, name="MAIL_KEY").value)
    assert VALUE.encode() not in stored and stored.startswith(b"gAAAAA")  # a Fernet token


def test_the_list_shows_declared_names_set_or_not(acme, alice):
    definition_push(tenant=acme, source="version: 1\nsecrets: [MAIL_KEY, WEBHOOK_TOKEN]\n", actor=Actor(alice))
    client = client_for(alice)
    put(client, "MAIL_KEY")
    put(client, "LEFTOVER")
    listed = {s["name"]: s for s in client.get(SECRETS).json()}
    assert {name: (s["declared"], s["set"]) for name, s in listed.items()} == {
        "LEFTOVER": (False, True),
        "MAIL_KEY": (True, True),
        "WEBHOOK_TOKEN": (True, False),
    }
    assert listed["WEBHOOK_TOKEN"]["updated_at"] is None and listed["WEBHOOK_TOKEN"]["updated_by"] is None


def test_removing_a_secret_and_removing_it_again(acme, alice):
    client = client_for(alice)
    put(client, "MAIL_KEY")
    assert client.delete(f"{SECRETS}/MAIL_KEY").status_code == 204
    assert client.get(SECRETS).json() == []
    assert_error_shape(client.delete(f"{SECRETS}/MAIL_KEY"), 404, "not_found")
    assert secrets_for(acme.id) == {}


@pytest.mark.parametrize("name", ["mail_key", "Mail_Key", "1KEY", "_KEY", "MAIL-KEY", "K" * 49, "MAIL%20KEY"])
def test_names_must_be_upper_snake_case_of_at_most_48(acme, alice, name):
    response = put(client_for(alice), name)
    assert_error_shape(response, 400, "invalid_name", "")
    assert VALUE not in response.content.decode()


def test_a_48_character_name_is_fine(acme, alice):
    assert put(client_for(alice), "K" * 48).status_code == 201


@pytest.mark.parametrize(
    "body,code",
    [
        ({"value": ""}, "blank"),
        ({"value": 12345}, "invalid"),
        ({"value": None}, "invalid"),
        ({"value": ["x"]}, "invalid"),
        ({}, "required"),
        ({"value": "é" * 4097}, "too_long"),     # 8194 bytes in UTF-8
    ],
)
def test_values_are_non_empty_strings_of_at_most_8_kb(acme, alice, body, code):
    response = client_for(alice).put(f"{SECRETS}/MAIL_KEY", body, format="json")
    assert_error_shape(response, 400, code, "/value")
    assert not Secret.objects.filter(tenant=acme).exists()


def test_exactly_8_kb_is_fine(acme, alice):
    assert put(client_for(alice), "BIG", "x" * 8192).status_code == 201


def test_a_body_that_is_not_an_object_is_refused(acme, alice):
    response = client_for(alice).put(f"{SECRETS}/MAIL_KEY", ["value"], format="json")
    assert_error_shape(response, 400, "required", "/value")


# audit and logs -------------------------------------------------------------------------


def test_changes_are_audited_without_the_value(acme, alice, caplog):
    client = client_for(alice)
    with caplog.at_level(logging.DEBUG):
        put(client, "MAIL_KEY")
        put(client, "MAIL_KEY", VALUE + "-2")
        client.delete(f"{SECRETS}/MAIL_KEY")
    events = list(AuditEvent.objects.filter(tenant=acme, action__startswith="secret.").order_by("id"))
    assert [(e.action, e.data) for e in events] == [
        ("secret.set", {"name": "MAIL_KEY", "created": True}),
        ("secret.set", {"name": "MAIL_KEY", "created": False}),
        ("secret.delete", {"name": "MAIL_KEY"}),
    ]
    assert all(e.actor == alice for e in events)
    audit = client.get("/api/v1/tenants/acme/audit").content.decode()
    assert "secret.set" in audit and VALUE not in audit
    assert VALUE not in caplog.text and all(VALUE not in r.getMessage() for r in caplog.records)


# who may do what ------------------------------------------------------------------------

# (method, path, body, {person: expected status})
SCENARIOS = [
    ("get", SECRETS, None, {"alice": 200, "dave": 200, "bob": 200, "charlie": 404, "anon": 401}),
    ("put", f"{SECRETS}/NEW_KEY", {"value": VALUE},
     {"alice": 201, "dave": 201, "bob": 403, "charlie": 404, "anon": 401}),
    ("put", f"{SECRETS}/SET_KEY", {"value": VALUE},
     {"alice": 200, "dave": 200, "bob": 403, "charlie": 404, "anon": 401}),
    ("delete", f"{SECRETS}/SET_KEY", None, {"alice": 204, "dave": 204, "bob": 403, "charlie": 404, "anon": 401}),
    ("get", "/api/v1/tenants/acme/ai", None, {"alice": 200, "dave": 200, "bob": 200, "charlie": 404, "anon": 401}),
    ("put", "/api/v1/tenants/acme/ai", {"base_url": "https://api.example/v1", "model": "m"},
     {"alice": 200, "dave": 200, "bob": 403, "charlie": 404, "anon": 401}),
    ("get", "/api/v1/tenants/nope/secrets", None, {"alice": 404, "dave": 404, "bob": 404, "charlie": 404, "anon": 401}),
    ("put", "/api/v1/tenants/nope/secrets/KEY", {"value": VALUE},
     {"alice": 404, "dave": 404, "bob": 404, "charlie": 404, "anon": 401}),
]


@pytest.mark.parametrize("method,path,body,expected", SCENARIOS, ids=[f"{s[0]} {s[1]}" for s in SCENARIOS])
def test_each_person_gets_exactly_the_access_their_role_gives(acme, alice, bob, charlie, dave, method, path, body,
                                                               expected):
    people = {"alice": alice, "dave": dave, "bob": bob, "charlie": charlie, "anon": None}
    for person, user in people.items():
        # the same starting point for everyone: SET_KEY set, NEW_KEY not
        Secret.objects.filter(tenant=acme, name="NEW_KEY").delete()
        secret_set(tenant=acme, name="SET_KEY", value="old-value", actor=Actor(alice))
        client = client_for(user)
        response = getattr(client, method)(path, body, format="json") if body else getattr(client, method)(path)
        assert response.status_code == expected[person], (person, response.content)
        text = response.content.decode()
        assert VALUE not in text and "old-value" not in text
        if response.status_code >= 400:
            assert set(response.json()) == {"code", "message", "errors"}
        if response.status_code == 403:
            assert response.json()["code"] == "permission_denied"


def test_a_refused_change_changes_nothing(acme, alice, bob, charlie):
    put(client_for(alice), "MAIL_KEY", "original")
    put(client_for(bob), "MAIL_KEY", "from-bob")
    put(client_for(charlie), "MAIL_KEY", "from-charlie")
    client_for(bob).delete(f"{SECRETS}/MAIL_KEY")
    assert secrets_for(acme.id) == {"MAIL_KEY": "original"}


# AI settings -----------------------------------------------------------------------------

AI = "/api/v1/tenants/acme/ai"


def test_before_any_settings_ai_is_unconfigured_with_the_defaults(acme, alice):
    body = client_for(alice).get(AI).json()
    assert body["configured"] is False and body["base_url"] is None and body["model"] is None
    assert body["key_secret"] == "AI_API_KEY" and body["key_set"] is False
    assert body["monthly_token_budget"] == 1_000_000 and body["tokens_used"] == 0


def test_settings_are_saved_and_shown_with_this_months_usage_but_never_the_key(acme, alice):
    client = client_for(alice)
    put(client, "OPENAI_KEY", "sk-never-shown")
    response = client.put(AI, {"base_url": "https://api.openai.com/v1/", "model": "gpt-4o-mini",
                               "key_secret": "OPENAI_KEY", "monthly_token_budget": 50_000}, format="json")
    assert response.status_code == 200, response.content
    tenant_ai.record_usage(acme.id, 1234)
    body = client.get(AI).json()
    assert body["configured"] is True
    assert body["base_url"] == "https://api.openai.com/v1"  # the trailing slash goes
    assert (body["model"], body["key_secret"], body["key_set"]) == ("gpt-4o-mini", "OPENAI_KEY", True)
    assert (body["monthly_token_budget"], body["tokens_used"]) == (50_000, 1234)
    assert len(body["month"]) == 7 and body["updated_by"] == "alice@example.com"
    assert "sk-never-shown" not in response.content.decode() + json.dumps(body)
    event = AuditEvent.objects.get(tenant=acme, action="ai.update")
    assert event.data == {"base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini",
                          "key_secret": "OPENAI_KEY", "monthly_token_budget": 50_000}


def test_a_put_replaces_the_settings_and_omitted_ones_take_their_defaults(acme, alice):
    client = client_for(alice)
    client.put(AI, {"base_url": "https://a.example", "model": "m1", "monthly_token_budget": 5}, format="json")
    body = client.put(AI, {"base_url": "https://b.example", "model": "m2"}, format="json").json()
    assert (body["base_url"], body["model"], body["monthly_token_budget"]) == ("https://b.example", "m2", 1_000_000)


@pytest.mark.parametrize(
    "body,path",
    [
        ({"model": "m"}, "/base_url"),
        ({"base_url": "https://a.example"}, "/model"),
        ({"base_url": "ftp://a.example", "model": "m"}, "/base_url"),
        ({"base_url": "https://user:sk-123@a.example/v1", "model": "m"}, "/base_url"),
        ({"base_url": "https://a.example/v1?key=x", "model": "m"}, "/base_url"),
        ({"base_url": "not a url", "model": "m"}, "/base_url"),
        ({"base_url": "https://a.example", "model": "m", "key_secret": "lower"}, "/key_secret"),
        ({"base_url": "https://a.example", "model": "m", "monthly_token_budget": -1}, "/monthly_token_budget"),
        ({"base_url": "https://a.example", "model": "m", "monthly_token_budget": "lots"}, "/monthly_token_budget"),
    ],
)
def test_ai_settings_are_validated(acme, alice, body, path):
    response = client_for(alice).put(AI, body, format="json")
    assert response.status_code == 400, response.content
    assert path in [e["path"] for e in response.json()["errors"]]
    assert "sk-123" not in response.content.decode()
    assert client_for(alice).get(AI).json()["configured"] is False


def test_a_zero_budget_is_allowed(acme, alice):
    response = client_for(alice).put(AI, {"base_url": "http://127.0.0.1:9/v1", "model": "m",
                                          "monthly_token_budget": 0}, format="json")
    assert response.status_code == 200 and response.json()["monthly_token_budget"] == 0


def test_the_openapi_document_describes_the_endpoints(db):
    from rest_framework.test import APIClient

    paths = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert {"get"} <= set(paths["/api/v1/tenants/{slug}/secrets"])
    assert {"put", "delete"} <= set(paths["/api/v1/tenants/{slug}/secrets/{name}"])
    assert {"get", "put"} <= set(paths["/api/v1/tenants/{slug}/ai"])
