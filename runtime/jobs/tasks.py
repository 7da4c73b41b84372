"""Celery tasks: wake-ups only. Postgres holds the runs; a lost or repeated message is harmless."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_process_init
from django.db.backends.signals import connection_created

_in_worker = False


@worker_process_init.connect
def _mark_worker(**_kwargs):
    global _in_worker
    _in_worker = True


@connection_created.connect
def _asynchronous_commit(sender, connection, **_kwargs):
    """In workers, the control-plane connection commits without waiting for the WAL flush.

    It only claims runs, extends and ends leases, marks runs dead, sweeps and ticks
    schedules: a commit lost in a database crash leaves a run claimable again, or a slot
    due again (its idempotency key keeps it to one run), so none of it needs a durable
    commit, and each saves a disk flush per run. Steps and their checkpoints run on the
    runtime pool, whose commits stay synchronous."""
    if _in_worker and connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SET synchronous_commit = off")


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
