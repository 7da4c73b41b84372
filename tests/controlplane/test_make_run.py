"""`make run` for real: the launcher as a person starts it, on a machine with nothing set up.

With no DATABASE_URL or REDIS_URL, `python -m controlplane.launcher run` must bring up an
embedded PostgreSQL and Redis, migrate, make the demo account and tenant, start gunicorn, a
Celery worker and Celery beat, and print a banner whose credentials and curl line work as
printed. Ctrl-C (or SIGTERM) must stop every process it started, the embedded servers
included, leaving nothing behind. A second start on the same data directory must reuse
everything: the same demo password, admin token, keys and tenant.

Nothing else covers this: the other tests run inside pytest against servers they are given.
This one is slow (about a minute) because it starts the whole platform twice.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_WITHIN = 120  # seconds; the first start runs initdb and every migration
HEARTBEAT_WITHIN = 30  # beat sends one every 10 s
STOP_WITHIN = 30

pytestmark = pytest.mark.worker


# the launcher under test ------------------------------------------------------------------


@dataclass
class Banner:
    """What `make run` prints once it is ready."""

    console: str
    email: str
    password: str
    token: str
    data_api_url: str
    anon_key: str
    service_key: str
    curl: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sigint_as_in_a_terminal() -> None:
    # A job started in the background by a non-interactive shell inherits SIGINT ignored,
    # and Python then never raises KeyboardInterrupt; a terminal's `make run` hears Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Launcher:
    """One `make run`: the launcher process, its output, and every process it started."""

    def __init__(self, data_dir: Path, log: Path):
        self.data_dir, self.log = data_dir, log
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_QUEUE", "PLINTH_ENV")}
        env.update(PLINTH_DATA_DIR=str(data_dir), PORT=str(self.port), EMBEDDED_REDIS_PORT=str(_free_port()))
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "controlplane.launcher", "run"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as a terminal's foreground job
                preexec_fn=_sigint_as_in_a_terminal if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else None,
            )
        self.seen: dict[int, psutil.Process] = {}
        self.described: dict[int, str] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_banner(self) -> Banner:
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            text = self.output()
            if "Plinth is ready" in text and "Ctrl-C stops everything." in text:
                return self._parse_banner(text)
            if self.process.poll() is not None:
                pytest.fail(f"the launcher exited ({self.process.returncode}) before it was ready:\n{text[-4000:]}")
            time.sleep(0.25)
        pytest.fail(f"no banner within {READY_WITHIN}s:\n{self.output()[-4000:]}")

    @staticmethod
    def _parse_banner(text: str) -> Banner:
        def field(pattern: str) -> re.Match:
            found = re.search(pattern, text, re.MULTILINE)
            assert found, f"the banner has no line matching {pattern!r}:\n{text[-3000:]}"
            return found

        login = field(r"^\s+demo login\s+(\S+) / (\S+)$")
        return Banner(
            console=field(r"^\s+console\s+(\S+)$")[1],
            email=login[1],
            password=login[2],
            token=field(r"^\s+admin token\s+(\S+)$")[1],
            data_api_url=field(r"^\s+data API URL\s+(\S+)$")[1],
            anon_key=field(r"^\s+anon key\s+(\S+)$")[1],
            service_key=field(r"^\s+service key\s+(\S+)$")[1],
            curl=field(r"^\s+(curl .+)$")[1],
        )

    def record_processes(self) -> None:
        """Remember the launcher's descendants and the embedded PostgreSQL (which pg_ctl
        detaches, so it is found through its postmaster.pid instead)."""
        found = psutil.Process(self.process.pid).children(recursive=True)
        pidfile = self.data_dir / "postgres" / "postmaster.pid"
        if pidfile.exists():
            postmaster = psutil.Process(int(pidfile.read_text().split()[0]))
            found += [postmaster, *postmaster.children(recursive=True)]
        for proc in found:
            if proc.pid not in self.seen:
                self.seen[proc.pid], self.described[proc.pid] = proc, _describe(proc)

    def seen_commands(self) -> str:
        return "\n".join(self.described.values())

    def stop(self, how: str) -> int:
        """Stop it as a person would: `ctrl-c` signals the whole foreground process group
        (what a terminal does), `sigterm` only the launcher (what `kill` or a supervisor
        does). Answers the exit status."""
        if how == "ctrl-c":
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the launcher did not exit within {STOP_WITHIN}s of {how}:\n{self.output()[-4000:]}")

    def still_running(self) -> list[str]:
        """Those of the recorded processes still alive (a few seconds' grace for exits)."""
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=5)
        return [self.described[p.pid] for p in alive if _alive(p)]

    def kill_everything(self) -> None:
        """The safety net: whatever happened, leave no process behind."""
        if self.process.poll() is None:
            try:
                self.record_processes()
            except psutil.Error:
                pass
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
        for proc in self.seen.values():
            try:
                proc.kill()
            except psutil.Error:
                pass


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline()).strip()[:160]}"
    except psutil.Error:
        return f"{proc.pid} (gone)"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def run_the_curl_line(banner: Banner) -> dict:
    """The printed curl line, run as printed (with httpx where there is no curl)."""
    args = shlex.split(banner.curl)
    assert args[:3] == ["curl", "-s", "-H"] and len(args) == 5, banner.curl
    header, url = dict([args[3].split(": ", 1)]), args[4]
    if shutil.which("curl"):
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        body = done.stdout
    else:
        body = httpx.get(url, headers=header, timeout=30).text
    # curl -s prints any answer, so ask again for the status.
    assert httpx.get(url, headers=header, timeout=30).status_code == 200
    return json.loads(body)


def wait_for_worker_heartbeat(base_url: str) -> dict:
    deadline = time.monotonic() + HEARTBEAT_WITHIN
    while True:
        health = httpx.get(f"{base_url}/healthz", timeout=10).json()
        if health["worker_heartbeat_age_s"] is not None or time.monotonic() > deadline:
            return health
        time.sleep(1)


# the tests ------------------------------------------------------------------------------------


@pytest.fixture
def data_dir():
    # Not under pytest's tmp_path: the embedded PostgreSQL runs as its own user (when the
    # tests run as root) and pgserver opens every parent directory to it.
    path = Path(tempfile.mkdtemp(prefix="plinth-make-run-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def launch(data_dir):
    started: list[Launcher] = []

    def launch(log_name: str) -> Launcher:
        launcher = Launcher(data_dir, data_dir.parent / f"{data_dir.name}-{log_name}.log")
        started.append(launcher)
        return launcher

    yield launch
    for launcher in started:
        launcher.kill_everything()
        launcher.log.unlink(missing_ok=True)


def test_make_run_starts_everything_embedded_and_ctrl_c_stops_it_all_and_a_restart_reuses_the_data(launch, data_dir):
    # First start: a fresh data directory, nothing configured.
    first = launch("first")
    banner = first.wait_for_banner()
    first.record_processes()

    assert banner.console == f"{first.base_url}/"
    assert banner.email == "demo@plinth.dev"
    assert banner.token.startswith("plt_")
    assert banner.data_api_url == f"{first.base_url}/t/demo"
    assert banner.anon_key != banner.service_key

    tenant = run_the_curl_line(banner)
    assert tenant["slug"] == "demo"
    assert tenant["role"] == "owner"
    assert tenant["data_api_url"] == banner.data_api_url

    health = wait_for_worker_heartbeat(first.base_url)
    assert (health["database"], health["redis"]) == ("ok", "ok")
    # beat sent a heartbeat task, a worker ran it and wrote Redis: both are alive.
    assert health["worker_heartbeat_age_s"] is not None, f"no heartbeat within {HEARTBEAT_WITHIN}s: {health}"

    first.record_processes()
    commands = first.seen_commands()
    for expected in ("gunicorn", "celery -A controlplane worker", "celery -A controlplane beat", "redis-server", "postgres -D"):
        assert expected in commands, f"no {expected!r} process among those started:\n{commands}"

    assert first.stop("ctrl-c") == 0
    assert first.still_running() == []
    assert not _listening(first.port)
    assert not (data_dir / "postgres" / "postmaster.pid").exists()

    # Second start on the same data: the same account, token, keys and tenant.
    second = launch("second")
    again = second.wait_for_banner()
    second.record_processes()

    assert "created database" not in second.output()
    assert (again.email, again.password, again.token) == (banner.email, banner.password, banner.token)
    assert (again.anon_key, again.service_key) == (banner.anon_key, banner.service_key)
    same_tenant = run_the_curl_line(again)
    assert same_tenant["slug"] == "demo"
    assert same_tenant["created_at"] == tenant["created_at"]

    assert second.stop("sigterm") == 0
    assert second.still_running() == []
    assert not _listening(second.port)
