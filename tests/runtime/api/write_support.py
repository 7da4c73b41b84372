"""Helpers for the write tests (imported by test_write_*.py and test_invariant*.py): a
tenant with a pushed definition, end users with access tokens, and a data API client that
speaks as one caller. Holds no tests itself."""

from __future__ import annotations

import json
import textwrap
import threading
import time
import uuid
from pathlib import Path

from django.db import connection

from platform_client import PlatformClient as Client

from runtime.api.context import issue_access_token, resolve_tenant
from runtime.db import tenant_transaction
from tenants.definitions import definition_push
from tenants.services import Actor

# Accounts and charges under a credit limit: the invariant the insert and invariant tests use
CHARGES = """
version: 1
auth: {roles: [member]}
entities:
  Account:
    fields:
      owner: {type: user, required: true, default: auth.id}
      credit_limit: {type: decimal, default: 0, min: 0}
    access: {read: "record.owner == auth.id", create: "record.owner == auth.id"}
  Charge:
    fields:
      account: {type: ref, to: Account, required: true, related_name: charges}
      amount: {type: decimal, required: true, min: 0}
    access:
      read: "record.account.owner == auth.id"
      create: "record.account.owner == auth.id"
      update: "record.account.owner == auth.id"
invariants:
  within_credit_limit:
    for: Account
    rule: "record.charges.map(c, c.amount).sum() <= record.credit_limit"
    message: "Charges would exceed the account's credit limit"
"""

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


class Api:
    """The data API of one tenant, as one caller (a key, maybe an end user's token)."""

    def __init__(self, slug: str, apikey: str, token: str | None = None):
        self.slug, self.apikey, self.token = slug, apikey, token
        self.client = Client()

    def call(self, method: str, entity: str, query: str = "", body=None, *, prefer: str | None = None,
             raw: bytes | str | None = None, headers: dict | None = None):
        sent = {"apikey": self.apikey, **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if prefer:
            sent["Prefer"] = prefer
        data = raw if raw is not None else ("" if body is None else json.dumps(body))
        path = f"/t/{self.slug}/rest/v1/{entity}" + (f"?{query}" if query else "")
        response = self.client.generic(method, path, data=data, content_type="application/json", headers=sent)
        response.body = json.loads(response.content) if response.content else None
        return response

    def post(self, entity, body, query="", **kw):
        return self.call("POST", entity, query, body, **kw)

    def patch(self, entity, query, body, **kw):
        return self.call("PATCH", entity, query, body, **kw)

    def delete(self, entity, query, **kw):
        return self.call("DELETE", entity, query, **kw)

    def put(self, entity, query, body, **kw):
        return self.call("PUT", entity, query, body, **kw)


class Backend:
    """A committed tenant serving a definition, with its keys and end users."""

    def __init__(self, tenant, keys):
        self.tenant, self.keys, self.slug = tenant, keys, tenant.slug
        self.users: dict[str, str] = {}

    def push(self, source: str, owner) -> "Backend":
        result = definition_push(tenant=self.tenant, source=textwrap.dedent(source), content_type="application/yaml",
                                 actor=Actor(owner))
        assert result.status == "applied", result.errors
        return self

    def user(self, name: str, role: str) -> str:
        user_id = str(uuid.uuid4())
        with tenant_transaction(self.tenant.id) as conn:
            conn.execute("INSERT INTO _users (id, email, role) VALUES (%s, %s, %s)", [user_id, f"{name}@x.io", role])
        self.users[name] = user_id
        return user_id

    def as_user(self, name: str) -> Api:
        role = self.sql("SELECT role FROM _users WHERE id = %s", [self.users[name]])[0][0]
        token, _ = issue_access_token(resolve_tenant(self.slug), user_id=self.users[name], email=f"{name}@x.io",
                                      role=role)
        return Api(self.slug, self.keys["anon"], token)

    @property
    def anon(self) -> Api:
        return Api(self.slug, self.keys["anon"])

    @property
    def service(self) -> Api:
        return Api(self.slug, self.keys["service"])

    def sql(self, query: str, params=None) -> list[tuple]:
        with tenant_transaction(self.tenant.id) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def backend_with(committed_tenants, owner, source: str, name: str = "Writes") -> Backend:
    tenant, keys = committed_tenants(owner, name)
    return Backend(tenant, keys).push(source, owner)


def example(name: str) -> str:
    return (EXAMPLES / f"{name}.yaml").read_text()


def wait_while_running_until_blocked(thread, table: str | None = None, poll: float = 0.05) -> None:
    """Return once a lock request in this database waits (on `table`, a quoted qualified
    name, if given), or once `thread` has ended: a test that holds a transaction open
    then knows the other side is waiting for it, or that it did not wait at all."""
    with connection.cursor() as cur:
        while thread.is_alive():
            if table is None:
                cur.execute("SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                            " WHERE NOT l.granted AND a.datname = current_database()")
            else:
                cur.execute("SELECT 1 FROM pg_locks WHERE NOT granted AND relation = %s::regclass", [table])
            if cur.fetchone():
                return
            time.sleep(poll)


def in_thread(call) -> tuple[threading.Thread, list]:
    """`call()` started in a thread of its own (with its own Django connection, closed at
    the end), and the list its answer will be in."""
    answers: list = []

    def run():
        try:
            answers.append(call())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answers
