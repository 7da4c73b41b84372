"""Sign-up and the password grant, in the shapes supabase-js and supabase-py read."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest

from auth_api import PASSWORD, error_of

SESSION_KEYS = {"access_token", "token_type", "expires_in", "expires_at", "refresh_token", "user"}
USER_KEYS = {"id", "aud", "role", "email", "email_confirmed_at", "app_metadata", "user_metadata", "created_at",
             "updated_at", "last_sign_in_at", "identities"}


def assert_session(body: dict, email: str, role: str) -> dict:
    assert set(body) >= SESSION_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert abs(body["expires_at"] - (time.time() + 3600)) < 60
    assert len(body["refresh_token"]) >= 43  # 32 random bytes, url-safe
    user = body["user"]
    assert set(user) >= USER_KEYS
    uuid.UUID(user["id"])
    assert user["aud"] == "authenticated" and user["email"] == email and user["role"] == role
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"], "role": role}
    assert user["email_confirmed_at"] and user["last_sign_in_at"]
    assert user["identities"] and user["identities"][0]["provider"] == "email"
    assert_no_secrets(body)
    return user


def assert_no_secrets(value) -> None:
    """No password or hash anywhere in an answer, under any key."""
    text = json.dumps(value)
    assert PASSWORD not in text and "argon2" not in text and "password" not in text


def test_signup_answers_a_session_with_the_default_role(api):
    response = api.signup("  Ann@Example.COM ", data={"nickname": "ann"})
    assert response.status_code == 200, response.content
    body = response.json()
    user = assert_session(body, "ann@example.com", "member")
    assert user["user_metadata"] == {"nickname": "ann"}
    assert response["Cache-Control"] == "no-store"


def test_access_token_claims(api):
    body = api.signup("claims@example.com").json()
    claims = jwt.decode(body["access_token"], _secret(api), algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == body["user"]["id"]
    assert claims["email"] == "claims@example.com"
    assert claims["role"] == "member"
    assert claims["aud"] == "authenticated"
    assert claims["iss"] == f"plinth:{api.tenant.slug}"
    assert claims["exp"] - claims["iat"] == 3600
    uuid.UUID(claims["session_id"])
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"


def _secret(api) -> bytes:
    from runtime.api.context import resolve_tenant

    return resolve_tenant(api.tenant.slug).secret


def test_signup_without_default_role_gives_authenticated(make_api):
    api = make_api("plain-auth", "version: 1\nentities:\n  Thing:\n    fields:\n      name: {type: string}\n")
    body = api.signup("plain@example.com").json()
    assert body["user"]["role"] == "authenticated"


def test_signup_errors(api):
    assert error_of(api.signup("weak@example.com", "short")) == (422, "weak_password")
    assert api.signup("weak@example.com", "short").json()["weak_password"] == {"reasons": ["length"]}
    assert error_of(api.signup("not-an-email")) == (400, "email_address_invalid")
    assert error_of(api.signup("")) == (400, "validation_failed")
    assert error_of(api.call("POST", "signup", {"email": "x@example.com"})) == (400, "validation_failed")
    assert error_of(api.call("POST", "signup", raw="{not json")) == (400, "bad_json")
    assert error_of(api.call("POST", "signup", raw="[1]")) == (400, "bad_json")
    assert error_of(api.signup("meta@example.com", data=[1])) == (400, "validation_failed")
    assert api.signup("dup@example.com").status_code == 200
    assert error_of(api.signup("DUP@example.com ")) == (422, "user_already_exists")


def test_signup_closed(shop):
    assert error_of(shop.signup("someone@example.com")) == (422, "signup_disabled")


def test_password_grant(api):
    user = api.signup("bo@example.com").json()["user"]
    response = api.login(" BO@example.com", PASSWORD)
    assert response.status_code == 200, response.content
    body = response.json()
    assert_session(body, "bo@example.com", "member")
    assert body["user"]["id"] == user["id"]
    assert body["user"]["last_sign_in_at"] >= user["last_sign_in_at"]


def test_wrong_password_and_unknown_email_answer_alike(api):
    api.signup("cy@example.com")
    wrong = api.login("cy@example.com", "wrong-password")
    unknown = api.login("nobody@example.com", PASSWORD)
    assert error_of(wrong) == error_of(unknown) == (400, "invalid_credentials")
    assert wrong.json() == unknown.json()


def test_password_grant_errors(api):
    grant = "token?grant_type=password"
    assert error_of(api.call("POST", grant, {"password": PASSWORD})) == (400, "validation_failed")
    assert error_of(api.call("POST", grant, {"email": "a@example.com"})) == (400, "validation_failed")
    assert error_of(api.call("POST", "token?grant_type=nonsense", {})) == (400, "validation_failed")
    assert error_of(api.call("POST", "token", {})) == (400, "validation_failed")


@pytest.mark.parametrize("method, path", [("GET", "signup"), ("DELETE", "user"), ("GET", "token")])
def test_wrong_method(api, method, path):
    response = api.call(method, path)
    assert error_of(response) == (405, "method_not_allowed")
    assert response["Allow"]


def test_unknown_endpoint(api):
    assert error_of(api.call("POST", "magiclink", {})) == (404, "not_found")


def test_no_definition_refuses_clearly(make_api):
    api = make_api("bare-auth", source=None)
    response = api.signup("x@example.com")
    assert error_of(response) == (404, "no_definition")
    assert "no definition" in response.json()["msg"]
    assert error_of(api.login("x@example.com")) == (404, "no_definition")
    assert error_of(api.admin("GET")) == (404, "no_definition")


@pytest.mark.parametrize("raw, expected", [
    ("[" * 60000, (400, "bad_json")),
    ('{"email": "' + "a" * 70000 + '"}', (413, "request_too_large")),
    (b"\xff\xfe{", (400, "bad_json")),
    ('{"email": 1, "password": ["x"]}', (400, "validation_failed")),
    ('{"email": "a@example.com", "password": 12345678}', (400, "validation_failed")),
])
def test_malformed_bodies_never_fail_the_server(api, raw, expected):
    assert error_of(api.call("POST", "signup", raw=raw)) == expected
    assert api.call("POST", "token?grant_type=password", raw=raw).status_code < 500
    assert api.call("POST", "token?grant_type=refresh_token", raw=raw).status_code < 500


def test_huge_bodies_past_djangos_limit(api):
    response = api.call("POST", "signup", raw="x" * (3 * 1024 * 1024))
    assert error_of(response) == (413, "request_too_large")
