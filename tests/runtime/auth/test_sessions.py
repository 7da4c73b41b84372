"""Refresh-token rotation and reuse detection, the signed-in user, and logout."""

from __future__ import annotations

from auth_api import PASSWORD, error_of

from runtime.auth.sessions import REVOKED_KEPT_DAYS
from runtime.auth.tokens import refresh_token_hash as hash_of


def test_refresh_rotates(api):
    first = api.session("ro@example.com")
    response = api.refresh(first["refresh_token"])
    assert response.status_code == 200, response.content
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["user"]["id"] == first["user"]["id"]
    assert second["token_type"] == "bearer" and second["expires_in"] == 3600
    # the new refresh token works once more; the old one is spent
    assert api.refresh(second["refresh_token"]).status_code == 200


def test_reuse_of_a_spent_refresh_token_revokes_the_session(api):
    first = api.session("re@example.com")
    other = api.login("re@example.com").json()  # another session of the same user
    second = api.refresh(first["refresh_token"]).json()
    assert error_of(api.refresh(first["refresh_token"])) == (400, "refresh_token_already_used")
    # the whole family is gone, the latest token included...
    assert error_of(api.refresh(second["refresh_token"])) == (400, "refresh_token_already_used")
    assert error_of(api.call("GET", "user", token=second["access_token"])) == (403, "session_not_found")
    # ...but not the user's other session
    assert api.refresh(other["refresh_token"]).status_code == 200


def test_refresh_errors(api):
    assert error_of(api.refresh("not-a-token")) == (400, "refresh_token_not_found")
    assert error_of(api.call("POST", "token?grant_type=refresh_token", {})) == (400, "validation_failed")
    assert error_of(api.refresh("x" * 1000)) == (400, "validation_failed")


def test_refresh_picks_up_a_new_role(shop):
    created = shop.admin("POST", body={"email": "st@example.com", "password": PASSWORD}).json()
    session = shop.login("st@example.com").json()
    assert session["user"]["role"] == "customer"
    shop.admin("PUT", created["id"], {"app_metadata": {"role": "staff"}})
    refreshed = shop.refresh(session["refresh_token"]).json()
    assert refreshed["user"]["role"] == "staff"


def test_get_user(api):
    session = api.session("gu@example.com")
    response = api.call("GET", "user", token=session["access_token"])
    assert response.status_code == 200
    assert response.json() == {**session["user"], "last_sign_in_at": response.json()["last_sign_in_at"]}


def test_get_user_needs_a_user(api):
    assert error_of(api.call("GET", "user")) == (401, "no_authorization")
    assert error_of(api.call("GET", "user", key="service")) == (401, "no_authorization")
    # a token that is not this tenant's is refused before auth runs, in the data API's shape
    response = api.call("GET", "user", token="not.a.jwt")
    assert response.status_code == 401


def test_update_user(api):
    session = api.session("up@example.com")
    token = session["access_token"]
    response = api.call("PUT", "user", {"data": {"theme": "dark", "lang": "fr"}}, token=token)
    assert response.status_code == 200, response.content
    assert response.json()["user_metadata"] == {"theme": "dark", "lang": "fr"}
    # merged: null removes a key, others stay
    response = api.call("PUT", "user", {"data": {"lang": None}}, token=token)
    assert response.json()["user_metadata"] == {"theme": "dark"}
    # a new password: the old one stops working, the new one works
    other = api.login("up@example.com").json()
    response = api.call("PUT", "user", {"password": "a-new-password"}, token=token)
    assert response.status_code == 200, response.content
    assert error_of(api.login("up@example.com", PASSWORD)) == (400, "invalid_credentials")
    assert api.login("up@example.com", "a-new-password").status_code == 200
    # ...and ends the other sessions, not this one
    assert error_of(api.refresh(other["refresh_token"])) == (400, "refresh_token_already_used")
    assert api.refresh(session["refresh_token"]).status_code == 200


def test_update_user_refusals(api):
    token = api.session("ur@example.com")["access_token"]
    assert error_of(api.call("PUT", "user", {"app_metadata": {"role": "admin"}}, token=token)) == (403, "not_admin")
    assert error_of(api.call("PUT", "user", {"role": "service"}, token=token)) == (403, "not_admin")
    assert error_of(api.call("PUT", "user", {"password": "short"}, token=token)) == (422, "weak_password")
    assert error_of(api.call("PUT", "user", {"password": PASSWORD}, token=token)) == (422, "same_password")
    api.signup("taken@example.com")
    assert error_of(api.call("PUT", "user", {"email": "taken@example.com"}, token=token)) == (422, "email_exists")
    assert error_of(api.call("PUT", "user", {"data": "x"}, token=token)) == (400, "validation_failed")
    assert error_of(api.call("PUT", "user", {"data": {}})) == (401, "no_authorization")
    assert api.call("GET", "user", token=token).json()["role"] == "member"


def test_update_own_email(api):
    token = api.session("old@example.com")["access_token"]
    response = api.call("PUT", "user", {"email": "New@Example.com"}, token=token)
    assert response.json()["email"] == "new@example.com"
    assert api.login("new@example.com").status_code == 200


def test_logout_global_revokes_every_session(api):
    one = api.session("lo@example.com")
    two = api.login("lo@example.com").json()
    response = api.call("POST", "logout", token=one["access_token"])
    assert response.status_code == 204
    assert response.content == b""
    for session in (one, two):
        assert error_of(api.refresh(session["refresh_token"])) == (400, "refresh_token_already_used")
    assert error_of(api.call("GET", "user", token=one["access_token"])) == (403, "session_not_found")


def test_logout_local_revokes_that_session_only(api):
    one = api.session("ll@example.com")
    two = api.login("ll@example.com").json()
    assert api.call("POST", "logout?scope=local", token=one["access_token"]).status_code == 204
    assert error_of(api.refresh(one["refresh_token"])) == (400, "refresh_token_already_used")
    assert api.refresh(two["refresh_token"]).status_code == 200


def test_logout_others_keeps_this_session(api):
    one = api.session("lx@example.com")
    two = api.login("lx@example.com").json()
    assert api.call("POST", "logout?scope=others", token=one["access_token"]).status_code == 204
    assert api.refresh(one["refresh_token"]).status_code == 200
    assert error_of(api.refresh(two["refresh_token"])) == (400, "refresh_token_already_used")


def test_logout_errors(api):
    assert error_of(api.call("POST", "logout")) == (401, "no_authorization")
    token = api.session("le@example.com")["access_token"]
    assert error_of(api.call("POST", "logout?scope=everything", token=token)) == (400, "validation_failed")


def test_refresh_tokens_are_stored_hashed(api):
    import hashlib

    from runtime.db import tenant_transaction

    session = api.session("hs@example.com")
    with tenant_transaction(str(api.tenant.id)) as conn:
        stored = [row[0] for row in conn.execute("SELECT token_hash FROM _refresh_tokens").fetchall()]
        hashes = [row[0] for row in conn.execute("SELECT password_hash FROM _users").fetchall()]
    assert stored == [hashlib.sha256(session["refresh_token"].encode()).hexdigest()]
    assert session["refresh_token"] not in stored
    assert hashes[0].startswith("$argon2id$") and PASSWORD not in hashes[0]


def test_concurrent_refreshes_with_one_token_do_not_both_win(api):
    """Row locking serialises them: one gets a session, the other is a replay (which, being
    a replay, also ends the session: the strict reading, without GoTrue's grace interval)."""
    import threading

    from django.db import connection

    from auth_api import AuthApi

    token = api.session("cc@example.com")["refresh_token"]
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def refresh():
        try:
            caller = AuthApi(api.tenant, api.keys)
            barrier.wait()
            statuses.append(caller.refresh(token).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 400]


def test_tokens_revoked_long_ago_are_pruned_when_their_user_signs_in_or_refreshes(api):

    def tokens(email: str) -> list[tuple]:
        return api.sql("SELECT revoked_at IS NOT NULL, revoked_at < now() - make_interval(days => %s)"
                       " FROM _refresh_tokens t JOIN _users u ON u.id = t.user_id WHERE u.email = %s",
                       [REVOKED_KEPT_DAYS, email])

    first = api.session("prune@example.com")
    second = api.refresh(first["refresh_token"]).json()
    third = api.refresh(second["refresh_token"]).json()
    other = api.session("other@example.com")
    api.refresh(other["refresh_token"])
    assert sorted(tokens("prune@example.com")) == [(False, None), (True, False), (True, False)]
    # the first token was spent long ago; the second recently
    api.sql("UPDATE _refresh_tokens SET revoked_at = now() - make_interval(days => %s)"
            " WHERE token_hash = %s", [REVOKED_KEPT_DAYS + 1, hash_of(first["refresh_token"])])
    api.sql("UPDATE _refresh_tokens t SET revoked_at = now() - make_interval(days => %s) FROM _users u"
            " WHERE u.id = t.user_id AND u.email = 'other@example.com' AND revoked_at IS NOT NULL",
            [REVOKED_KEPT_DAYS + 1])

    fourth = api.refresh(third["refresh_token"]).json()
    assert sorted(tokens("prune@example.com")) == [(False, None), (True, False), (True, False)]
    assert (True, True) in tokens("other@example.com")     # another user's wait for their own sign-in
    # a long-spent token is now unknown; a recently spent one still revokes its session
    assert error_of(api.refresh(first["refresh_token"])) == (400, "refresh_token_not_found")
    assert error_of(api.refresh(second["refresh_token"])) == (400, "refresh_token_already_used")
    assert error_of(api.refresh(fourth["refresh_token"])) == (400, "refresh_token_already_used")
