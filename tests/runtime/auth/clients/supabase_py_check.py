"""Drives a running tenant with supabase-py's auth client (supabase_auth); run by
test_clients.py with an interpreter that has it: `python supabase_py_check.py URL ANON SERVICE`."""

import sys

from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError

url, anon, service = sys.argv[1:4]
PASSWORD = "s3cret-enough-pw"


def client(key):
    return SyncGoTrueClient(url=f"{url}/auth/v1", headers={"apikey": key, "Authorization": f"Bearer {key}"},
                            auto_refresh_token=False, persist_session=True)


user_client = client(anon)
signed_up = user_client.sign_up({"email": "py@example.com", "password": PASSWORD, "options": {"data": {"n": 1}}})
assert signed_up.session is not None and signed_up.user.email == "py@example.com", signed_up
assert signed_up.user.user_metadata == {"n": 1}
signed_in = user_client.sign_in_with_password({"email": "py@example.com", "password": PASSWORD})
assert signed_in.session.access_token and signed_in.user.role == "member"
assert user_client.get_user().user.id == signed_up.user.id
updated = user_client.update_user({"data": {"n": 2}})
assert updated.user.user_metadata == {"n": 2}
refreshed = user_client.refresh_session()
assert refreshed.session.refresh_token != signed_in.session.refresh_token
user_client.sign_out()
try:
    client(anon).sign_in_with_password({"email": "py@example.com", "password": "wrong-password"})
    raise SystemExit("wrong password accepted")
except AuthApiError as error:
    assert error.code == "invalid_credentials" and error.status == 400, (error.code, error.status)

admin = client(service).admin
created = admin.create_user({"email": "staff-py@example.com", "password": PASSWORD, "email_confirm": True,
                             "app_metadata": {"role": "member"}, "user_metadata": {"name": "S"}}).user
assert created.app_metadata["role"] == "member" and created.user_metadata == {"name": "S"}
again = admin.update_user_by_id(created.id, {"user_metadata": {"name": "T"}}).user
assert again.user_metadata == {"name": "T"}
assert admin.get_user_by_id(created.id).user.email == "staff-py@example.com"
assert {u.email for u in admin.list_users(page=1, per_page=10)} == {"py@example.com", "staff-py@example.com"}
admin.delete_user(created.id)
assert {u.email for u in admin.list_users()} == {"py@example.com"}
print("supabase-py ok")
