"""Jobs on one Celery worker: runs per second for a one-data-step job, and the latency from
the enqueuing transaction's commit to the step's start.

    python bench/jobs.py [--runs 2000] [--latency-runs 300] [--rate 50] [--concurrency 2]

Runs against its own database (`plinth_bench_jobs`) and a Celery queue of its own on the
Redis of REDIS_URL, with one worker process (`celery worker --concurrency N`, prefork) as
`make run` starts it. Measured in this one run:

- throughput: --runs runs of a job whose one step inserts a row, enqueued in batches of
  100 (each batch one transaction, as a write with many events would), until all have
  succeeded; beside it the baseline, the same number of plain Celery tasks each doing the
  least a job step must (one transaction under the tenant's role inserting the row), on
  the same worker. The ratio is what durability (the run row, claim, lease, checkpoint and
  step history) costs;
- latency: --latency-runs runs enqueued one per transaction at --rate per second; for each,
  the time from its transaction's commit to the start of its step (the step row's start).

Targets (issue #5): 400 runs/s or better; p50 commit-to-start under 25 ms.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _common import ROOT, bench_database, pct

DEFINITION = """
version: 1
entities:
  Effect:
    fields:
      n: {type: integer, required: true}
jobs:
  one:
    input: {n: {type: integer, required: true}}
    steps:
      - create: Effect
        set: {n: input.n}
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--latency-runs", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    os.environ["CELERY_QUEUE"] = f"plinth-bench-{uuid.uuid4().hex[:8]}"
    with bench_database("plinth_bench_jobs"):
        run(args)
    return 0


def start_worker(concurrency: int, workdir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}", "LOG_LEVEL": "WARNING"}
    log = open(workdir / "bench-worker.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool", "prefork",
         "--concurrency", str(concurrency), "-Q", os.environ["CELERY_QUEUE"], "--include", "baselines.tasks",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING",
         "--hostname", f"bench-{os.getpid()}@%h"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    from controlplane.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.control.inspect(timeout=1, destination=[f"bench-{os.getpid()}@{os.uname().nodename}"]).ping():
            return process
        if process.poll() is not None:
            raise SystemExit((workdir / "bench-worker.log").read_text()[-3000:])
    raise SystemExit("the worker did not start")


def run(args) -> None:
    import tempfile

    from django.db import connection

    from runtime.api.backends import backend_for
    from runtime.db import tenant_transaction
    from runtime.jobs.outbox import Outbox
    from tenants import services
    from tenants.definitions import definition_push
    from tenants.models import User

    owner = User.objects.create_user("bench@example.com", "bench-password-123")
    tenant, _ = services.tenant_create(owner=owner, name="Jobs bench", slug="jobs-bench")
    assert definition_push(tenant=tenant, source=DEFINITION, actor=services.Actor(owner)).status == "applied"
    backend = backend_for(tenant.id, 1)
    workdir = Path(tempfile.mkdtemp(prefix="plinth-bench-jobs-"))
    worker = start_worker(args.concurrency, workdir)

    def effects() -> int:
        with tenant_transaction(tenant.id) as conn:
            return conn.execute('SELECT count(*) FROM "Effect"').fetchone()[0]

    def wait_for(count: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while effects() < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {effects()} of {count} done after {timeout}s")
            time.sleep(0.02)

    def enqueue(inputs: list[int]) -> tuple[list[str], float]:
        outbox = Outbox()
        with tenant_transaction(tenant.id) as conn:
            for n in inputs:
                outbox.run("job", "one", {"n": n}, cause="bench")
            outbox.flush(conn, backend)
        committed = time.time()
        ids = list(outbox.due_run_ids)
        outbox.wake()
        return ids, committed

    try:
        # warm up: the worker's processes connect and compile the backend
        enqueue(list(range(20)))
        wait_for(20)
        from baselines.tasks import plain_insert

        for n in range(20):
            plain_insert.delay(tenant.id, -n)
        wait_for(40)

        # throughput: runs
        before = effects()
        started = time.monotonic()
        for start in range(0, args.runs, 100):
            enqueue(list(range(start, min(args.runs, start + 100))))
        wait_for(before + args.runs)
        runs_elapsed = time.monotonic() - started

        # throughput: the baseline (plain tasks)
        before = effects()
        started = time.monotonic()
        for n in range(args.runs):
            plain_insert.delay(tenant.id, n)
        wait_for(before + args.runs)
        plain_elapsed = time.monotonic() - started

        # latency: one run per transaction at a steady rate
        committed_at: dict[str, float] = {}
        gap = 1.0 / args.rate
        next_at = time.monotonic()
        before = effects()
        for n in range(args.latency_runs):
            ids, committed = enqueue([n])
            committed_at[ids[0]] = committed
            next_at += gap
            time.sleep(max(0.0, next_at - time.monotonic()))
        wait_for(before + args.latency_runs)
        with connection.cursor() as cur:
            cur.execute("SELECT run_id::text, extract(epoch FROM started_at) FROM plinth_jobs.steps "
                        "WHERE run_id = ANY(%s::uuid[]) AND state = 'done'", [list(committed_at)])
            latencies = [float(start) - committed_at[run_id] for run_id, start in cur.fetchall()]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)

    runs_per_s = args.runs / runs_elapsed
    plain_per_s = args.runs / plain_elapsed
    ms = lambda v: v * 1000  # noqa: E731
    print(f"\njobs: one worker (prefork, concurrency {args.concurrency}), {args.runs} runs each side, "
          f"{len(latencies)} latency samples at {args.rate:g}/s")
    print(f"{'measure':<36} {'plinth':>10} {'baseline':>10} {'ratio':>7}   target")
    print(f"{'runs/s, one-data-step job':<36} {runs_per_s:>10.0f} {plain_per_s:>10.0f} {runs_per_s / plain_per_s:>7.2f}"
          f"   >= 400/s (baseline: plain Celery task, same insert)")
    p50, p99 = ms(statistics.median(latencies)), ms(pct(latencies, 99))
    print(f"{'commit -> step start p50 (ms)':<36} {p50:>10.1f} {'':>10} {p50 / 25:>7.2f}   < 25 ms (ratio to target)")
    print(f"{'commit -> step start p99 (ms)':<36} {p99:>10.1f}")
    services.tenant_delete(tenant=tenant, actor=services.Actor(None))


if __name__ == "__main__":
    sys.exit(main())
