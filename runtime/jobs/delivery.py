"""Events to waiting workflows.

An event some workflow waits for is stored in `plinth_jobs.events` by the transaction that
caused it (runtime/jobs/outbox.py); after commit a worker delivers it: every run of the
tenant parked in a `wait` on that event, whose `match` holds for it, gets the event as the
wait's result (a `done` step row) and is due at once.

A wait only sees events committed after the run's previous checkpoint: `runs.since` is
the snapshot taken by that checkpoint, and an event counts if its writer's transaction was
not visible in it (`pg_visible_in_snapshot`). Parking and delivering take the same
transaction-level advisory lock (tenant, event name), so an event committed while a run
parks is found by one of the two: either the parking transaction sees the committed
event, or the delivery, waiting for the lock, sees the parked run.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, Mapping

import psycopg
import structlog
from django.db import connection
from psycopg import sql

from runtime.api.steps import ExpressionCache
from runtime.compile import CompiledBackend
from runtime.db import RETRYABLE, retried, tenant_transaction
from runtime.definition.model import Step

log = structlog.get_logger(__name__)


def lock_event(conn, event_name: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(current_user || ':' || %s, 0))", [event_name])


def wait_value(event_name: str, payload: Mapping[str, Any], backend: CompiledBackend) -> Any:
    """What a wait binds: the row for an entity event (`Reply.created`), else the payload."""
    entity = event_name.split(".", 1)[0] if "." in event_name else None
    if entity in backend.entities and isinstance(payload, Mapping) and "record" in payload:
        return payload["record"]
    return payload


# A match that lost a race (RETRYABLE: a deadlock, say with a push altering the table it
# reads) said nothing about the event: the whole delivery (or the wait step) rolls back and
# `retried` runs it again, never "no match", which would mark the event delivered without
# the run that waits for it. Any other failure of a match (it cannot read the event, it ran
# out of time) is its answer: no match, logged, so that one event cannot be re-sent forever.


def _holds(conn, backend: CompiledBackend, step: Step, env: Mapping[str, Any], run_input: Mapping[str, Any],
           payload: Any) -> bool:
    match = step.target.get("match")
    if match is None:
        return True
    compiled = ExpressionCache.of(backend).get(match)
    params = compiled.bind(auth=None, input=run_input, bindings=env, event=payload)
    try:
        with conn.transaction():      # a savepoint: an event the match cannot read is no match
            row = conn.execute(sql.SQL("SELECT {}").format(compiled.sql), params).fetchone()
    except psycopg.Error as exc:
        if exc.sqlstate in RETRYABLE:   # not an answer about the event (see above)
            raise
        log.info("jobs.match_failed", step=step.path, error=exc.sqlstate)
        return False
    return bool(row and row[0])


def matching_event(conn, backend: CompiledBackend, run_id: str, step: Step, env: Mapping[str, Any],
                   run_input: Mapping[str, Any]) -> tuple[str, Any] | None:
    """An event committed since the run's last checkpoint that the wait matches (under the lock)."""
    name = str(step.target["event"])
    rows = conn.execute(
        "SELECT e.id, e.payload FROM plinth_jobs.events e, plinth_jobs.runs r WHERE r.id = %s "
        "AND e.tenant_id = r.tenant_id AND e.name = %s AND NOT pg_visible_in_snapshot(e.xid, r.since) ORDER BY e.id",
        [run_id, name]).fetchall()
    for _event_id, payload in rows:
        payload = payload if isinstance(payload, dict) else json.loads(payload)
        if _holds(conn, backend, step, env, run_input, payload):
            return ("event", wait_value(name, payload, backend))
    return None


def deliver(event_id: int) -> int:
    """Deliver one event; returns how many waiting runs it woke. Run again if Postgres rolled
    it back for losing a race."""
    return retried(partial(_deliver, event_id))


def _deliver(event_id: int) -> int:
    from runtime.api.backends import backend_for
    from runtime.jobs.engine import _steps_by_path
    from runtime.jobs.wake import wake_runs

    with connection.cursor() as cur:
        cur.execute("SELECT e.tenant_id, e.name, (SELECT max(v.number) FROM tenants_definitionversion v "
                    "WHERE v.tenant_id = e.tenant_id) FROM plinth_jobs.events e WHERE e.id = %s AND e.delivered_at IS NULL",
                    [event_id])
        found = cur.fetchone()
    if found is None:
        return 0
    tenant_id, name, version = found
    woken: list[str] = []
    with tenant_transaction(tenant_id) as conn:
        lock_event(conn, name)
        event = conn.execute("SELECT payload, xid FROM plinth_jobs.events WHERE id = %s AND delivered_at IS NULL "
                             "FOR UPDATE", [event_id]).fetchone()
        if event is None:
            return 0
        payload, xid = event
        payload = payload if isinstance(payload, dict) else json.loads(payload)
        backend = backend_for(tenant_id, version) if version is not None else None
        waiting = conn.execute(
            "SELECT r.id::text, r.kind, r.name, r.next_step, r.input, s.detail FROM plinth_jobs.runs r "
            "JOIN LATERAL (SELECT detail FROM plinth_jobs.steps WHERE run_id = r.id AND key = r.next_step "
            "AND state = 'parked' ORDER BY id DESC LIMIT 1) s ON true "
            "WHERE r.state = 'waiting' AND r.wait_event = %s AND NOT pg_visible_in_snapshot(%s::xid8, r.since) "
            "AND NOT EXISTS (SELECT 1 FROM plinth_jobs.steps d WHERE d.run_id = r.id AND d.key = r.next_step "
            "AND d.state = 'done') "
            "ORDER BY r.id FOR UPDATE OF r", [name, str(xid)]).fetchall() if backend else []
        paths: dict[str, dict] = {}     # workflow -> its steps by path, once per delivery
        for run_id, kind, run_name, key, run_input, detail in waiting:
            spec = (backend.jobs if kind == "job" else backend.workflows).get(run_name)
            if spec is not None and run_name not in paths:
                paths[run_name] = _steps_by_path(spec.steps)
            step = paths[run_name].get(key.split("#", 1)[0]) if spec and key else None
            if step is None or step.kind != "wait":
                # a push removed the workflow or moved its wait: let the engine settle the run
                conn.execute("UPDATE plinth_jobs.runs SET due_at = now() WHERE id = %s", [run_id])
                woken.append(run_id)
                continue
            detail = detail if isinstance(detail, dict) else json.loads(detail or "{}")
            run_input = run_input if isinstance(run_input, dict) else json.loads(run_input or "{}")
            if not _holds(conn, backend, step, detail.get("env") or {}, run_input, payload):
                continue
            value = wait_value(name, payload, backend)
            recorded = {"bind": {step.as_name: value}} if step.as_name else {}
            conn.execute(
                "INSERT INTO plinth_jobs.steps (run_id, key, kind, attempt, state, detail, result) "
                "SELECT id, %s, 'wait', attempt, 'done', %s::jsonb, %s::jsonb FROM plinth_jobs.runs WHERE id = %s",
                [key, json.dumps({"event": name, "outcome": "event", "event_id": event_id}), json.dumps(recorded), run_id])
            conn.execute("UPDATE plinth_jobs.runs SET due_at = now(), since = pg_current_snapshot(), updated_at = now() "
                         "WHERE id = %s", [run_id])
            woken.append(run_id)
        conn.execute("UPDATE plinth_jobs.events SET delivered_at = now() WHERE id = %s", [event_id])
    if woken:
        log.info("jobs.event_delivered", event_name=name, event_id=event_id, runs=len(woken))
        wake_runs(woken)
    return len(woken)
