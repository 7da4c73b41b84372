"""Platform-level Celery tasks (thin: load, call a service)."""

from __future__ import annotations

import socket
import time

from celery import shared_task
from django.db import connection

from controlplane.health import HEARTBEAT_KEY, redis_client


@shared_task(name="controlplane.tasks.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Sent by beat, run by a worker: /healthz reads its age to tell both are alive."""
    redis_client().set(HEARTBEAT_KEY, str(time.time()), ex=600)


@shared_task(name="controlplane.tasks.probe")
def probe() -> dict:
    """Answers which worker ran it and what it sees in the control-plane database."""
    with connection.cursor() as cur:
        cur.execute("SELECT current_database(), count(*) FROM tenants_tenant")
        database, tenants = cur.fetchone()
    return {"worker": socket.gethostname(), "database": database, "tenants": tenants}
