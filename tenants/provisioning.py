"""Create and drop a tenant's Postgres schema and role; set up the runtime role.

The isolation model (DESIGN.md, Tenancy and isolation):

- each tenant has a schema `t_<id>` owned by a NOLOGIN role `t_<id>`; nobody else has any
  privilege on it (a new schema grants nothing to PUBLIC);
- the runtime connects as `plinth_runtime`: LOGIN, NOINHERIT, a member of every tenant role.
  NOINHERIT means membership gives it nothing until it `SET LOCAL ROLE`s to one tenant;
- `public` (the control-plane tables) grants nothing to PUBLIC, so under a tenant role a
  query naming a control-plane table fails with a permission error;
- tenant roles may not call `set_config` (see `ensure_runtime_role`), so no statement run
  under a tenant role can switch to another role. A compiled fragment cannot smuggle a
  second statement such as `SET ROLE` either: statements go by psycopg's extended
  protocol, which refuses one, or, in runtime/db.py's one-message reads, only texts
  without a `;`.

Every statement here runs on the caller's connection and inside the caller's transaction
(`tenant_create` wraps the row, the role and the schema in one), so a failure part way
leaves nothing behind: Postgres DDL, including CREATE ROLE, is transactional.
Names are validated before they reach SQL and always quoted.
"""

from __future__ import annotations

import re

from django.conf import settings
from psycopg import sql

from tenants.crypto import runtime_role_password

_SCHEMA_NAME = re.compile(r"^t_[a-z0-9]{12}$")


def schema_name(tenant_id: str) -> str:
    name = f"t_{tenant_id}"
    if not _SCHEMA_NAME.match(name):
        # Tenant ids are generated, never user input; anything else is a bug, not a request.
        raise ValueError(f"not a tenant schema name: {name!r}")
    return name


def provision_tenant(cursor, tenant_id: str) -> None:
    name = sql.Identifier(schema_name(tenant_id))
    runtime = sql.Identifier(settings.PLINTH_RUNTIME_ROLE)
    cursor.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(name))
    cursor.execute(sql.SQL("GRANT {} TO {}").format(name, runtime))
    cursor.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(name, name))


def deprovision_tenant(cursor, tenant_id: str) -> None:
    name = sql.Identifier(schema_name(tenant_id))
    cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [schema_name(tenant_id)])
    if cursor.fetchone():
        # Anything the role was granted or owns elsewhere in this database goes first.
        cursor.execute(sql.SQL("DROP OWNED BY {}").format(name))
        cursor.execute(sql.SQL("DROP ROLE {}").format(name))


def schema_exists(cursor, tenant_id: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema_name(tenant_id)])
    return cursor.fetchone() is not None


def role_exists(cursor, tenant_id: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [schema_name(tenant_id)])
    return cursor.fetchone() is not None


def ensure_runtime_role(cursor) -> None:
    """Create or update the runtime's login role, and close `public` to everyone else.

    Run by a migration, so every database the platform uses (including test databases)
    gets it. The password is derived from SECRET_KEY (never logged); trust-auth
    development servers ignore it.
    """
    role = settings.PLINTH_RUNTIME_ROLE
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    if cursor.fetchone() is None:
        cursor.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT").format(sql.Identifier(role)))
    cursor.execute(
        sql.SQL("ALTER ROLE {} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(runtime_role_password())
        )
    )
    cursor.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    # `SET ROLE` is checked against the session user, and the runtime's session user is a
    # member of every tenant role: under tenant A, a statement could switch to tenant B.
    # A statement cannot contain `SET`, but it can call set_config('role', ...), so tenant
    # roles may not call set_config at all; the runtime calls it (as itself) to switch in.
    cursor.execute("REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC")
    cursor.execute(
        sql.SQL("GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) TO {}").format(
            sql.Identifier(role)
        )
    )
