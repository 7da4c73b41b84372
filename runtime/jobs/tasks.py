"""Celery tasks: wake-ups only. Postgres holds the runs; a lost or repeated message is harmless."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="plinth.jobs.execute", acks_late=True, ignore_result=True)
def execute(run_id: str) -> int:
    from runtime.jobs.engine import work

    return work(run_id)


@shared_task(name="plinth.jobs.deliver", acks_late=True, ignore_result=True)
def deliver(event_id: int) -> int:
    from runtime.jobs.delivery import deliver as deliver_event

    return deliver_event(int(event_id))


@shared_task(name="plinth.jobs.sweep", ignore_result=True)
def sweep() -> dict:
    from runtime.jobs.sweeper import sweep as run_sweep

    return run_sweep()
