"""SQL on the tenant's `_users` table, on a connection from `runtime.db.tenant_transaction`.

Every value is a bound parameter. Rows come back as dicts of `COLUMNS`; `password_hash`
is read only by `password_hash_of`, so a user row can be answered without stripping it.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

COLUMNS = "id, email, role, app_metadata, user_metadata, created_at, updated_at, last_sign_in_at"


class EmailTaken(Exception):
    """The unique index on lower(email) refused the row."""


def _one(conn, query: str, params: tuple) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def by_id(conn, user_id: str, *, lock: bool = False) -> dict | None:
    return _one(conn, f"SELECT {COLUMNS} FROM _users WHERE id = %s" + (" FOR UPDATE" if lock else ""), (user_id,))


def by_email(conn, email: str) -> dict | None:
    return _one(conn, f"SELECT {COLUMNS}, password_hash FROM _users WHERE lower(email) = lower(%s)", (email,))


def password_hash_of(conn, user_id: str) -> str | None:
    row = _one(conn, "SELECT password_hash FROM _users WHERE id = %s", (user_id,))
    return row["password_hash"] if row else None


def create(conn, *, email: str, role: str, password_hash: str | None, app_metadata: dict, user_metadata: dict,
           signed_in: bool) -> dict:
    try:
        # a savepoint, so a taken email leaves the transaction usable for the answer
        with conn.transaction():
            return _one(
                conn,
                "INSERT INTO _users (email, role, password_hash, app_metadata, user_metadata, last_sign_in_at)"
                f" VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) RETURNING {COLUMNS}",
                (email, role, password_hash, Jsonb(app_metadata), Jsonb(user_metadata), signed_in),
            )
    except psycopg.errors.UniqueViolation:
        raise EmailTaken()


def update(conn, user_id: str, changes: dict) -> dict:
    """Set the given columns (names from this module's callers, never from a request)."""
    allowed = {"email", "role", "password_hash", "app_metadata", "user_metadata"}
    assert set(changes) <= allowed, changes
    if not changes:
        return by_id(conn, user_id)
    sets = ", ".join(f"{column} = %s" for column in changes)
    values = tuple(Jsonb(v) if column.endswith("_metadata") else v for column, v in changes.items())
    try:
        with conn.transaction():
            return _one(conn, f"UPDATE _users SET {sets} WHERE id = %s RETURNING {COLUMNS}", (*values, user_id))
    except psycopg.errors.UniqueViolation:
        raise EmailTaken()


def signed_in(conn, user_id: str) -> dict:
    return _one(conn, f"UPDATE _users SET last_sign_in_at = now() WHERE id = %s RETURNING {COLUMNS}", (user_id,))


def set_password_hash(conn, user_id: str, password_hash: str) -> None:
    conn.execute("UPDATE _users SET password_hash = %s WHERE id = %s", (password_hash, user_id))


def delete(conn, user_id: str) -> bool:
    # refresh tokens go with the user (ON DELETE CASCADE); `user` fields follow their on_delete
    return conn.execute("DELETE FROM _users WHERE id = %s", (user_id,)).rowcount == 1


def page(conn, *, page: int, per_page: int) -> tuple[list[dict], int]:
    """Newest first, as GoTrue lists them; and the total, for `X-Total-Count`."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {COLUMNS} FROM _users ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
                    (per_page, (page - 1) * per_page))
        rows = cur.fetchall()
        cur.execute("SELECT count(*) AS n FROM _users")
        total = cur.fetchone()["n"]
    return rows, total
