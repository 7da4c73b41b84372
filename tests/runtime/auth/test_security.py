"""Rate limiting, tenant isolation, what the access token turns into, and that secrets
stay secret."""

from __future__ import annotations

import json
import time

import pytest
from argon2 import PasswordHasher
from django.test import RequestFactory

from auth_api import PASSWORD, AuthApi, error_of
from runtime.api.context import request_context
from runtime.auth import passwords
from runtime.db import tenant_transaction


@pytest.fixture
def low_limits(settings):
    settings.DATA_AUTH_LOGIN_FAILURES = 3
    settings.DATA_AUTH_LOGIN_WINDOW = 60
    settings.DATA_AUTH_SIGNUPS = 2
    settings.DATA_AUTH_SIGNUP_WINDOW = 60


def test_failed_logins_are_rate_limited(api, low_limits):
    api.signup("rl@example.com")
    for _ in range(5):  # successful logins do not count
        assert api.login("rl@example.com").status_code == 200
    for _ in range(3):
        assert error_of(api.login("rl@example.com", "wrong-password")) == (400, "invalid_credentials")
    limited = api.login("rl@example.com")  # even the right password now waits
    assert error_of(limited) == (429, "over_request_rate_limit")
    assert limited["Retry-After"] == "60"
    # another address is not limited
    other = AuthApi(api.tenant, api.keys, address="198.51.100.9")
    assert other.login("rl@example.com").status_code == 200


def test_rate_limit_is_per_tenant(make_api, low_limits):
    one, two = make_api("rl-one"), make_api("rl-two")
    two.signup("rt@example.com")
    for _ in range(3):
        one.login("rt@example.com", "wrong-password")
    assert error_of(one.login("rt@example.com")) == (429, "over_request_rate_limit")
    assert two.login("rt@example.com").status_code == 200


def test_signups_are_rate_limited(api, low_limits):
    assert api.signup("s1@example.com").status_code == 200
    assert api.signup("s2@example.com").status_code == 200
    assert error_of(api.signup("s3@example.com")) == (429, "over_request_rate_limit")


def test_tokens_of_another_tenant_are_refused(make_api):
    a, b = make_api("iso-a"), make_api("iso-b")
    b_session = b.session("x@example.com")
    response = a.call("GET", "user", token=b_session["access_token"])
    assert response.status_code == 401
    # and B's refresh token means nothing on A
    assert error_of(a.refresh(b_session["refresh_token"])) == (400, "refresh_token_not_found")


def test_a_user_of_one_tenant_is_unknown_on_another(make_api):
    a, b = make_api("iso-c"), make_api("iso-d")
    a.signup("only-a@example.com")
    assert error_of(b.login("only-a@example.com")) == (400, "invalid_credentials")
    assert b.admin("GET").json()["users"] == []
    # the same email may exist in both, as two users
    assert b.signup("only-a@example.com").status_code == 200


def test_the_access_token_becomes_the_caller(api):
    session = api.session("caller@example.com")
    request = RequestFactory().get("/", HTTP_APIKEY=api.keys["anon"],
                                   HTTP_AUTHORIZATION=f"Bearer {session['access_token']}")
    context = request_context(request, api.tenant.slug)
    caller = context.caller
    assert caller.role == "member"
    assert caller.user_id == session["user"]["id"]
    assert caller.email == "caller@example.com"
    assert caller.auth == {"id": session["user"]["id"], "email": "caller@example.com", "role": "member"}
    assert not caller.is_service
    # and what the database sees in the caller's transactions
    with tenant_transaction(str(api.tenant.id), caller.db_claims()) as conn:
        claims = json.loads(conn.execute("SELECT current_setting('request.jwt.claims')").fetchone()[0])
    assert claims == {"sub": session["user"]["id"], "role": "member", "email": "caller@example.com"}


def test_an_expired_access_token_is_refused(api, settings):
    settings.DATA_AUTH_ACCESS_TOKEN_LIFETIME = -10
    token = api.session("exp@example.com")["access_token"]
    assert api.call("GET", "user", token=token).status_code == 401


def test_nothing_secret_is_logged_or_answered(api, caplog, capsys):
    bodies = [
        api.signup("log@example.com").content,
        api.login("log@example.com").content,
        api.login("log@example.com", "wrong-" + PASSWORD).content,
        api.admin("GET").content,
    ]
    logged = caplog.text + capsys.readouterr().err
    for text in (*[b.decode() for b in bodies], logged):
        assert PASSWORD not in text
        assert "$argon2" not in text


def test_unknown_email_costs_a_hash_too(monkeypatch):
    """With the production hasher: no password hash (unknown email) takes about as long as
    a wrong password, because a dummy hash is verified instead."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher())
    real = passwords.hash_password(PASSWORD)
    passwords.verify(None, "warm-up")

    def timed(fn) -> float:
        start = time.perf_counter()
        for _ in range(3):
            fn()
        return time.perf_counter() - start

    wrong = timed(lambda: passwords.verify(real, "wrong-password"))
    unknown = timed(lambda: passwords.verify(None, "wrong-password"))
    assert 0.33 < unknown / wrong < 3  # loose: other test runs may share the CPU
    assert passwords.verify(real, PASSWORD) and not passwords.verify(real, "x") and not passwords.verify(None, PASSWORD)


def test_weak_hashes_are_upgraded_at_login(api, monkeypatch):
    api.signup("re@example.com")  # hashed with the cheap test parameters
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher())
    assert api.login("re@example.com").status_code == 200
    with tenant_transaction(str(api.tenant.id)) as conn:
        stored = conn.execute("SELECT password_hash FROM _users").fetchone()[0]
    assert "m=65536" in stored
    assert api.login("re@example.com").status_code == 200
