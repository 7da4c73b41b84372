"""The runtime's connections, and the one way to touch a tenant's data: `tenant_transaction`.

The runtime connects as `plinth_runtime` (NOINHERIT, no rights of its own) through a pool.
Every unit of tenant work is one transaction that first switches, transaction-locally, to
the tenant's role, search path and caller claims, in a single round trip:

    SELECT set_config('search_path', 't_<id>', true),
           set_config('request.jwt.claims', '<claims json>', true),
           set_config('role', 't_<id>', true)

`set_config(..., true)` is `SET LOCAL`: it ends with the transaction, so nothing leaks to
the next user of a pooled connection (the django-tenants lesson, STYLE.md). Postgres then
enforces the boundary: this role can read its own schema and nothing else.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Iterator

import psycopg
from django.conf import settings
from django.db import connections
from psycopg_pool import ConnectionPool

from tenants.crypto import runtime_role_password
from tenants.provisioning import schema_name

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()

# The role switch comes last: the other set_config calls must still run as plinth_runtime,
# because tenant roles may not call set_config (tenants/provisioning.py).
# A tenant transaction that runs longer than this is cancelled (57014 -> 504): one tenant's
# runaway request cannot hold a pooled connection and locks indefinitely.
STATEMENT_TIMEOUT = "15s"
_SWITCH = (
    "SELECT set_config('search_path', %s, true), set_config('request.jwt.claims', %s, true),"
    f" set_config('statement_timeout', '{STATEMENT_TIMEOUT}', true), set_config('role', %s, true)"
)


def runtime_conninfo() -> str:
    """Where the runtime connects: RUNTIME_DATABASE_URL, or the control-plane database with
    the runtime role's user and derived password (read at call time, so that the test
    database, whose name Django picks at set-up, is the one used)."""
    if settings.RUNTIME_DATABASE_URL:
        return settings.RUNTIME_DATABASE_URL
    db = connections["default"].settings_dict
    # every input of the result: the password derivation (HKDF) then runs once, not per request
    key = (db["NAME"], db["HOST"], db["PORT"], settings.PLINTH_RUNTIME_ROLE, settings.SECRET_KEY)
    conninfo = _conninfos.get(key)
    if conninfo is None:
        conninfo = _conninfos[key] = _build_conninfo(db)
    return conninfo


_conninfos: dict[tuple, str] = {}


def _build_conninfo(db) -> str:
    params = {
        "dbname": db["NAME"],
        "user": settings.PLINTH_RUNTIME_ROLE,
        "password": runtime_role_password(),
        "host": db["HOST"] or "",
        "port": db["PORT"] or "",
        "application_name": "plinth-runtime",
        # expressions' date arithmetic must not depend on the server's zone
        "options": "-c TimeZone=UTC",
    }
    return " ".join(f"{k}='{_escape(v)}'" for k, v in params.items() if v != "")


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")


def runtime_pool() -> ConnectionPool:
    conninfo = runtime_conninfo()
    pool = _pools.get(conninfo)
    if pool is None:
        with _lock:
            pool = _pools.get(conninfo)
            if pool is None:
                pool = ConnectionPool(
                    conninfo,
                    min_size=1,
                    max_size=int(getattr(settings, "RUNTIME_POOL_SIZE", 10)),
                    open=True,
                    name="plinth-runtime",
                    kwargs={"autocommit": False},
                )
                _pools[conninfo] = pool
    return pool


def close_pools() -> None:
    with _lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


@contextmanager
def tenant_transaction(tenant_id: str, claims: dict | None = None) -> Iterator[psycopg.Connection]:
    """One transaction under the tenant's role; commits on success, rolls back on error."""
    schema = schema_name(tenant_id)
    with runtime_pool().connection() as conn:
        with conn.transaction():
            conn.execute(_SWITCH, (schema, json.dumps(claims or {}, separators=(",", ":")), schema))
            yield conn
