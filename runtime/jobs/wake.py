"""Telling workers about runs, after the transaction that made them due has committed.

A message is only a wake-up: the run is already stored, so a message that cannot be sent
(the broker is down or restarting) is logged and dropped, never raised to the caller whose
write already committed; the sweeper (runtime.jobs.sweeper) sends it again later.
"""

from __future__ import annotations

from typing import Iterable

import structlog

log = structlog.get_logger(__name__)


def wake_runs(run_ids: Iterable[object]) -> int:
    """Send one wake-up per run; returns how many were sent."""
    from runtime.jobs.tasks import execute

    sent = 0
    for run_id in run_ids:
        try:
            execute.apply_async(args=[str(run_id)], retry=False)
            sent += 1
        except Exception as exc:  # broker unreachable: the sweeper re-sends
            log.warning("jobs.wake_failed", run_id=str(run_id), error=type(exc).__name__)
            break
    return sent


def wake_events(event_ids: Iterable[object]) -> int:
    from runtime.jobs.tasks import deliver

    sent = 0
    for event_id in event_ids:
        try:
            deliver.apply_async(args=[int(event_id)], retry=False)
            sent += 1
        except Exception as exc:
            log.warning("jobs.wake_failed", event_id=event_id, error=type(exc).__name__)
            break
    return sent
