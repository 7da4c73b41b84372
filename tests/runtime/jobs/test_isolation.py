"""The shared job tables under row-level security: under tenant A's role nothing of tenant
B's runs, steps or events can be read, changed or forged, and the schedules are out of
reach; the runtime role on its own sees no rows at all."""

from __future__ import annotations

import psycopg
import pytest

from runtime.db import runtime_pool, tenant_transaction

DEFINITION = """
version: 1
entities:
  Note:
    fields: {title: {type: string}}
jobs:
  touch:
    schedule: "0 * * * *"
    steps:
      - create: Note
        set: {title: "'x'"}
"""


def as_tenant(tenant_id, query, params=()):
    with tenant_transaction(tenant_id) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else cur.rowcount


@pytest.fixture
def pair(api_tenant):
    a, b = api_tenant(source=DEFINITION), api_tenant(source=DEFINITION)
    for t in (a, b):
        t.run = as_tenant(t.tenant.id, "INSERT INTO plinth_jobs.runs (kind, name) VALUES ('job', 'touch') RETURNING id::text")[0][0]
        as_tenant(t.tenant.id, "INSERT INTO plinth_jobs.steps (run_id, key, kind, attempt, state) VALUES (%s, 'k', 'create', 1, 'done')",
                  [t.run])
        as_tenant(t.tenant.id, "INSERT INTO plinth_jobs.events (name) VALUES ('Note.created')")
    return a, b


@pytest.mark.parametrize("table", ["runs", "steps", "events"])
def test_a_tenant_sees_only_its_own_rows(pair, table):
    a, b = pair
    assert as_tenant(a.tenant.id, f"SELECT DISTINCT tenant_id FROM plinth_jobs.{table}") == [(a.tenant.id,)]
    assert as_tenant(b.tenant.id, f"SELECT DISTINCT tenant_id FROM plinth_jobs.{table}") == [(b.tenant.id,)]


def test_a_tenant_cannot_change_or_forge_another_tenants_runs(pair):
    a, b = pair
    assert as_tenant(a.tenant.id, "UPDATE plinth_jobs.runs SET state = 'cancelled' WHERE id = %s", [b.run]) == 0
    assert as_tenant(a.tenant.id, "UPDATE plinth_jobs.steps SET result = '{}' WHERE run_id = %s", [b.run]) == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege):        # row-level security refuses it
        as_tenant(a.tenant.id, "INSERT INTO plinth_jobs.runs (tenant_id, kind, name) VALUES (%s, 'job', 'touch')",
                  [b.tenant.id])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):        # its own row, moved to B
        as_tenant(a.tenant.id, "UPDATE plinth_jobs.runs SET tenant_id = %s WHERE id = %s", [b.tenant.id, a.run])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):        # a step on B's run
        as_tenant(a.tenant.id, "INSERT INTO plinth_jobs.steps (run_id, tenant_id, key, kind, attempt, state) "
                  "VALUES (%s, %s, 'k2', 'create', 1, 'done')", [b.run, b.tenant.id])
    for statement in ("DELETE FROM plinth_jobs.runs", "DELETE FROM plinth_jobs.events", "SELECT * FROM plinth_jobs.schedules",
                      "TRUNCATE plinth_jobs.runs", "ALTER TABLE plinth_jobs.runs DISABLE ROW LEVEL SECURITY",
                      "DROP POLICY own_rows ON plinth_jobs.runs"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_tenant(a.tenant.id, statement)
    # B's run is untouched
    assert as_tenant(b.tenant.id, "SELECT state FROM plinth_jobs.runs WHERE id = %s", [b.run]) == [("queued",)]


def test_the_runtime_role_by_itself_sees_no_runs(pair):
    with runtime_pool().connection() as conn:
        with conn.transaction():
            assert conn.execute("SELECT count(*) FROM plinth_jobs.runs").fetchone()[0] == 0
