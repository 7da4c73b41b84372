"""The jobs benchmark's baseline: a plain Celery task doing the least a job step must, one
transaction under the tenant's role inserting the row; no run row, claim, lease,
checkpoint or history. Loaded only by the benchmark's worker (`--include baselines.tasks`)."""

from __future__ import annotations

from celery import shared_task

from runtime.db import tenant_transaction


@shared_task(name="bench.plain_insert", ignore_result=True)
def plain_insert(tenant_id: str, n: int) -> None:
    with tenant_transaction(tenant_id) as conn:
        conn.execute('INSERT INTO "Effect" (n) VALUES (%s)', [n])
