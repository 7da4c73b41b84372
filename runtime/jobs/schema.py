"""The shared tables of jobs and workflows, in their own schema `plinth_jobs`.

Postgres holds the truth about every run (DESIGN.md, Jobs and workflows). The tables are
shared by all tenants, so that one indexed query finds every run that is due, and they
are partitioned by row-level security: a tenant's role (`t_<id>`) may read, insert and
update only the rows whose `tenant_id` is its own, which is what lets the writing
transaction of the data API (running under that role) create runs and events atomically
with the change that caused them, and a worker's step checkpoint commit atomically with
the step's data effects. The control plane's own connection (the tables' owner) sees all
rows; it claims runs, sweeps, and serves the admin API.

- `runs`: one row per job or workflow run: input, state, attempt, next step, due time
  (the scheduled time, a retry's backoff, a sleep's end, a wait's timeout), lease, result,
  error. `since` is the snapshot after which events count for a `wait`.
- `steps`: the step history. A `done` row is a checkpoint: its `result` is what the step
  bound, and a resumed run reuses it instead of running the step again. `failed` rows
  keep what went wrong in earlier attempts.
- `events`: events some workflow may `wait` for, with the writing transaction's id, so a
  wait matches exactly the events committed after it began.
- `schedules`: the next cron slot of every scheduled job (owner only).
"""

from __future__ import annotations

ACTIVE_STATES = ("queued", "running", "retrying", "sleeping", "waiting")
FINAL_STATES = ("succeeded", "dead", "cancelled")
STATES = ACTIVE_STATES + FINAL_STATES

_OWN_ROWS = "('t_' || tenant_id) = current_user"

CREATE = [
    "CREATE SCHEMA plinth_jobs",
    "CREATE TABLE plinth_jobs.runs ("
    " id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
    # runs are created under the tenant's role: the default names it, the policy checks it
    " tenant_id text NOT NULL DEFAULT substr(current_user, 3),"
    " kind text NOT NULL CHECK (kind IN ('job', 'workflow')),"
    " name text NOT NULL,"
    " input jsonb NOT NULL DEFAULT '{}',"
    " key text,"
    " cause text NOT NULL DEFAULT '',"
    f" state text NOT NULL DEFAULT 'queued' CHECK (state IN ({', '.join(repr(s) for s in STATES)})),"
    " attempt integer NOT NULL DEFAULT 0,"
    # claims of this run after its worker was lost (its lease expired)
    " takeovers integer NOT NULL DEFAULT 0,"
    " next_step text,"
    # when it may run next; NULL: not until something happens (a wait without a timeout)
    " due_at timestamptz DEFAULT now(),"
    " lease_until timestamptz,"
    " leased_by text,"
    " woken_at timestamptz,"
    " wait_event text,"
    " since pg_snapshot NOT NULL DEFAULT pg_current_snapshot(),"
    " result jsonb,"
    " error text,"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " started_at timestamptz,"
    " finished_at timestamptz,"
    " updated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE UNIQUE INDEX runs_key ON plinth_jobs.runs (tenant_id, kind, name, key) WHERE key IS NOT NULL",
    "CREATE INDEX runs_due ON plinth_jobs.runs (due_at) WHERE state IN ('queued', 'retrying', 'sleeping', 'waiting')",
    "CREATE INDEX runs_lease ON plinth_jobs.runs (lease_until) WHERE state = 'running'",
    "CREATE INDEX runs_tenant ON plinth_jobs.runs (tenant_id, created_at DESC)",
    "CREATE INDEX runs_finished ON plinth_jobs.runs (finished_at) WHERE state IN ('succeeded', 'dead', 'cancelled')",
    "CREATE INDEX runs_waiting ON plinth_jobs.runs (tenant_id, wait_event) WHERE state = 'waiting'",
    "CREATE TABLE plinth_jobs.steps ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " run_id uuid NOT NULL REFERENCES plinth_jobs.runs (id) ON DELETE CASCADE,"
    " tenant_id text NOT NULL DEFAULT substr(current_user, 3),"
    " key text NOT NULL,"
    " kind text NOT NULL,"
    " attempt integer NOT NULL,"
    " state text NOT NULL CHECK (state IN ('done', 'failed', 'parked')),"
    " detail jsonb,"
    " result jsonb,"
    " error text,"
    " started_at timestamptz NOT NULL DEFAULT now(),"
    " finished_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "CREATE UNIQUE INDEX steps_done ON plinth_jobs.steps (run_id, key) WHERE state = 'done'",
    "CREATE INDEX steps_run ON plinth_jobs.steps (run_id, id)",
    "CREATE TABLE plinth_jobs.events ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " tenant_id text NOT NULL DEFAULT substr(current_user, 3),"
    " name text NOT NULL,"
    " payload jsonb NOT NULL DEFAULT '{}',"
    " xid xid8 NOT NULL DEFAULT pg_current_xact_id(),"
    " created_at timestamptz NOT NULL DEFAULT now(),"
    " delivered_at timestamptz)",
    "CREATE INDEX events_pending ON plinth_jobs.events (created_at) WHERE delivered_at IS NULL",
    "CREATE INDEX events_tenant ON plinth_jobs.events (tenant_id, name, id)",
    "CREATE TABLE plinth_jobs.schedules ("
    " tenant_id text NOT NULL,"
    " job text NOT NULL,"
    " cron text NOT NULL,"
    " next_slot timestamptz NOT NULL,"
    " PRIMARY KEY (tenant_id, job))",
    "CREATE INDEX schedules_due ON plinth_jobs.schedules (next_slot)",
    # tenant roles: their own rows of runs, steps and events, nothing of schedules
    "GRANT USAGE ON SCHEMA plinth_jobs TO PUBLIC",
    "GRANT SELECT, INSERT, UPDATE ON plinth_jobs.runs, plinth_jobs.steps, plinth_jobs.events TO PUBLIC",
    "ALTER TABLE plinth_jobs.runs ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE plinth_jobs.steps ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE plinth_jobs.events ENABLE ROW LEVEL SECURITY",
    f"CREATE POLICY own_rows ON plinth_jobs.runs USING ({_OWN_ROWS}) WITH CHECK ({_OWN_ROWS})",
    f"CREATE POLICY own_rows ON plinth_jobs.steps USING ({_OWN_ROWS}) WITH CHECK ({_OWN_ROWS})",
    f"CREATE POLICY own_rows ON plinth_jobs.events USING ({_OWN_ROWS}) WITH CHECK ({_OWN_ROWS})",
]

DROP = ["DROP SCHEMA IF EXISTS plinth_jobs CASCADE"]
