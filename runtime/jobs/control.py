"""Looking at a tenant's runs and steering them by hand: list, read with the step timeline,
retry a dead run, cancel a live one. The admin API and the console call these.

The control plane's connection owns `plinth_jobs` (row-level security binds only tenant
roles), so every statement here names the tenant itself: `tenant_id = %s` is in each
WHERE, and a run of another tenant is exactly as missing as one that never existed.

Retry and cancel lock the run (`FOR UPDATE`) and repeat the state they expect in the
UPDATE's WHERE, so a worker finishing the run at the same moment, or two people clicking
at once, cannot both win: the loser gets a 409 naming the state it found. Refusals are
`ServiceError`s (stable code, HTTP status), which the admin API answers in its error shape.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from django.db import connection, transaction

from runtime.jobs import wake
from runtime.jobs.alignment import changed_since_history, wait_for_push
from runtime.jobs.schema import ACTIVE_STATES, FINAL_STATES, STATES
from tenants.models import Tenant
from tenants.services import ServiceError, audit

MAX_LIMIT = 200
MAX_STEPS = 1000  # the newest steps of a long loop; `steps_omitted` counts the older ones
KINDS = ("job", "workflow")

# Columns a person may see. Never the lease holder or the `since` snapshot: internals.
_RUN_COLUMNS = (
    "id", "kind", "name", "state", "attempt", "cause", "key", "next_step", "wait_event", "error",
    "due_at", "created_at", "started_at", "finished_at", "updated_at", "version",
)
_DETAIL_COLUMNS = ("input", "result")
_STEP_COLUMNS = ("id", "key", "kind", "attempt", "state", "detail", "result", "error", "started_at", "finished_at")


def _not_found(run_id: object) -> ServiceError:
    return ServiceError("not_found", f"No run '{str(run_id)[:64]}' in this tenant.", status=404)


@dataclass(frozen=True)
class Cursor:
    """Where a page of runs ended: the last run's (created_at, id). Sent to callers as an
    opaque string (`encode`), taken back by `?before=` (`decode`)."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        """`ValueError` for anything that is not a cursor this module made."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            created, run_id = raw.split("|")
            created_at = datetime.fromisoformat(created)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError("not a cursor") from exc
        if created_at.tzinfo is None:
            raise ValueError("not a cursor")
        return cls(created_at, uuid.UUID(run_id))


# reading --------------------------------------------------------------------------------


def list_runs(
    tenant_id: str,
    *,
    name: str | None = None,
    kind: str | None = None,
    state: str | list[str] | tuple[str, ...] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    before: Cursor | str | None = None,
) -> tuple[list[dict], Cursor | None]:
    """The tenant's runs, newest first, and the cursor of the next page (None at the end).

    `state` is one state or several; `since` and `until` bound `created_at` (inclusive,
    exclusive); `before` continues after a page's cursor. Filters are validated by the
    caller; here a wrong kind or state simply matches nothing.
    """
    limit = max(1, min(int(limit), MAX_LIMIT))
    states = [state] if isinstance(state, str) else list(state) if state else None
    cursor = Cursor.decode(before) if isinstance(before, str) else before
    where = ["tenant_id = %(tenant)s"]
    params: dict = {"tenant": tenant_id, "limit": limit + 1}
    if name:
        where.append("name = %(name)s")
        params["name"] = name
    if kind:
        where.append("kind = %(kind)s")
        params["kind"] = kind
    if states:
        where.append("state = ANY(%(states)s)")
        params["states"] = states
    if since is not None:
        where.append("created_at >= %(since)s")
        params["since"] = since
    if until is not None:
        where.append("created_at < %(until)s")
        params["until"] = until
    if cursor is not None:
        where.append("(created_at, id) < (%(c_at)s, %(c_id)s)")
        params.update(c_at=cursor.created_at, c_id=cursor.id)
    query = (
        f"SELECT {', '.join(_RUN_COLUMNS)}, {_RUN_DURATION} FROM plinth_jobs.runs"
        f" WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
    )
    with connection.cursor() as cur:
        cur.execute(query, params)
        rows = [_run_json(dict(zip((*_RUN_COLUMNS, "duration_ms"), row))) for row in cur.fetchall()]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, Cursor(datetime.fromisoformat(last["created_at"]), uuid.UUID(last["id"]))


def get_run(tenant_id: str, run_id: object) -> dict:
    """One run with its input, result and step timeline (oldest step first)."""
    run_uuid = _uuid_or_404(run_id)
    columns = (*_RUN_COLUMNS, *_DETAIL_COLUMNS)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(columns)}, {_RUN_DURATION} FROM plinth_jobs.runs WHERE id = %s AND tenant_id = %s",
            [run_uuid, tenant_id],
        )
        row = cur.fetchone()
        if row is None:
            raise _not_found(run_id)
        run = _run_json(dict(zip((*columns, "duration_ms"), row)))
        cur.execute(
            f"SELECT {', '.join(_STEP_COLUMNS)}, count(*) OVER () FROM plinth_jobs.steps"
            " WHERE run_id = %s AND tenant_id = %s ORDER BY id DESC LIMIT %s",
            [run_uuid, tenant_id, MAX_STEPS],
        )
        rows = cur.fetchall()
    run["steps"] = [_step_json(dict(zip(_STEP_COLUMNS, row))) for row in reversed(rows)]
    run["steps_omitted"] = (rows[0][-1] - len(rows)) if rows else 0
    return run


# steering -------------------------------------------------------------------------------


def retry_run(tenant_id: str, run_id: object, *, actor=None) -> dict:
    """Give a dead run another go: queued, due now, attempts counted from 0, the error
    cleared. Its checkpoints stay, so it resumes at its first unfinished step. Workers are
    told after commit. 409 `run_not_retryable` for any state but dead, `run_compensated` once
    its compensations ran, `run_out_of_step` if a push since its last claim changed a step
    it had reached (runtime/jobs/alignment.py)."""
    run_uuid = _uuid_or_404(run_id)
    with transaction.atomic():
        found = _lock(tenant_id, run_uuid, run_id)
        if found["state"] != "dead":
            raise ServiceError(
                "run_not_retryable", f"Only a dead run can be retried; this one is {found['state']}.", status=409
            )
        with connection.cursor() as cur:
            cur.execute("SELECT 1 FROM plinth_jobs.steps WHERE run_id = %s AND key LIKE %s LIMIT 1",
                        [run_uuid, "%/compensate/%"])
            if cur.fetchone():
                # its completed steps were (or were being) undone: resuming after them would
                # build on nothing
                raise ServiceError(
                    "run_compensated", "This workflow's compensations ran, so it cannot resume; start a new run.",
                    status=409)
            wait_for_push(cur, tenant_id)       # a push under way has settled, or not begun
            changed = changed_since_history(cur, tenant_id, run_uuid, found["kind"], found["name"])
            if changed is not None:
                raise ServiceError(
                    "run_out_of_step", f"A push since this run last ran changed the step at {changed}, which it "
                    "had reached: resuming would skip a step or run one again; start a new run.", status=409)
        _update(
            "state = 'queued', attempt = 0, error = NULL, result = NULL, due_at = now(), finished_at = NULL,"
            " lease_until = NULL, leased_by = NULL, updated_at = now()",
            tenant_id, run_uuid, ("dead",), run_id,
        )
        _audit(actor, tenant_id, "run.retry", run_uuid, found)
        # robust: a wake-up that cannot be sent must not fail a retry that committed; the
        # sweeper sends it later
        transaction.on_commit(lambda: wake.wake_runs([run_uuid]), robust=True)
    return get_run(tenant_id, run_uuid)


def cancel_run(tenant_id: str, run_id: object, *, actor=None) -> dict:
    """Stop a run that has not finished: cancelled now, its lease dropped. A worker in the
    middle of one of its steps finds the state changed at its next checkpoint. 409
    `run_already_final` for a run that succeeded, died or was cancelled."""
    run_uuid = _uuid_or_404(run_id)
    with transaction.atomic():
        found = _lock(tenant_id, run_uuid, run_id)
        if found["state"] in FINAL_STATES:
            raise ServiceError(
                "run_already_final", f"This run has already finished: it is {found['state']}.", status=409
            )
        _update(
            "state = 'cancelled', finished_at = now(), lease_until = NULL, leased_by = NULL, updated_at = now()",
            tenant_id, run_uuid, ACTIVE_STATES, run_id,
        )
        _audit(actor, tenant_id, "run.cancel", run_uuid, found)
    return get_run(tenant_id, run_uuid)


def _lock(tenant_id: str, run_uuid: uuid.UUID, run_id: object) -> dict:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT state, kind, name FROM plinth_jobs.runs WHERE id = %s AND tenant_id = %s FOR UPDATE",
            [run_uuid, tenant_id],
        )
        row = cur.fetchone()
    if row is None:
        raise _not_found(run_id)
    return {"state": row[0], "kind": row[1], "name": row[2]}


def _update(assignments: str, tenant_id: str, run_uuid: uuid.UUID, from_states: tuple[str, ...], run_id) -> None:
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE plinth_jobs.runs SET {assignments} WHERE id = %s AND tenant_id = %s AND state = ANY(%s)"
            " RETURNING state",
            [run_uuid, tenant_id, list(from_states)],
        )
        if cur.fetchone() is None:  # only if the lock was not held: never silently do nothing
            raise ServiceError("run_changed", f"Run '{run_id}' changed while it was updated; try again.", status=409)


def _audit(actor, tenant_id: str, action: str, run_uuid: uuid.UUID, found: dict) -> None:
    if actor is None:
        return
    tenant = Tenant.objects.only("id", "slug").get(pk=tenant_id)
    audit(actor, action, tenant, run_id=str(run_uuid), kind=found["kind"], name=found["name"], was=found["state"])


# shapes ---------------------------------------------------------------------------------

# How long a run has taken: from its first start to its end, or to now while it is live.
# A final run without finished_at (written by an older engine) stops at its last update.
_RUN_DURATION = (
    "(extract(epoch FROM coalesce(finished_at,"
    f" CASE WHEN state IN ({', '.join(repr(s) for s in FINAL_STATES)}) THEN updated_at ELSE now() END)"
    " - started_at) * 1000)::bigint"
)


def _uuid_or_404(run_id: object) -> uuid.UUID:
    if isinstance(run_id, uuid.UUID):
        return run_id
    try:
        return uuid.UUID(str(run_id))
    except ValueError:
        raise _not_found(run_id) from None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value is not None else None


def _json(value):
    # jsonb comes back as text through Django's cursor, parsed through a raw psycopg one
    return json.loads(value) if isinstance(value, str) else value


def _run_json(row: dict) -> dict:
    out = dict(row)
    out["id"] = str(row["id"])
    out["final"] = row["state"] in FINAL_STATES
    for column in ("due_at", "created_at", "started_at", "finished_at", "updated_at"):
        out[column] = _iso(row[column])
    for column in _DETAIL_COLUMNS:
        if column in row:
            out[column] = _json(row[column])
    return out


def _step_json(row: dict) -> dict:
    out = dict(row)
    out["detail"], out["result"] = _json(row["detail"]), _json(row["result"])
    started, finished = row["started_at"], row["finished_at"]
    out["duration_ms"] = round((finished - started).total_seconds() * 1000) if started and finished else None
    out["started_at"], out["finished_at"] = _iso(started), _iso(finished)
    return out


def parse_filters(params) -> tuple[dict, dict[str, str]]:
    """A query string's filters (`name`, `kind`, `state`, `since`, `until`, `limit`,
    `before`) to `list_runs` keywords, and what was wrong with them by parameter name.

    >>> parse_filters({"state": "dead,cancelled", "limit": "500"})[0]
    {'state': ['dead', 'cancelled'], 'limit': 200}
    >>> parse_filters({"since": "yesterday"})[1]
    {'since': 'Must be an ISO 8601 date or date and time, e.g. 2025-01-31T12:00:00Z.'}
    """
    filters: dict = {}
    errors: dict[str, str] = {}
    if params.get("name"):
        if "\x00" in params["name"]:  # Postgres text cannot hold it: refuse, do not fail
            errors["name"] = "Must not contain NUL characters."
        else:
            filters["name"] = params["name"]
    if params.get("kind"):
        if params["kind"] in KINDS:
            filters["kind"] = params["kind"]
        else:
            errors["kind"] = "Must be job or workflow."
    if params.get("state"):
        states = [s.strip() for s in params["state"].split(",") if s.strip()]
        unknown = [s for s in states if s not in STATES]
        if unknown:
            errors["state"] = f"Unknown state '{unknown[0]}'; states are {', '.join(STATES)}."
        elif states:
            filters["state"] = states
    for bound in ("since", "until"):
        if params.get(bound):
            try:
                filters[bound] = parse_instant(params[bound])
            except ValueError:
                errors[bound] = "Must be an ISO 8601 date or date and time, e.g. 2025-01-31T12:00:00Z."
    if params.get("limit"):
        try:
            filters["limit"] = max(1, min(int(params["limit"]), MAX_LIMIT))
        except ValueError:
            errors["limit"] = f"Must be a whole number (at most {MAX_LIMIT})."
    if params.get("before"):
        try:
            filters["before"] = Cursor.decode(params["before"])
        except ValueError:
            errors["before"] = "Must be the `next` cursor of an earlier page."
    return filters, errors


def parse_instant(text: str) -> datetime:
    """ISO 8601 to an aware datetime; no offset means UTC, a date alone its midnight.

    A `+` in a query string arrives as a space when the caller did not encode it
    (`?since=2025-01-31T12:00:00+02:00`), so a space before the offset is read as `+`.

    >>> parse_instant("2025-01-31T12:00:00 02:00").isoformat()
    '2025-01-31T12:00:00+02:00'
    >>> parse_instant("2025-01-31").isoformat()
    '2025-01-31T00:00:00+00:00'
    """
    text = re.sub(r"(T[\d:.,]+) (\d\d(?::?\d\d)?)$", r"\1+\2", text.strip())
    value = datetime.fromisoformat(text)  # ValueError for anything else
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
