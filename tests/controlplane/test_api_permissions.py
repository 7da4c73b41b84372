"""Every admin endpoint against named people: Alice owns `acme`, Bob is her teammate with
viewer rights, Charlie is a stranger, and an anonymous caller has no token.

A stranger gets 404 (he cannot learn the tenant exists); a viewer may look but not change;
the owner may do everything. Each row is one request; the expected status per person.
"""

from __future__ import annotations

import pytest

from tests.conftest import client_for, make_user

# (method, path, body, {person: expected status})
SCENARIOS = [
    ("get", "/api/v1/tenants/acme", None, {"alice": 200, "bob": 200, "charlie": 404, "anon": 401}),
    ("patch", "/api/v1/tenants/acme", {"name": "Acme 2"}, {"alice": 200, "bob": 403, "charlie": 404, "anon": 401}),
    ("delete", "/api/v1/tenants/acme", None, {"alice": 204, "bob": 403, "charlie": 404, "anon": 401}),
    ("post", "/api/v1/tenants/acme/keys", {"kind": "anon"}, {"alice": 201, "bob": 403, "charlie": 404, "anon": 401}),
    ("get", "/api/v1/tenants/acme/members", None, {"alice": 200, "bob": 200, "charlie": 404, "anon": 401}),
    (
        "post",
        "/api/v1/tenants/acme/members",
        {"email": "dave@example.com", "role": "developer"},
        {"alice": 201, "bob": 403, "charlie": 404, "anon": 401},
    ),
    (
        "patch",
        "/api/v1/tenants/acme/members/bob@example.com",
        {"role": "developer"},
        {"alice": 200, "bob": 403, "charlie": 404, "anon": 401},
    ),
    (
        "delete",
        "/api/v1/tenants/acme/members/bob@example.com",
        None,
        {"alice": 204, "bob": 403, "charlie": 404, "anon": 401},
    ),
    ("get", "/api/v1/tenants/acme/audit", None, {"alice": 200, "bob": 200, "charlie": 404, "anon": 401}),
    ("get", "/api/v1/tenants", None, {"alice": 200, "bob": 200, "charlie": 200, "anon": 401}),
    ("post", "/api/v1/tenants", {"name": "Mine"}, {"alice": 201, "bob": 201, "charlie": 201, "anon": 401}),
    ("get", "/api/v1/auth/tokens", None, {"alice": 200, "bob": 200, "charlie": 200, "anon": 401}),
    ("get", "/api/v1/definition-schema", None, {"alice": 200, "bob": 200, "charlie": 200, "anon": 200}),
    ("get", "/api/v1/schema/", None, {"alice": 200, "bob": 200, "charlie": 200, "anon": 200}),
    # a tenant that does not exist looks the same as one you cannot see
    ("get", "/api/v1/tenants/nope", None, {"alice": 404, "bob": 404, "charlie": 404, "anon": 401}),
    ("delete", "/api/v1/tenants/nope", None, {"alice": 404, "bob": 404, "charlie": 404, "anon": 401}),
]

PEOPLE = ("alice", "bob", "charlie", "anon")


@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("method,path,body,expected", SCENARIOS, ids=[f"{s[0]} {s[1]}" for s in SCENARIOS])
def test_each_person_gets_exactly_the_access_their_role_gives(request, acme, person, method, path, body, expected):
    make_user("dave@example.com")
    user = None if person == "anon" else request.getfixturevalue(person)
    client = client_for(user)
    response = getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)
    assert response.status_code == expected[person], response.content
    if response.status_code >= 400:
        payload = response.json()
        assert set(payload) == {"code", "message", "errors"}
        assert payload["message"]


def test_a_stranger_cannot_tell_a_hidden_tenant_from_a_missing_one(acme, charlie):
    client = client_for(charlie)
    hidden = client.get("/api/v1/tenants/acme").json()
    missing = client.get("/api/v1/tenants/nope").json()
    assert hidden["code"] == missing["code"] == "not_found"


def test_the_tenant_list_shows_only_the_callers_tenants(acme, alice, bob, charlie):
    assert [t["slug"] for t in client_for(alice).get("/api/v1/tenants").json()] == ["acme"]
    assert [t["role"] for t in client_for(bob).get("/api/v1/tenants").json()] == ["viewer"]
    assert client_for(charlie).get("/api/v1/tenants").json() == []


def test_an_admin_cannot_make_itself_or_anyone_an_owner(acme, alice, bob):
    from tenants import services

    services.member_set(tenant=acme, email=bob.email, role="admin", actor=services.Actor(alice))
    client = client_for(bob)
    assert client.patch("/api/v1/tenants/acme/members/bob@example.com", {"role": "owner"}, format="json").status_code == 403
    assert client.delete("/api/v1/tenants/acme/members/alice@example.com").status_code == 403
    assert client.delete("/api/v1/tenants/acme").status_code == 403
    # but an admin may rotate keys and add developers
    assert client.post("/api/v1/tenants/acme/keys", {"kind": "service"}, format="json").status_code == 201


def test_the_last_owner_cannot_leave(acme, alice):
    response = client_for(alice).delete("/api/v1/tenants/acme/members/alice@example.com")
    assert response.status_code == 409
    assert response.json()["code"] == "last_owner"


def test_a_revoked_or_unknown_token_is_refused(alice):
    from tenants import services

    _, raw = services.token_create(user=alice, name="t", actor=services.Actor(alice))
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/tenants").status_code == 200
    token_id = alice.tokens.get(prefix=raw[:8]).pk
    assert client.delete(f"/api/v1/auth/tokens/{token_id}").status_code == 204
    assert client.get("/api/v1/tenants").status_code == 401
    for header in ("Bearer plt_nope", "Bearer", "Basic abc", "Token x", "Bearer " + "x" * 5000):
        client.credentials(HTTP_AUTHORIZATION=header)
        assert client.get("/api/v1/tenants").status_code == 401
