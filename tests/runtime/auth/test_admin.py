"""`admin/users`: the service key's user management, in supabase-py's admin shapes."""

from __future__ import annotations

import uuid

import pytest

from auth_api import PASSWORD, error_of


def test_create_user_with_a_role(shop):
    response = shop.admin("POST", body={
        "email": "Staff@Example.com", "password": PASSWORD, "email_confirm": True,
        "app_metadata": {"role": "staff", "plan": "pro"}, "user_metadata": {"name": "Sam"},
    })
    assert response.status_code == 200, response.content
    user = response.json()
    assert user["email"] == "staff@example.com"
    assert user["role"] == "staff"
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"], "plan": "pro", "role": "staff"}
    assert user["user_metadata"] == {"name": "Sam"}
    assert user["aud"] == "authenticated" and user["email_confirmed_at"]
    assert user["last_sign_in_at"] is None
    session = shop.login("staff@example.com").json()
    assert session["user"]["role"] == "staff"


def test_create_user_defaults(shop):
    user = shop.admin("POST", body={"email": "cu@example.com", "password": PASSWORD}).json()
    assert user["role"] == "customer"  # the definition's default_role
    # GoTrue's top-level role is understood too
    assert shop.admin("POST", body={"email": "st@example.com", "role": "staff"}).json()["role"] == "staff"


def test_user_without_password_cannot_sign_in(shop):
    assert shop.admin("POST", body={"email": "nopw@example.com"}).status_code == 200
    assert error_of(shop.login("nopw@example.com", "")) == (400, "validation_failed")
    assert error_of(shop.login("nopw@example.com", PASSWORD)) == (400, "invalid_credentials")


@pytest.mark.parametrize("role", ["admin", "service", "anon", "", 7, ["staff"]])
def test_create_user_refuses_roles_outside_the_definition(shop, role):
    response = shop.admin("POST", body={"email": "bad@example.com", "app_metadata": {"role": role}})
    if role == "":
        assert response.json()["role"] == "customer"  # empty means "not given"
    else:
        assert error_of(response) == (422, "validation_failed")


def test_create_user_errors(shop):
    shop.admin("POST", body={"email": "dup@example.com"})
    assert error_of(shop.admin("POST", body={"email": "DUP@example.com"})) == (422, "email_exists")
    assert error_of(shop.admin("POST", body={"email": "nope"})) == (400, "email_address_invalid")
    weak = shop.admin("POST", body={"email": "w@example.com", "password": "short"})
    assert error_of(weak) == (422, "weak_password")
    assert error_of(shop.admin("POST", body={"phone": "+15550100"})) == (422, "validation_failed")
    assert error_of(shop.admin("POST", body={"email": "r@example.com", "role": "staff",
                                             "app_metadata": {"role": "customer"}})) == (422, "validation_failed")
    banned = shop.admin("POST", body={"email": "b@example.com", "ban_duration": "24h"})
    assert error_of(banned) == (422, "validation_failed")
    bad_metadata = shop.admin("POST", body={"email": "m@example.com", "user_metadata": "x"})
    assert error_of(bad_metadata) == (400, "validation_failed")


def test_get_update_delete(shop):
    user = shop.admin("POST", body={"email": "gud@example.com", "password": PASSWORD,
                                    "app_metadata": {"team": "a"}, "user_metadata": {"a": 1, "b": 2}}).json()
    got = shop.admin("GET", user["id"])
    assert got.status_code == 200 and got.json() == user

    session = shop.login("gud@example.com").json()
    response = shop.admin("PUT", user["id"], {
        "app_metadata": {"role": "staff", "team": None}, "user_metadata": {"b": None, "c": 3},
        "password": "another-password", "email": "GUD2@example.com",
    })
    assert response.status_code == 200, response.content
    updated = response.json()
    assert updated["role"] == "staff" and updated["app_metadata"]["role"] == "staff"
    assert "team" not in updated["app_metadata"]
    assert updated["user_metadata"] == {"a": 1, "c": 3}
    assert updated["email"] == "gud2@example.com"
    # a new password ends every session of the user
    assert error_of(shop.refresh(session["refresh_token"])) == (400, "refresh_token_already_used")
    assert shop.login("gud2@example.com", "another-password").json()["user"]["role"] == "staff"

    assert error_of(shop.admin("PUT", user["id"], {"app_metadata": {"role": "root"}})) == (422, "validation_failed")
    assert error_of(shop.admin("PUT", user["id"], {"role": "service"})) == (422, "validation_failed")

    deleted = shop.admin("DELETE", user["id"], {"should_soft_delete": False})
    assert deleted.status_code == 200 and deleted.json() == {}
    assert error_of(shop.admin("GET", user["id"])) == (404, "user_not_found")
    assert error_of(shop.admin("DELETE", user["id"])) == (404, "user_not_found")
    assert error_of(shop.login("gud2@example.com", "another-password")) == (400, "invalid_credentials")
    # the deleted user's tokens: refresh fails, `GET user` says who is missing
    assert error_of(shop.refresh(session["refresh_token"])) == (400, "refresh_token_not_found")


def test_update_to_a_taken_email(shop):
    shop.admin("POST", body={"email": "one@example.com"})
    two = shop.admin("POST", body={"email": "two@example.com"}).json()
    assert error_of(shop.admin("PUT", two["id"], {"email": "one@example.com"})) == (422, "email_exists")


def test_unknown_and_malformed_ids(shop):
    assert error_of(shop.admin("GET", str(uuid.uuid4()))) == (404, "user_not_found")
    assert error_of(shop.admin("PUT", str(uuid.uuid4()), {})) == (404, "user_not_found")
    assert error_of(shop.admin("GET", "not-a-uuid")) == (400, "validation_failed")
    assert error_of(shop.admin("PATCH", str(uuid.uuid4()), {})) == (405, "method_not_allowed")
    assert error_of(shop.call("GET", "admin/other", key="service")) == (404, "not_found")


def test_list_users_pages(shop):
    for n in range(5):
        shop.admin("POST", body={"email": f"u{n}@example.com"})
    response = shop.admin("GET")
    body = response.json()
    assert set(body) == {"users", "aud"} and body["aud"] == "authenticated"
    assert [u["email"] for u in body["users"]] == [f"u{n}@example.com" for n in reversed(range(5))]
    assert response["X-Total-Count"] == "5"

    page = shop.call("GET", "admin/users?page=2&per_page=2", key="service")
    assert [u["email"] for u in page.json()["users"]] == ["u2@example.com", "u1@example.com"]
    assert 'page=3&per_page=2>; rel="next"' in page["Link"]
    assert 'page=3&per_page=2>; rel="last"' in page["Link"]
    assert page.json()["users"][0].keys() >= {"id", "email", "role", "app_metadata", "user_metadata"}
    assert shop.call("GET", "admin/users?page=9", key="service").json()["users"] == []
    assert error_of(shop.call("GET", "admin/users?page=0", key="service")) == (400, "validation_failed")
    assert error_of(shop.call("GET", "admin/users?per_page=x", key="service")) == (400, "validation_failed")
    huge = shop.call("GET", "admin/users?page=99999999999999999999", key="service")
    assert error_of(huge) == (400, "validation_failed")


@pytest.mark.parametrize("method, path", [("GET", "admin/users"), ("POST", "admin/users"),
                                          ("DELETE", f"admin/users/{uuid.uuid4()}"), ("GET", "admin/whatever")])
def test_admin_needs_the_service_key(shop, method, path):
    assert error_of(shop.call(method, path, {"email": "x@example.com"})) == (403, "not_admin")


def test_admin_refuses_a_signed_in_user(api):
    token = api.session("me@example.com")["access_token"]
    assert error_of(api.call("GET", "admin/users", token=token)) == (403, "not_admin")
    assert error_of(api.call("POST", "admin/users", {"email": "x@example.com"}, token=token)) == (403, "not_admin")


def test_service_key_as_bearer_only(shop):
    """supabase-py sends the service key as apikey and bearer; some clients only as bearer
    with the anon key as apikey: both are the service."""
    response = shop.call("GET", "admin/users", token=shop.keys["service"])
    assert response.status_code == 200
