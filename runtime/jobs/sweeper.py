"""The sweeper (a beat task, every PLINTH_SWEEP_SECONDS): nothing due waits for a lost message.

Each tick: creates the runs of due cron slots; re-sends wake-ups for runs that are due and
were not taken (a lost or never-sent message, a retry whose backoff ended, a `sleep` that
ended, a `wait` that timed out) and for runs whose lease expired (their worker died);
re-sends undelivered events; forgets delivered events after a day, and finished runs
(with their steps) after PLINTH_RUN_RETENTION_DAYS. A run is re-sent at
most every RESEND seconds (`woken_at`), so a busy queue is not flooded with duplicates.
"""

from __future__ import annotations

import structlog
from django.conf import settings
from django.db import connection

from runtime.jobs.engine import ACTIVE_TENANT
from runtime.jobs.schedules import due_slots
from runtime.jobs.wake import wake_events, wake_runs

log = structlog.get_logger(__name__)

GRACE = "2 seconds"     # a fresh run's own wake-up is probably on its way
RESEND = "10 seconds"
BATCH = 1000


def sweep() -> dict:
    slots = due_slots()
    with connection.cursor() as cur:
        # Rows another transaction holds are skipped (swept next tick): a push holds its
        # tenant's runs while it settles them, in id order, and this update took its rows
        # in whatever order its plan gave, so the two could deadlock (the push then failed).
        not_woken = f"(woken_at IS NULL OR woken_at < now() - interval '{RESEND}') AND {ACTIVE_TENANT}"
        cur.execute(
            "WITH due AS (SELECT id FROM plinth_jobs.runs WHERE state IN ('queued', 'retrying', 'sleeping', 'waiting')"
            f" AND due_at <= now() - CASE WHEN state = 'queued' THEN interval '{GRACE}' ELSE interval '0' END"
            f" AND {not_woken} LIMIT {BATCH} FOR UPDATE SKIP LOCKED),"
            " lost AS (SELECT id FROM plinth_jobs.runs WHERE state = 'running' AND lease_until < now()"
            f" AND {not_woken} LIMIT {BATCH} FOR UPDATE SKIP LOCKED)"
            " UPDATE plinth_jobs.runs SET woken_at = now()"
            " WHERE id IN (SELECT id FROM due UNION ALL SELECT id FROM lost) RETURNING id::text")
        due = [row[0] for row in cur.fetchall()]
        cur.execute(f"SELECT id FROM plinth_jobs.events WHERE delivered_at IS NULL AND created_at < now() - interval '{GRACE}' "
                    f"ORDER BY id LIMIT {BATCH}")
        events = [row[0] for row in cur.fetchall()]
        cur.execute("DELETE FROM plinth_jobs.events WHERE delivered_at < now() - interval '1 day'")
        # finished runs past their retention, with their steps; a bounded batch per tick
        cur.execute(
            "DELETE FROM plinth_jobs.runs WHERE id IN (SELECT id FROM plinth_jobs.runs "
            "WHERE state IN ('succeeded', 'dead', 'cancelled') "
            f"AND finished_at < now() - make_interval(secs => %s) LIMIT {BATCH})",
            [settings.PLINTH_RUN_RETENTION_DAYS * 86400])
    sent = wake_runs(slots + due)
    delivered = wake_events(events)
    if slots or due or events:
        log.info("jobs.swept", slots=len(slots), runs=len(due), events=len(events), sent=sent + delivered)
    return {"slots": len(slots), "runs": len(due), "events": len(events)}
