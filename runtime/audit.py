"""Reading a tenant's data audit trail (`_audit`, written by every data write in its own
transaction: see runtime/api/integrity.py), for the admin API and the console."""

from __future__ import annotations

from django.db import connection, transaction

from runtime.migrations import in_tenant_schema

MAX_ROWS = 200


def data_audit(tenant_id: str, *, limit: int = 50, entity: str | None = None, row_id: str | None = None) -> list[dict]:
    """Newest first: who (user id or key), what (entity, row, operation, changed fields with
    before and after) and when."""
    limit = max(1, min(int(limit), MAX_ROWS))
    # The admin side reads on its own connection, under the tenant's role, in a transaction.
    with transaction.atomic(), connection.cursor() as cur, in_tenant_schema(cur, tenant_id):
        cur.execute("SELECT to_regclass('_audit') IS NULL")
        if cur.fetchone()[0]:
            return []  # nothing pushed yet: no data, no trail
        cur.execute(
            "SELECT id, at, actor_kind, actor_id, entity, row_id, operation, changed, before, after FROM _audit"
            " WHERE (%(entity)s::text IS NULL OR entity = %(entity)s) AND (%(row)s::uuid IS NULL OR row_id = %(row)s::uuid)"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"entity": entity, "row": row_id, "limit": limit},
        )
        rows = cur.fetchall()
    keys = ("id", "at", "actor_kind", "actor_id", "entity", "row_id", "operation", "changed", "before", "after")
    return [
        {**dict(zip(keys, row)), "at": row[1].isoformat(), "row_id": str(row[5]) if row[5] else None,
         "before": _json(row[8]), "after": _json(row[9])} for row in rows
    ]


def _json(value):
    # jsonb comes back parsed from psycopg, or as text through Django's cursor
    if isinstance(value, str):
        import json

        return json.loads(value)
    return value
