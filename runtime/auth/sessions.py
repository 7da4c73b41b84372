"""SQL on `_refresh_tokens`. A session is a family of refresh tokens sharing a
`session_id`: each refresh revokes the token used and adds its successor to the family;
the session is alive while one token of the family is unrevoked."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg.rows import dict_row

from runtime.auth.tokens import new_refresh_token, refresh_token_hash


# How long a spent or revoked token is kept: presenting it within that time revokes its
# whole session (see `use`); after it, it is simply not found. Without pruning, a session
# would keep every token it ever had: one more per refresh, one an hour for a live client.
REVOKED_KEPT_DAYS = 30


def start(conn, user_id: str, session_id: str | None = None) -> tuple[str, str]:
    """A new refresh token (in a new session unless `session_id`): (token, session_id).
    The user's tokens revoked more than REVOKED_KEPT_DAYS ago go at the same time."""
    session_id = session_id or str(uuid.uuid4())
    conn.execute("DELETE FROM _refresh_tokens WHERE user_id = %s AND revoked_at < now() - make_interval(days => %s)",
                 (user_id, REVOKED_KEPT_DAYS))
    token = new_refresh_token()
    conn.execute("INSERT INTO _refresh_tokens (user_id, token_hash, session_id) VALUES (%s, %s, %s)",
                 (user_id, refresh_token_hash(token), session_id))
    return token, session_id


@dataclass(frozen=True)
class Used:
    """What presenting a refresh token found: `reused` means it was revoked already."""
    user_id: str
    session_id: str
    reused: bool


def use(conn, token: str) -> Used | None:
    """Revoke `token` and say whose it was; None if no such token. A token that was
    revoked already is a replay (stolen, or a client bug): the whole family is revoked."""
    with conn.cursor(row_factory=dict_row) as cur:
        # FOR UPDATE: two concurrent refreshes with one token cannot both succeed
        cur.execute("SELECT id, user_id, session_id, revoked_at FROM _refresh_tokens WHERE token_hash = %s FOR UPDATE",
                    (refresh_token_hash(token),))
        row = cur.fetchone()
    if row is None:
        return None
    user_id, session_id = str(row["user_id"]), str(row["session_id"])
    if row["revoked_at"] is not None:
        revoke_session(conn, session_id)
        return Used(user_id, session_id, reused=True)
    conn.execute("UPDATE _refresh_tokens SET revoked_at = now() WHERE id = %s", (row["id"],))
    return Used(user_id, session_id, reused=False)


def revoke_session(conn, session_id: str) -> None:
    conn.execute("UPDATE _refresh_tokens SET revoked_at = now() WHERE session_id = %s AND revoked_at IS NULL",
                 (session_id,))


def revoke_user(conn, user_id: str, *, keep_session: str | None = None) -> None:
    """Every session of the user, but `keep_session` if given."""
    conn.execute(
        "UPDATE _refresh_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL"
        " AND (%s::uuid IS NULL OR session_id <> %s::uuid)",
        (user_id, keep_session, keep_session),
    )


def alive(conn, session_id: str) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM _refresh_tokens WHERE session_id = %s AND revoked_at IS NULL)",
                       (session_id,)).fetchone()
    return bool(row[0])
