"""Cron schedules: exactly one run per job and slot.

`plinth_jobs.schedules` holds each scheduled job's next slot; it is rewritten by every
applied push (`sync_schedules`, in the push's transaction). The sweeper's tick
(`due_slots`) takes the due rows with `FOR UPDATE SKIP LOCKED`, creates the slot's run
with the idempotency key `schedule:<slot>` (a unique index: even two ticks that both got
past the lock, or a tick repeated after a crash, create one run), and moves the row to the
next slot after now. Slots missed while nothing ran (the platform was down) run once, as
the latest missed slot, on recovery.
"""

from __future__ import annotations

import datetime

from croniter import croniter
from django.db import connection

from runtime.definition.model import Definition
from runtime.jobs.engine import ACTIVE_TENANT


def _next(cron: str, after: datetime.datetime) -> datetime.datetime:
    return croniter(cron, after).get_next(datetime.datetime)


def _previous(cron: str, before: datetime.datetime) -> datetime.datetime:
    return croniter(cron, before).get_prev(datetime.datetime)


def _now(cur) -> datetime.datetime:
    cur.execute("SELECT now()")
    return cur.fetchone()[0].astimezone(datetime.timezone.utc)


def sync_schedules(tenant_id: str, definition: Definition | None) -> None:
    """Make the tenant's schedule rows match the definition (inside the push's transaction),
    and make the unfinished runs of jobs and workflows it no longer has due now, so that a
    worker ends them (`dead`) instead of leaving them parked for good."""
    wanted = {name: job.schedule for name, job in (definition.jobs if definition else {}).items() if job.schedule}
    with connection.cursor() as cur:
        now = _now(cur)
        cur.execute(
            "UPDATE plinth_jobs.runs SET due_at = now() WHERE tenant_id = %s "
            "AND state IN ('queued', 'retrying', 'sleeping', 'waiting') "
            "AND NOT ((kind = 'job' AND name = ANY(%s)) OR (kind = 'workflow' AND name = ANY(%s)))",
            [tenant_id, list(definition.jobs if definition else ()), list(definition.workflows if definition else ())])
        cur.execute("DELETE FROM plinth_jobs.schedules WHERE tenant_id = %s AND NOT (job = ANY(%s))",
                    [tenant_id, list(wanted)])
        for job, cron in wanted.items():
            cur.execute(
                "INSERT INTO plinth_jobs.schedules (tenant_id, job, cron, next_slot) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (tenant_id, job) DO UPDATE SET cron = EXCLUDED.cron, next_slot = EXCLUDED.next_slot "
                "WHERE plinth_jobs.schedules.cron <> EXCLUDED.cron",
                [tenant_id, job, cron, _next(cron, now)])


def due_slots(limit: int = 500) -> list[str]:
    """Create the runs of every due slot; returns their ids (to wake)."""
    from django.db import transaction

    created: list[str] = []
    with transaction.atomic(), connection.cursor() as cur:
        now = _now(cur)
        # a suspended tenant's slots wait: once active again, the missed ones run once
        cur.execute("SELECT tenant_id, job, cron, next_slot FROM plinth_jobs.schedules WHERE next_slot <= now() "
                    f"AND {ACTIVE_TENANT} ORDER BY next_slot LIMIT %s FOR UPDATE SKIP LOCKED", [limit])
        for tenant_id, job, cron, next_slot in cur.fetchall():
            # the latest slot that is due (earlier missed ones collapse into it)
            slot = _previous(cron, now + datetime.timedelta(microseconds=1))
            slot = max(slot, next_slot.astimezone(datetime.timezone.utc))
            cur.execute(
                "INSERT INTO plinth_jobs.runs (tenant_id, kind, name, key, cause) VALUES (%s, 'job', %s, %s, %s) "
                "ON CONFLICT (tenant_id, kind, name, key) WHERE key IS NOT NULL DO NOTHING RETURNING id::text",
                [tenant_id, job, f"schedule:{slot.isoformat()}", f"schedule {slot.isoformat()}"])
            row = cur.fetchone()
            if row:
                created.append(row[0])
            cur.execute("UPDATE plinth_jobs.schedules SET next_slot = %s WHERE tenant_id = %s AND job = %s",
                        [_next(cron, now), tenant_id, job])
    return created
