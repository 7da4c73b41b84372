"""Tenants, accounts and tokens through the admin API: the answers' shapes, idempotent
creation, and input that must never produce a 500."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tenants.keys import key_is_live
from tenants.models import AuditEvent, IdempotencyRecord, Tenant
from tests.conftest import PASSWORD, client_for


def test_signup_answers_a_token_that_works(db):
    client = APIClient()
    response = client.post("/api/v1/auth/signup", {"email": "New@Example.com", "password": PASSWORD}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "new@example.com" and body["token"].startswith("plt_")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert client.get("/api/v1/tenants").status_code == 200


@pytest.mark.parametrize(
    "body,code,path",
    [
        ({"email": "x@example.com", "password": "123"}, "weak_password", "/password"),
        ({"email": "not-an-email", "password": PASSWORD}, "invalid_email", "/email"),
        ({"password": PASSWORD}, "required", "/email"),
        ({"email": "x@example.com"}, "required", "/password"),
        ({"email": ["x"], "password": PASSWORD}, "invalid", "/email"),
    ],
)
def test_signup_names_what_is_wrong_and_where(db, body, code, path):
    response = APIClient().post("/api/v1/auth/signup", body, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {"code": code, "path": path} in [{"code": e["code"], "path": e["path"]} for e in errors]


def test_signing_up_twice_with_one_email_is_a_conflict(alice):
    response = APIClient().post("/api/v1/auth/signup", {"email": alice.email, "password": PASSWORD}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


def test_token_trades_email_and_password_and_refuses_a_wrong_password(alice):
    good = APIClient().post("/api/v1/auth/token", {"email": "ALICE@example.com", "password": PASSWORD}, format="json")
    assert good.status_code == 201 and good.json()["token"].startswith("plt_")
    bad = APIClient().post("/api/v1/auth/token", {"email": alice.email, "password": "s3cret-guess"}, format="json")
    assert bad.status_code == 401 and bad.json()["code"] == "invalid_credentials"
    assert "s3cret-guess" not in bad.content.decode()


def test_creating_a_tenant_answers_its_url_and_live_keys_once(alice):
    client = client_for(alice)
    response = client.post("/api/v1/tenants", {"name": "Acme Corp"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"slug", "name", "status", "data_api_url", "keys"}
    assert body["slug"] == "acme-corp" and body["status"] == "active"
    assert body["data_api_url"].endswith("/t/acme-corp")
    tenant = Tenant.objects.get(slug="acme-corp")
    assert key_is_live(tenant, body["keys"]["anon"]) and key_is_live(tenant, body["keys"]["service"])
    # never again: reading the tenant does not show keys
    assert "keys" not in client.get("/api/v1/tenants/acme-corp").json()
    assert AuditEvent.objects.filter(tenant=tenant, action="tenant.create", actor=alice).exists()


def test_slugs_are_validated_and_unique(alice):
    client = client_for(alice)
    assert client.post("/api/v1/tenants", {"name": "A", "slug": "ok-slug"}, format="json").status_code == 201
    taken = client.post("/api/v1/tenants", {"name": "B", "slug": "ok-slug"}, format="json")
    assert taken.status_code == 409 and taken.json()["errors"][0]["path"] == "/slug"
    for bad in ("Bad Slug", "-x", "x-", "a" * 41, "t_1; drop", "ü"):
        response = client.post("/api/v1/tenants", {"name": "C", "slug": bad}, format="json")
        assert response.status_code == 400, bad
        assert response.json()["errors"][0]["path"] == "/slug"
    # the same name twice gets a second slug, not an error
    assert client.post("/api/v1/tenants", {"name": "Same"}, format="json").json()["slug"] == "same"
    assert client.post("/api/v1/tenants", {"name": "Same"}, format="json").json()["slug"] == "same-2"


def test_the_same_idempotency_key_and_body_answer_the_first_answer_again(alice):
    client = client_for(alice)
    first = client.post("/api/v1/tenants", {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/api/v1/tenants", {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Tenant.objects.filter(name="Once").count() == 1
    # the stored answer holds keys: it is encrypted at rest
    stored = bytes(IdempotencyRecord.objects.get(key="k-1").body)
    assert first.json()["keys"]["anon"].encode() not in stored


def test_an_idempotency_key_reused_with_another_body_is_refused(alice):
    client = client_for(alice)
    client.post("/api/v1/tenants", {"name": "One"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    other = client.post("/api/v1/tenants", {"name": "Two"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert not Tenant.objects.filter(name="Two").exists()


def test_idempotency_keys_belong_to_their_user(alice, bob):
    a = client_for(alice).post("/api/v1/tenants", {"name": "Shared"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    b = client_for(bob).post("/api/v1/tenants", {"name": "Shared"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert a.json()["slug"] != b.json()["slug"]


def test_concurrent_creates_with_one_idempotency_key_make_one_tenant(committed_tenants, alice):
    from django.db import connections

    answers = []

    def create():
        try:
            client = client_for(alice)
            response = client.post("/api/v1/tenants", {"name": "Race"}, format="json", HTTP_IDEMPOTENCY_KEY="race")
            answers.append((response.status_code, response.json()["slug"]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 6 and {a for a in answers} == {(201, "race")}
    tenants = list(Tenant.objects.filter(name="Race"))
    assert len(tenants) == 1
    from tenants import services

    services.tenant_delete(tenant=tenants[0], actor=services.Actor(alice))


def test_patch_renames_and_suspends(acme, alice):
    client = client_for(alice)
    response = client.patch("/api/v1/tenants/acme", {"name": "Acme Two", "status": "suspended"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme Two" and response.json()["status"] == "suspended"
    bad = client.patch("/api/v1/tenants/acme", {"status": "gone"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "/status"


def test_rotating_a_key_stops_the_old_one_at_once(acme, alice):
    from tenants import services

    old = services.key_rotate(tenant=acme, kind="anon", actor=services.Actor(alice))
    new = client_for(alice).post("/api/v1/tenants/acme/keys", {"kind": "anon"}, format="json").json()["key"]
    assert key_is_live(acme, new) and not key_is_live(acme, old)


def test_deleting_through_the_api_drops_the_schema(alice):
    client = client_for(alice)
    slug = client.post("/api/v1/tenants", {"name": "Short lived"}, format="json").json()["slug"]
    tenant_id = Tenant.objects.get(slug=slug).id
    assert client.delete(f"/api/v1/tenants/{slug}").status_code == 204
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [f"t_{tenant_id}"])
        assert cur.fetchone()[0] == 0
    assert client.get(f"/api/v1/tenants/{slug}").status_code == 404


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"name": json_values, "slug": json_values}).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]))
def test_no_body_however_malformed_gets_a_500(alice, body, content_type):
    client = client_for(alice)
    for path in ("/api/v1/tenants", "/api/v1/auth/signup", "/api/v1/auth/token"):
        response = client.generic("POST", path, body, content_type=content_type)
        assert response.status_code < 500, (path, body, response.content)
        if response.status_code >= 400:
            assert {"code", "message", "errors"} <= set(response.json())
