"""Helpers of the auth tests (a module of its own, since `conftest` is not importable
reliably when several test folders have one): the definitions used, and `AuthApi`, a thin
caller of `/t/<slug>/auth/v1/...` through Django's test client."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from platform_client import PlatformClient as Client

ROOT = Path(__file__).resolve().parents[3]
TODO = (ROOT / "examples" / "todo.yaml").read_text()
PASSWORD = "s3cret-enough-pw"

# Roles of its own, sign-up closed: users come from the service key.
SHOP = textwrap.dedent("""
    version: 1
    name: shop
    auth:
      roles: [customer, staff]
      default_role: customer
      signup: closed
    entities:
      Note:
        fields:
          title: {type: string}
""")


class AuthApi:
    """One tenant's auth endpoints, called as supabase-js would (apikey header, bearer)."""

    def __init__(self, tenant, keys, address: str = "203.0.113.7"):
        self.tenant, self.keys, self.address = tenant, keys, address
        self.client = Client()

    def call(self, method: str, path: str, body=None, *, key: str = "anon", token: str | None = None,
             raw: bytes | str | None = None):
        headers = {"HTTP_APIKEY": self.keys[key], "REMOTE_ADDR": self.address}
        # supabase-js sends the key again as bearer when no user is signed in
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token or self.keys[key]}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        return self.client.generic(method, f"/t/{self.tenant.slug}/auth/v1/{path}", data,
                                   content_type="application/json", **headers)

    def signup(self, email: str, password: str = PASSWORD, **extra):
        return self.call("POST", "signup", {"email": email, "password": password, **extra})

    def login(self, email: str, password: str = PASSWORD):
        return self.call("POST", "token?grant_type=password", {"email": email, "password": password})

    def refresh(self, refresh_token: str):
        return self.call("POST", "token?grant_type=refresh_token", {"refresh_token": refresh_token})

    def session(self, email: str, password: str = PASSWORD) -> dict:
        """Sign up (or in, when the email exists) and answer the session."""
        response = self.signup(email, password)
        if response.status_code == 422:
            response = self.login(email, password)
        assert response.status_code == 200, response.content
        return response.json()

    def sql(self, query: str, params=None) -> list[tuple]:
        """SQL in the tenant's schema, under its role."""
        from runtime.db import tenant_transaction

        with tenant_transaction(self.tenant.id) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def admin(self, method: str, path: str = "", body=None, **kwargs):
        return self.call(method, "admin/users" + (f"/{path}" if path else ""), body, key="service", **kwargs)


def error_of(response) -> tuple[int, str]:
    """(status, error_code), checking GoTrue's error shape on the way."""
    body = response.json()
    assert set(body) >= {"code", "error_code", "msg"}, body
    assert body["code"] == response.status_code
    return response.status_code, body["error_code"]
