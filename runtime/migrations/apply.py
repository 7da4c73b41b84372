"""Running a plan: inside the caller's transaction, as the tenant's role (so that what is
created belongs to the tenant and nothing outside its schema can be touched), system
tables first, then the plan's statements in order. The caller commits, together with the
version row, or rolls everything back."""

from __future__ import annotations

from contextlib import contextmanager

from psycopg import sql

from runtime.migrations.plan import Plan
from runtime.migrations.system import apply_system_migrations
from tenants.provisioning import schema_name

# A migration waits at most this long for locks held by live requests, then fails cleanly.
LOCK_TIMEOUT = "5s"


@contextmanager
def in_tenant_schema(cursor, tenant_id: str):
    """Act as the tenant's role with its schema on the path, until the block ends.

    Used on the control-plane connection, inside a transaction; `RESET ROLE` at the end
    lets the caller write control-plane rows in the same transaction.
    """
    schema = schema_name(tenant_id)
    cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(schema)))
    cursor.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
    cursor.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
    yield cursor
    # Not in a `finally`: after an error the transaction is aborted and rolls back anyway.
    cursor.execute("RESET ROLE")
    cursor.execute("SET LOCAL search_path TO public")


def apply_migration(cursor, plan: Plan) -> None:
    """Run system migrations, then every statement of `plan` (cursor already in the tenant's
    schema, inside a transaction)."""
    apply_system_migrations(cursor)
    for statement in plan.statements:
        cursor.execute(statement)
