"""The data API's router: unknown paths, unknown tenants, keys of other tenants, CORS
preflights, and errors in the shape each client family reads."""

from __future__ import annotations

import pytest


def test_a_cors_preflight_needs_no_key_and_allows_the_supabase_headers(client, db):
    response = client.options("/t/anything/rest/v1/Todo", HTTP_ORIGIN="https://app.example",
                              HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "apikey" in response["Access-Control-Allow-Headers"]
    assert "prefer" in response["Access-Control-Allow-Headers"]
    assert "Content-Range" in response["Access-Control-Expose-Headers"]


def test_every_answer_carries_cors_headers_even_errors(client, db):
    response = client.get("/t/nope/rest/v1/Todo")
    assert response.status_code == 404 and response["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", ["/t/acme/", "/t/acme/rest/v2/Todo", "/t/acme/graphql/v1", "/t/acme/rest/v1/a/b/c"])
def test_unknown_paths_answer_404_in_postgrest_shape(client, acme, path):
    response = client.get(path)
    assert response.status_code == 404
    assert set(response.json()) == {"code", "message", "details", "hint"}


def test_a_key_of_another_tenant_is_refused(client, committed_tenants, alice):
    a, _ = committed_tenants(alice, "A")
    _, b_keys = committed_tenants(alice, "B")
    for headers in ({"HTTP_APIKEY": b_keys["anon"]}, {"HTTP_APIKEY": b_keys["service"]},
                    {"HTTP_AUTHORIZATION": f"Bearer {b_keys['service']}"}, {}):
        response = client.get(f"/t/{a.slug}/rest/v1/", **headers)
        assert response.status_code == 401, headers


def test_auth_errors_before_the_handler_use_the_auth_shape(client, committed_tenants, alice):
    tenant, keys = committed_tenants(alice, "A")
    response = client.get(f"/t/{tenant.slug}/auth/v1/user", HTTP_APIKEY=keys["anon"],
                          HTTP_AUTHORIZATION="Bearer not.a.jwt")
    assert response.status_code == 401
    assert response.json()["error_code"] == "bad_jwt"
