"""The transactional outbox: runs and events written by the transaction that caused them.

A write, an action or a job step collects what should happen after it (`enqueue`,
`start`, `emit`, and the `<Entity>.<event>` events of its writes) in an `Outbox`. Before
the transaction commits, `flush` turns them into rows of `plinth_jobs.runs` (a job or
workflow to run: enqueued, started, or started by an event it listens to) and of
`plinth_jobs.events` (an event some workflow `wait`s for), in that same transaction and
under the tenant's role (row-level security names the tenant). So a run exists if and only
if its cause committed: a rolled-back write starts nothing. After the commit, `wake`
sends the Celery wake-ups; if that fails the sweeper sends them later.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from runtime.compile import CompiledBackend

RUN_KINDS = {"enqueue": "job", "start": "workflow"}


def jsonable(value: Any) -> Any:
    """A step value as JSON: ids and decimals as strings, times in ISO 8601."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "as_tuple"):  # Decimal
        return str(value)
    return value


@dataclass
class Outbox:
    runs: list[tuple[str, str, str, str | None, float, str]] = field(default_factory=list)   # input as JSON text
    events: list[tuple[str, str]] = field(default_factory=list)                              # payload as JSON text
    due_run_ids: list[str] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)

    def run(self, kind: str, name: str, payload: dict, key: str | None = None, delay: float | None = None,
            cause: str = "") -> None:
        """A job (`kind` "job") or workflow run to create; `key` makes a repeat a no-op."""
        self.runs.append((kind, name, json.dumps(jsonable(payload)), key, float(delay or 0), cause))

    def event(self, name: str, payload: dict) -> None:
        self.events.append((name, json.dumps(jsonable(payload))))

    def row_event(self, name: str, row_json: str) -> None:
        """`<Entity>.<event>` with the row as `record`, its JSON kept exactly as stored."""
        self.events.append((name, '{"record": ' + row_json + "}"))

    def add(self, kind: str, name: str, payload: dict, key: str | None = None, delay: float | None = None,
            cause: str = "") -> None:
        if kind == "event":
            self.event(name, payload)
        else:
            self.run(kind, name, payload, key, delay, cause)

    def flush(self, conn, backend: CompiledBackend) -> None:
        """Write the runs and events (call inside the transaction, before it commits)."""
        runs = list(self.runs)
        waited = []
        for name, payload in self.events:
            for kind, target in backend.events.starts.get(name, ()):
                runs.append((kind, target, payload, None, 0.0, f"event {name}"))
            if name in backend.events.waits:
                waited.append((name, payload))
        self.runs.clear()
        self.events.clear()
        if runs:
            rows = conn.execute(
                "INSERT INTO plinth_jobs.runs (kind, name, input, key, cause, due_at) "
                "SELECT r.kind, r.name, r.input::jsonb, r.key, r.cause, now() + make_interval(secs => r.delay) "
                "FROM unnest(%(kinds)s::text[], %(names)s::text[], %(inputs)s::text[], %(keys)s::text[], "
                "%(delays)s::float8[], %(causes)s::text[]) AS r(kind, name, input, key, delay, cause) "
                "ON CONFLICT (tenant_id, kind, name, key) WHERE key IS NOT NULL DO NOTHING "
                "RETURNING id, due_at <= now()",
                {"kinds": [r[0] for r in runs], "names": [r[1] for r in runs],
                 "inputs": [r[2] for r in runs], "keys": [r[3] for r in runs],
                 "delays": [r[4] for r in runs], "causes": [r[5] for r in runs]},
            ).fetchall()
            self.due_run_ids += [str(run_id) for run_id, due in rows if due]
        if waited:
            rows = conn.execute(
                "INSERT INTO plinth_jobs.events (name, payload) "
                "SELECT e.name, e.payload::jsonb FROM unnest(%(names)s::text[], %(payloads)s::text[]) AS e(name, payload) "
                "RETURNING id",
                {"names": [w[0] for w in waited], "payloads": [w[1] for w in waited]},
            ).fetchall()
            self.event_ids += [event_id for (event_id,) in rows]

    def wake(self) -> None:
        """After the commit: wake workers for what is due now (the sweeper covers the rest)."""
        from runtime.jobs.wake import wake_events, wake_runs

        runs, events = self.due_run_ids, self.event_ids
        self.due_run_ids, self.event_ids = [], []
        if runs:
            wake_runs(runs)
        if events:
            wake_events(events)
