"""Tables every tenant schema has besides its entities (names start with `_`, which
definition names cannot): end users, the audit trail, and the bookkeeping of these
system migrations themselves. Applied, in order, before any definition plan."""

from __future__ import annotations

SYSTEM_MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0001_base",
        [
            "CREATE TABLE _plinth_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            # keeps updated_at true on every path, whoever writes the row
            "CREATE FUNCTION _plinth_touch() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$",
            "CREATE TABLE _users ("
            " id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
            " email text NOT NULL,"
            " role text NOT NULL,"
            " password_hash text,"
            " app_metadata jsonb NOT NULL DEFAULT '{}',"
            " user_metadata jsonb NOT NULL DEFAULT '{}',"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " updated_at timestamptz NOT NULL DEFAULT now(),"
            " last_sign_in_at timestamptz)",
            "CREATE UNIQUE INDEX _users_email_key ON _users (lower(email))",
            "CREATE TRIGGER _users_touch BEFORE UPDATE ON _users FOR EACH ROW EXECUTE FUNCTION _plinth_touch()",
            "CREATE TABLE _audit ("
            " id bigserial PRIMARY KEY,"
            " at timestamptz NOT NULL DEFAULT now(),"
            " actor_kind text NOT NULL,"
            " actor_id text,"
            " entity text NOT NULL,"
            " row_id uuid,"
            " operation text NOT NULL,"
            " changed text[],"
            " before jsonb,"
            " after jsonb)",
            "CREATE INDEX _audit_at_idx ON _audit (at)",
        ],
    ),
    (
        "0002_auth",
        [
            # refresh tokens: only their SHA-256 is kept; rotated on use, revocable
            "CREATE TABLE _refresh_tokens ("
            " id bigserial PRIMARY KEY,"
            " user_id uuid NOT NULL REFERENCES _users (id) ON DELETE CASCADE,"
            " token_hash text NOT NULL UNIQUE,"
            " session_id uuid NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " revoked_at timestamptz)",
            "CREATE INDEX _refresh_tokens_user_idx ON _refresh_tokens (user_id)",
        ],
    ),
    (
        "0003_outbox",
        [
            # What a committed transaction asked to happen after it: jobs to enqueue,
            # workflows to start, events to publish. Written in the same transaction as
            # the change (so a rolled-back write starts nothing); read by the job runner.
            "CREATE TABLE _outbox ("
            " id bigserial PRIMARY KEY,"
            " kind text NOT NULL CHECK (kind IN ('job', 'workflow', 'event')),"
            " name text NOT NULL,"
            " payload jsonb NOT NULL DEFAULT '{}',"
            " key text,"
            " run_after timestamptz NOT NULL DEFAULT now(),"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " taken_at timestamptz)",
            "CREATE INDEX _outbox_pending_idx ON _outbox (id) WHERE taken_at IS NULL",
        ],
    ),
    (
        # Runs and events now live in the shared, row-level-secured tables of
        # `plinth_jobs` (runtime/jobs/schema.py), written by the same transaction.
        "0004_drop_outbox",
        ["DROP TABLE _outbox"],
    ),
]


def pending_system_migrations(cursor) -> list[tuple[str, list[str]]]:
    cursor.execute("SELECT to_regclass('_plinth_migrations') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return list(SYSTEM_MIGRATIONS)
    cursor.execute("SELECT name FROM _plinth_migrations")
    done = {row[0] for row in cursor.fetchall()}
    return [(name, stmts) for name, stmts in SYSTEM_MIGRATIONS if name not in done]


def apply_system_migrations(cursor) -> list[str]:
    applied = []
    for name, statements in pending_system_migrations(cursor):
        for statement in statements:
            cursor.execute(statement)
        cursor.execute("INSERT INTO _plinth_migrations (name) VALUES (%s)", [name])
        applied.append(name)
    return applied
