"""Fixtures for data API tests: tenants with an example definition pushed and committed (the
runtime reads through its own connection, so the data must be committed), end users with
access tokens, rows inserted as the tenant, and an HTTP helper that calls
`/t/<slug>/rest/v1/...` as anon, as a user or with the service key.

Two ways to get a tenant:

- `api_tenant("todo")` (function scope, from `committed_tenants`): a fresh tenant per
  test, for tests that write;
- `module_api_tenant(...)` (a context manager for module-scoped fixtures): one tenant for a
  whole module of read-only tests, which then use the plain `db` fixture. Such a module
  must not use `transactional_db` (its flush would empty the control-plane tables).

    def test_it_lists_own_todos(api_tenant):
        api = api_tenant("todo")
        ann = api.user("ann@example.com", role="member")
        api.insert("Todo", owner=ann.id, title="Milk")
        assert api.get("Todo?select=title", as_=ann).json() == [{"title": "Milk"}]
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from platform_client import PlatformClient as Client
from psycopg import sql

from runtime.api.context import issue_access_token, resolve_tenant
from runtime.db import tenant_transaction
from tenants import services
from tenants.definitions import definition_push
from tenants.models import AuditEvent, Tenant, User

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
OWNER_PASSWORD = "correct-horse-battery-staple-42"


def example(name: str) -> str:
    """The text of `examples/<name>.yaml`."""
    return (EXAMPLES / f"{name}.yaml").read_text()


@dataclass(frozen=True)
class EndUser:
    id: str
    email: str
    role: str
    token: str


SERVICE = "service"   # as_=SERVICE: the service key
ANON = "anon"         # as_=ANON or None: the anon key, no user


class ApiTenant:
    """A tenant whose data API tests call: keys, end users, rows, HTTP."""

    def __init__(self, tenant: Tenant, keys: dict[str, str], owner: User):
        self.tenant = tenant
        self.keys = keys
        self.owner = owner
        self.slug = tenant.slug
        self.client = Client()
        self.info = resolve_tenant(self.slug)    # for signing tokens without a database hit

    # definition and data ----------------------------------------------------------------

    def push(self, source: str, **options):
        result = definition_push(tenant=self.tenant, source=source, actor=services.Actor(self.owner), **options)
        assert result.status in ("applied", "unchanged"), result.as_dict()
        return result

    def sql(self, query, params=None, claims: dict | None = None) -> list[tuple]:
        """One statement as the tenant's role (no access rules: this is the test's hand)."""
        with tenant_transaction(self.tenant.id, claims) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def user(self, email: str, role: str = "authenticated") -> EndUser:
        """An end user in `_users`, with a fresh access token."""
        user_id = self.sql("INSERT INTO _users (email, role) VALUES (%s, %s) RETURNING id::text", (email, role))[0][0]
        return EndUser(user_id, email, role, self.token(user_id, email, role))

    def token(self, user_id: str, email: str, role: str, lifetime: int = 3600) -> str:
        token, _ = issue_access_token(self.info, user_id=user_id, email=email, role=role,
                                      lifetime=lifetime)
        return token

    def insert(self, entity: str, **values) -> str:
        """Insert one row as the tenant (bypassing access rules); answers its id."""
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id::text").format(
            sql.Identifier(entity),
            sql.SQL(", ").join(sql.Identifier(k) for k in values),
            sql.SQL(", ").join(sql.Placeholder(k) for k in values),
        ) if values else sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING id::text").format(sql.Identifier(entity))
        params = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in values.items()}
        return self.sql(query, params)[0][0]

    def rows(self, entity: str, order: str = "created_at, id") -> list[dict]:
        query = sql.SQL("SELECT row_to_json(t) FROM {} AS t ORDER BY {}").format(
            sql.Identifier(entity), sql.SQL(", ").join(sql.Identifier(c.strip()) for c in order.split(",")))
        return [r[0] for r in self.sql(query)]

    # HTTP -------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith("/") else f"/t/{self.slug}/rest/v1/{path}"

    def auth_headers(self, as_=None) -> dict[str, str]:
        if as_ == SERVICE:
            return {"apikey": self.keys["service"], "Authorization": f"Bearer {self.keys['service']}"}
        if as_ is None or as_ == ANON:
            return {"apikey": self.keys["anon"]}
        if isinstance(as_, EndUser):
            return {"apikey": self.keys["anon"], "Authorization": f"Bearer {as_.token}"}
        if isinstance(as_, dict):     # raw headers, for tests of authentication itself
            return as_
        raise TypeError(f"as_ must be None, 'anon', 'service', an EndUser or a dict, not {as_!r}")

    def request(self, method: str, path: str, *, as_=None, body=None, headers: dict | None = None):
        all_headers = {**self.auth_headers(as_), **(headers or {})}
        kwargs = {"headers": all_headers}
        if body is not None:
            kwargs.update(data=body if isinstance(body, (str, bytes)) else json.dumps(body),
                          content_type=all_headers.pop("Content-Type", "application/json"))
        return getattr(self.client, method.lower())(self.url(path), **kwargs)

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def head(self, path: str, **kw):
        return self.request("HEAD", path, **kw)

    def post(self, path: str, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def patch(self, path: str, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def put(self, path: str, body=None, **kw):
        return self.request("PUT", path, body=body, **kw)

    def delete(self, path: str, **kw):
        return self.request("DELETE", path, **kw)


def _make(owner: User, name: str, source: str | None, slug: str | None = None) -> ApiTenant:
    tenant, keys = services.tenant_create(owner=owner, name=name, slug=slug)
    api = ApiTenant(tenant, keys, owner)
    if source:
        api.push(source)
    return api


@pytest.fixture
def api_tenant(committed_tenants, django_user_model):
    """`api_tenant("todo")` or `api_tenant(source=yaml_text)`: a fresh committed tenant."""
    owner = django_user_model.objects.create_user(f"owner-{uuid.uuid4().hex[:8]}@example.com", OWNER_PASSWORD)

    def make(example_name: str | None = None, *, source: str | None = None, slug: str | None = None) -> ApiTenant:
        text = source if source is not None else (example(example_name) if example_name else None)
        tenant, keys = committed_tenants(owner, f"API {example_name or 'test'}", slug)
        api = ApiTenant(tenant, keys, owner)
        if text:
            api.push(text)
        return api

    return make


@contextmanager
def module_api_tenant(django_db_blocker, example_name: str | None = None, *, source: str | None = None):
    """A committed tenant for a module-scoped fixture; deleted (schema, role, owner) after.

        @pytest.fixture(scope="module")
        def shop(django_db_setup, django_db_blocker):
            with module_api_tenant(django_db_blocker, "shop") as api:
                ... insert users and rows ...
                yield api
    """
    text = source if source is not None else (example(example_name) if example_name else None)
    with django_db_blocker.unblock():
        owner = User.objects.create_user(f"owner-{uuid.uuid4().hex[:8]}@example.com", OWNER_PASSWORD)
        api = _make(owner, f"API {example_name or 'test'}", text)
    try:
        yield api
    finally:
        with django_db_blocker.unblock():
            if Tenant.objects.filter(pk=api.tenant.pk).exists():
                services.tenant_delete(tenant=api.tenant, actor=services.Actor(None))
            # leave the control plane as a module of `db` tests expects it: empty
            AuditEvent.objects.filter(tenant_slug=api.slug).delete()
            AuditEvent.objects.filter(actor=owner).delete()
            AuditEvent.objects.filter(action="tenant.delete", data__tenant_id=str(api.tenant.id)).delete()
            owner.delete()
