"""A Celery task runs on a real worker process through the real Redis broker (no eager
mode), and that worker sees the same control-plane database as the test."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.db import connection

from controlplane.celery import app
from controlplane.tasks import probe
from tenants import services

pytestmark = pytest.mark.worker


@pytest.fixture
def worker(transactional_db):
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    if db["HOST"].startswith("/"):  # a socket directory (embedded server)
        url = f"postgres://{db['USER']}@/{db['NAME']}?host={db['HOST']}"
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "CELERY_QUEUE": app.conf.task_default_queue}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool", "prefork", "--concurrency", "1",
         "--hostname", f"test-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if app.control.inspect(timeout=1, destination=[f"test-{os.getpid()}@{os.uname().nodename}"]).ping():
                break
            assert process.poll() is None, "the worker exited during start-up"
        else:
            pytest.fail("the worker did not answer a ping within 60s")
        yield process
    finally:
        process.terminate()
        process.wait(30)


def test_a_task_runs_on_a_real_worker_and_sees_the_test_database(worker, alice, committed_tenants):
    assert not app.conf.task_always_eager
    committed_tenants(alice, "Seen by the worker")
    result = probe.delay()
    answer = result.get(timeout=30)
    assert answer["database"] == connection.settings_dict["NAME"]
    assert answer["tenants"] == 1
    assert answer["worker"] == os.uname().nodename
    # the worker is another process: the task did not run in this one
    assert result.state == "SUCCESS" and worker.pid != os.getpid()


def test_workers_ack_late_and_take_one_message_at_a_time():
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
