"""The data API under load: list 20 rows (a `read` rule, an authenticated user), get one row
by id, insert one row (a check and an invariant), through the real server on loopback.

    python bench/data_api.py [--duration 6] [--rounds 3] [--warmup 3] [--connections 16]

Runs against its own database (`plinth_bench_api`, created and dropped) on the server of
DATABASE_URL. Starts gunicorn as `make run` does (gthread, --workers 2 --threads 4: the
platform's default) with the baseline views of bench/baselines/ switched on
(PLINTH_BENCH_VIEWS=1), and drives every endpoint with `wrk` (installed from Debian when
missing and running as root; otherwise a Python load generator, said in the output), the
same connections, threads and durations for each. Endpoints run in turn, round after
round, so that drift on this shared machine spreads over all of them; each figure is the
median over the rounds. Three rounds, not two: each wrk run opens its connections anew,
and which gunicorn worker accepts them is a race (with keep-alive they stay there), so a
run now and then lands every connection on one worker and measures half the server; a
median of three is not moved by one such draw. After each insert run the rows it added
(and their audit rows) are deleted and the table vacuumed: every server and round writes
to the same table, 64 projects of about 16 todos (left to pile up, they made the
invariant's count, over every todo of the project, dearer for whichever server ran later:
seen as Postgres CPU per insert going from 0.8 ms to 1.5 ms over a long run).

Beside the data API, in the same run, on the same table and rows:

(1) a plain Django view: one transaction under the tenant's role (`tenant_transaction`:
    search path, claims, role) around a hand-written WHERE whose JSON Postgres builds;
    and the same view without the role switch (the database owner, schema-qualified
    tables), the ratio of the two being what isolation costs;
(2) Django REST Framework's ListAPIView / RetrieveAPIView with a ModelSerializer;
(0) the floor: gunicorn answering a constant from its WSGI callable, before Django (as
    many bytes as the data API answers; a POST reads its body and answers 201), which is
    what gunicorn, loopback and wrk cost per request here: the ceiling of every row. The
    report ends with each operation's ceiling and the share of it a target needs.

The baselines do not authenticate (the owner is a query parameter); the data API does
(tenant, apikey and bearer token on every request). For inserts, baseline (1) writes by
hand what the data API keeps: the project locked and owned, the check, the invariant, the
audit row.

Each row: requests/s, latency p50/p99 (wrk's), CPU per request in the gunicorn workers
(`py ms`) and in the bench database's Postgres backends (`pg ms`, read from /proc when
Postgres runs here; CPU per request drifts much less than req/s on a shared machine), and
req/s over baseline (1), over (1) without the role switch, and over (2); then the same
ratios to (1) and (2) by CPU per request (gunicorn + Postgres), a second view that the
host's drift and the accept race move much less. The server runs with DEBUG off and
LOG_LEVEL=WARNING, as in production.

Targets (the issue): list and get at 0.85x baseline (1) or better and 3x baseline (2) or
better; insert at 1,000 requests/s or better.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from _common import ROOT, bench_database, pct

DEFINITION = """\
version: 1
name: bench
auth:
  roles: [member]
  default_role: member
  signup: open
entities:
  Project:
    fields:
      owner: {type: user, required: true, default: auth.id}
      name: {type: string, required: true, max_length: 200}
    access:
      read: "record.owner == auth.id"
      create: "record.owner == auth.id"
  Todo:
    fields:
      owner: {type: user, required: true, default: auth.id}
      project: {type: ref, to: Project, required: true, on_delete: cascade, related_name: todos}
      title: {type: string, required: true, min_length: 1, max_length: 200}
      done: {type: boolean, default: false}
      due: {type: date}
    indexes: [[owner, created_at]]
    checks:
      - name: title_not_shouting
        rule: "record.title != upper(record.title)"
        message: "Titles may not be written in capitals only"
    access:
      read: "record.owner == auth.id"
      create: "record.owner == auth.id && record.project.owner == auth.id"
      update: "record.owner == auth.id"
      delete: "record.owner == auth.id"
invariants:
  project_cap:
    for: Project
    rule: "size(record.todos) <= 100000"
    message: "A project holds at most 100,000 todos"
"""

USERS = 10            # the measured one and nine others, whose rows the read rule hides
ROWS_PER_USER = 1000
PROJECTS = 64         # the measured user's; inserts rotate over them (the invariant's anchors)
OBJECT = "application/vnd.pgrst.object+json"
FLOOR = "/_bench/floor"      # bench/baselines/wsgi.py
OPS = ("list", "get", "insert")


@dataclass
class Endpoint:
    op: str                 # list | get | insert
    server: str             # api | b1 | b1_noswitch | b2 | b0 (the floor)
    label: str
    path: str
    headers: dict = field(default_factory=dict)
    method: str = "GET"
    bodies: list[str] = field(default_factory=list)   # POST: rotated over
    runs: list[dict] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(run[key] for run in self.runs)


# set-up ---------------------------------------------------------------------------------


def set_up() -> dict:
    """A tenant with the definition, end users, projects and todos, and a token."""
    from psycopg import sql

    from runtime.api.context import issue_access_token, resolve_tenant
    from runtime.db import tenant_transaction
    from tenants import services
    from tenants.definitions import definition_push
    from tenants.models import User
    from tenants.provisioning import schema_name

    owner = User.objects.create_user("bench@example.com", "bench-password-123")
    tenant, keys = services.tenant_create(owner=owner, name="Bench", slug="bench")
    result = definition_push(tenant=tenant, source=DEFINITION, content_type="application/yaml",
                             actor=services.Actor(owner))
    assert result.status == "applied", result.as_dict()

    with tenant_transaction(tenant.id) as conn:
        users = [conn.execute("INSERT INTO _users (email, role) VALUES (%s, 'member') RETURNING id::text",
                              [f"user{i}@example.com"]).fetchone()[0] for i in range(USERS)]
        for n, user in enumerate(users):
            projects = PROJECTS if n == 0 else 4
            ids = [r[0] for r in conn.execute(
                "INSERT INTO \"Project\" (owner, name) SELECT %s, 'Project ' || g FROM generate_series(1, %s) g"
                " RETURNING id::text", [user, projects]).fetchall()]
            # distinct created_at: the list's order (newest first) is the same for every server
            conn.execute(
                "INSERT INTO \"Todo\" (owner, project, title, done, due, created_at, updated_at)"
                " SELECT %(u)s, (%(p)s::uuid[])[1 + g %% %(n)s], 'Todo number ' || g, g %% 3 = 0,"
                "        CASE WHEN g %% 2 = 0 THEN date '2030-01-01' + g END,"
                "        now() - make_interval(secs => g + %(k)s * 0.001), now() - make_interval(secs => g)"
                " FROM generate_series(1, %(rows)s) g",
                {"u": user, "p": ids, "n": len(ids), "rows": ROWS_PER_USER, "k": n})
            if n == 0:
                measured_projects = ids
        one = conn.execute("SELECT id::text FROM \"Todo\" WHERE owner = %s ORDER BY created_at DESC OFFSET 500 LIMIT 1",
                           [users[0]]).fetchone()[0]
    from django.db import connection

    with connection.cursor() as cur:
        for table in ("Project", "Todo", "_users"):
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema_name(tenant.id), table)))
    token, _ = issue_access_token(resolve_tenant("bench"), user_id=users[0], email="user0@example.com",
                                  role="member", lifetime=6 * 3600)
    return {"tenant_id": tenant.id, "slug": "bench", "anon": keys["anon"], "token": token, "user": users[0],
            "projects": measured_projects, "todo": one, "schema": schema_name(tenant.id)}


INSERTED_TITLE = "buy milk"


def reset_inserts(data: dict) -> None:
    """Take out what an insert run added (its todos and their audit rows) and vacuum, so
    that every server and round writes to the same table: rows piling up run after run
    would make the invariant's count (every todo of the project) dearer for whichever
    server comes later."""
    from django.db import connection
    from psycopg import sql

    todo, audit = sql.Identifier(data["schema"], "Todo"), sql.Identifier(data["schema"], "_audit")
    with connection.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {} WHERE title = %s").format(todo), [INSERTED_TITLE])
        cur.execute(sql.SQL("DELETE FROM {} WHERE entity = 'Todo'").format(audit))
        cur.execute(sql.SQL("VACUUM ANALYZE {}, {}").format(todo, audit))


def endpoints(data: dict) -> list[Endpoint]:
    t, user, todo = data["tenant_id"], data["user"], data["todo"]
    api = f"/t/{data['slug']}/rest/v1/Todo"
    auth = {"apikey": data["anon"], "Authorization": f"Bearer {data['token']}"}
    json_body = {"Content-Type": "application/json"}
    bodies = [json.dumps({"project": p, "title": INSERTED_TITLE}) for p in data["projects"]]
    made = [
        Endpoint("list", "api", "data API", f"{api}?select=*&order=created_at.desc&limit=20", auth),
        Endpoint("list", "b1", "(1) plain view", f"/_bench/plain/{t}/todos?owner={user}"),
        Endpoint("list", "b1_noswitch", "(1) without role switch", f"/_bench/noswitch/{t}/todos?owner={user}"),
        Endpoint("list", "b2", "(2) DRF ListAPIView", f"/_bench/drf/{t}/todos?owner={user}"),
        Endpoint("get", "api", "data API", f"{api}?select=*&id=eq.{todo}", {**auth, "Accept": OBJECT}),
        Endpoint("get", "b1", "(1) plain view", f"/_bench/plain/{t}/todos/{todo}?owner={user}"),
        Endpoint("get", "b1_noswitch", "(1) without role switch", f"/_bench/noswitch/{t}/todos/{todo}?owner={user}"),
        Endpoint("get", "b2", "(2) DRF RetrieveAPIView", f"/_bench/drf/{t}/todos/{todo}?owner={user}"),
        Endpoint("insert", "api", "data API", api, {**auth, **json_body, "Prefer": "return=minimal"}, "POST", bodies),
        Endpoint("insert", "b1", "(1) plain view, same guarantees by hand", f"/_bench/plain/{t}/insert?owner={user}",
                 json_body, "POST", bodies),
        Endpoint("insert", "b1_noswitch", "(1) without role switch", f"/_bench/noswitch/{t}/insert?owner={user}",
                 json_body, "POST", bodies),
        # (0): its GET answers as many bytes as the data API does (set by check_answers)
        Endpoint("list", "b0", "(0) floor: gunicorn, a constant", FLOOR),
        Endpoint("get", "b0", "(0) floor: gunicorn, a constant", FLOOR),
        Endpoint("insert", "b0", "(0) floor: gunicorn, a constant", FLOOR, json_body, "POST", bodies),
    ]
    return sorted(made, key=lambda e: OPS.index(e.op))     # by operation, the floor last


# the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 if it is gone or not ours to read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


class CpuMeter:
    """CPU spent by the gunicorn workers and by the bench database's Postgres backends
    (when Postgres runs on this machine): per request, it drifts much less than req/s
    on a shared machine, and it says on which side the time goes."""

    def __init__(self, server: "Server"):
        from django.db import connection

        self.server = server
        self.connection = connection
        self.local = True

    def _pg_pids(self) -> list[int]:
        with self.connection.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            return [pid for (pid,) in cur.fetchall()]

    def snapshot(self) -> dict[str, dict[int, float]]:
        return {"py": {pid: cpu_seconds(pid) for pid in children(self.server.process.pid)},
                "pg": {pid: cpu_seconds(pid) for pid in self._pg_pids()}}

    def spent(self, before: dict, after: dict) -> dict[str, float]:
        out = {}
        for side in ("py", "pg"):
            out[side] = sum(v - before[side].get(pid, 0.0) for pid, v in after[side].items())
        if not any(after["pg"].values()):
            self.local = False     # Postgres elsewhere (or unreadable): no figure for it
        return out


class Server:
    """gunicorn as `make run` starts it, with the baseline views and the floor on."""

    def __init__(self, workers: int, threads: int, workdir: Path, worker_class: str = "gthread"):
        self.port = free_port()
        self.log = workdir / "gunicorn.log"
        # DEBUG off as in production (DEBUG=1 wraps every ORM query in the debug cursor)
        env = {**os.environ, "LOG_LEVEL": "WARNING", "PLINTH_BENCH_VIEWS": "1", "DEBUG": "0",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        # the platform's application, plus the floor (0): bench/baselines/wsgi.py
        command = [sys.executable, "-m", "gunicorn", "bench.baselines.wsgi", "--bind", f"127.0.0.1:{self.port}",
                   "--workers", str(workers), "--threads", str(threads), "--worker-class", worker_class,
                   "--graceful-timeout", "10", "--control-socket", str(workdir / "gunicorn.ctl")]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited at start:\n{self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return      # 503 (no Redis, say) is an answer: the server is up
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("gunicorn did not answer within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def request(self, e: Endpoint, body: str | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(e.method, e.path, body=body, headers=e.headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def check_answers(server: Server, eps: list[Endpoint], data: dict) -> None:
    """Every endpoint answers, and the same rows: a fast error would measure nothing. The
    floor's GETs are then given the size of the data API's answer."""
    answers, sizes = {}, {}
    for e in sorted(eps, key=lambda e: e.server == "b0"):      # the floor last
        if e.method != "GET":
            status, text = server.request(e, e.bodies[0])
            assert status == 201, (e.label, e.op, status, text[:500])
            continue
        if e.server == "b0":
            e.path = f"{FLOOR}?bytes={sizes[e.op]}"
            status, text = server.request(e)
            assert status == 200 and len(text) == sizes[e.op], (e.label, e.op, status, len(text))
            continue
        status, text = server.request(e)
        assert status == 200, (e.label, e.op, status, text[:500])
        answers[e.op, e.server] = json.loads(text)
        if e.server == "api":
            sizes[e.op] = len(text)
    for op in sorted({op for op, _ in answers}):
        api = answers[op, "api"]
        assert answers[op, "b1"] == api, f"{op}: baseline (1) answers other rows than the data API"
        assert answers[op, "b1_noswitch"] == api, f"{op}: baseline (1) without role switch answers other rows"
        ids = lambda v: [r["id"] for r in v] if isinstance(v, list) else v["id"]  # noqa: E731
        assert ids(answers[op, "b2"]) == ids(api), f"{op}: DRF answers other rows than the data API"
    if ("list", "api") in answers:
        assert len(answers["list", "api"]) == 20 and all(r["owner"] == data["user"] for r in answers["list", "api"])
    if ("get", "api") in answers:
        assert answers["get", "api"]["id"] == data["todo"]


# load -----------------------------------------------------------------------------------

LUA = r"""
wrk.method = "{method}"
{headers}
local bodies = {{ {bodies} }}
local n = 0
if #bodies > 0 then
  request = function()
    n = n + 1
    return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get") or os.environ.get("PLINTH_SKIP_TOOL_INSTALL"):
        return found
    print("installing wrk from Debian (once) ...", file=sys.stderr, flush=True)
    quiet = {"check": False, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
             "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    if subprocess.run(install, **quiet).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], **quiet)
        subprocess.run(install, **quiet)
    return shutil.which("wrk")


def run_wrk(wrk: str, server: Server, e: Endpoint, seconds: float, args, workdir: Path) -> dict:
    script = workdir / f"{e.op}-{e.server}.lua"
    headers = "\n".join(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in e.headers.items())
    script.write_text(LUA.format(method=e.method, headers=headers, bodies=", ".join(lua_string(b) for b in e.bodies)))
    command = [wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", str(script), f"http://127.0.0.1:{server.port}{e.path}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {done.stderr or done.stdout}")
    out = done.stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    requests, duration, p50, p99, *errors = (int(v) for v in line.split()[1:])
    return {"rps": requests / (duration / 1e6), "p50": p50 / 1000, "p99": p99 / 1000, "errors": sum(errors),
            "requests": requests}


def run_python(server: Server, e: Endpoint, seconds: float, args, _workdir: Path) -> dict:
    """The fallback: one thread per connection, keep-alive, http.client. It shares the CPU
    with the server, and Python's, so its figures are lower than wrk's."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        mine, bad, n = [], 0, k
        while time.perf_counter() < deadline:
            n += 1
            body = e.bodies[n % len(e.bodies)] if e.bodies else None
            started = time.perf_counter()
            try:
                conn.request(e.method, e.path, body=body, headers=e.headers)
                response = conn.getresponse()
                response.read()
                bad += response.status >= 400
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                continue
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"rps": len(latencies) / elapsed, "p50": pct(latencies, 50) * 1000, "p99": pct(latencies, 99) * 1000,
            "errors": errors[0], "requests": len(latencies)}


# the run --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=6, help="seconds measured per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load per endpoint before round 1")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    parser.add_argument("--server-threads", type=int, default=int(os.environ.get("WEB_THREADS", "4")))
    parser.add_argument("--worker-class", default="gthread", help="gunicorn's: gthread (the platform's) or sync")
    parser.add_argument("--only", default="", help="comma-separated ops to run: list,get,insert")
    args = parser.parse_args()

    wrk = ensure_wrk()
    with bench_database("plinth_bench_api"), tempfile.TemporaryDirectory(prefix="plinth-bench-") as tmp:
        print("setting up ...", file=sys.stderr, flush=True)
        data = set_up()
        eps = endpoints(data)
        if args.only:
            eps = [e for e in eps if e.op in args.only.split(",")]
        server = Server(args.workers, args.server_threads, Path(tmp), args.worker_class)
        try:
            check_answers(server, eps, data)
            reset_inserts(data)
            load = (lambda *a: run_wrk(wrk, *a)) if wrk else run_python
            meter = CpuMeter(server)
            loads = [os.getloadavg()[0]]
            for e in eps:
                if args.warmup > 0:
                    load(server, e, args.warmup, args, Path(tmp))
                    if e.op == "insert":
                        reset_inserts(data)
            for r in range(args.rounds):
                for e in eps:
                    before = meter.snapshot()
                    run = load(server, e, args.duration, args, Path(tmp))
                    spent = meter.spent(before, meter.snapshot())
                    if e.op == "insert":
                        reset_inserts(data)
                    run["py_ms"] = spent["py"] / max(run["requests"], 1) * 1000
                    run["pg_ms"] = spent["pg"] / max(run["requests"], 1) * 1000 if meter.local else float("nan")
                    e.runs.append(run)
                    loads.append(os.getloadavg()[0])
                    print(f"  round {r + 1}: {e.op:<6} {e.label:<40} {e.runs[-1]['rps']:>8.0f} req/s",
                          file=sys.stderr, flush=True)
        finally:
            server.stop()
        report(eps, args, wrk, loads)
    return 0


def report(eps: list[Endpoint], args, wrk: str | None, loads: list[float]) -> None:
    by = {(e.op, e.server): e for e in eps}

    def ratio(e: Endpoint, server: str) -> float | None:
        other = by.get((e.op, server))
        return e.median("rps") / other.median("rps") if other and other is not e else None

    def cpu(e: Endpoint) -> float:
        pg = e.median("pg_ms")
        return e.median("py_ms") + (0.0 if pg != pg else pg)      # (no Postgres figure: NaN)

    def cpu_ratio(e: Endpoint, server: str) -> float | None:
        """The other server's CPU per request over this one's: how many of this one's
        requests the CPU of one of the other's pays for (steadier than req/s here)."""
        other = by.get((e.op, server))
        return cpu(other) / cpu(e) if other and other is not e and cpu(e) > 0 else None

    tool = (f"wrk -t{args.threads} -c{args.connections}" if wrk else
            f"Python load generator ({args.connections} threads; wrk not installed, figures are lower)")
    print(f"\ndata_api: {tool}, {args.rounds} round(s) x {args.duration:g} s per endpoint after {args.warmup:g} s "
          f"warm-up; gunicorn {args.worker_class} {args.workers} workers x {args.server_threads} threads; "
          f"{USERS} users x {ROWS_PER_USER} todos, lists of 20 newest; medians over rounds; "
          f"{os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f} during the run")
    print(f"{'op':<7} {'server':<40} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'py ms':>6} {'pg ms':>6} "
          f"{'÷(1)':>6} {'÷(1)-sw':>7} {'÷(2)':>6} {'cpu÷(1)':>7} {'cpu÷(2)':>7}  target")
    failed_requests = False
    for e in eps:
        r1, r1n, r2 = ratio(e, "b1"), ratio(e, "b1_noswitch"), ratio(e, "b2")
        c1, c2 = cpu_ratio(e, "b1"), cpu_ratio(e, "b2")
        fmt = lambda v: f"{v:>6.2f}" if v is not None else f"{'':>6}"  # noqa: E731
        target = ""
        if e.server == "api" and e.op in ("list", "get"):
            ok = (r1 or 0) >= 0.85 and (r2 or 0) >= 3
            target = f">=0.85x(1), >=3x(2)  {'ok' if ok else 'MISSED'}"
        elif e.server == "api" and e.op == "insert":
            target = f">=1000 req/s  {'ok' if e.median('rps') >= 1000 else 'MISSED'}"
        elif e.server == "b1" and r1n is not None:
            target = f"isolation costs {(1 - r1n) * 100:.0f}% of req/s"
        elif e.server == "b0":
            target = "the ceiling: no server on this gunicorn answers faster"
        errors = sum(run["errors"] for run in e.runs)
        if errors:
            failed_requests = True
            target += f"  ({errors} failed requests!)"
        print(f"{e.op:<7} {e.label:<40} {e.median('rps'):>7.0f} {e.median('p50'):>7.2f} {e.median('p99'):>7.2f} "
              f"{e.median('py_ms'):>6.2f} {e.median('pg_ms'):>6.2f} {fmt(r1)} {fmt(r1n):>7} {fmt(r2)} "
              f"{fmt(c1):>7} {fmt(c2):>7}  {target}")
    print("py ms / pg ms: CPU per request in the gunicorn workers / in the database's Postgres backends.")
    print("÷(1): req/s over baseline (1); ÷(1)-sw: over (1) without the role switch; ÷(2): over DRF.")
    print("cpu÷(1), cpu÷(2): the baseline's CPU per request (py + pg) over the data API's: the same ratios "
          "by cost, which a shared machine moves much less than req/s. Targets are judged on req/s.")
    for op in OPS:
        floor, api, drf = by.get((op, "b0")), by.get((op, "api")), by.get((op, "b2"))
        if floor is None or api is None:
            continue
        ceiling = floor.median("rps")
        needed = 1000.0 if op == "insert" else (3 * drf.median("rps") if drf else None)
        print(f"{op}: the floor (0) answered {ceiling:.0f} req/s, the data API {api.median('rps') / ceiling:.0%} of it"
              + (f"; the target ({'1,000 req/s' if op == 'insert' else '3x (2)'}) is {needed:.0f} req/s, "
                 f"{needed / ceiling:.0%} of the floor" if needed else ""))
    print("(0): gunicorn answering a constant of the data API's size from its WSGI callable, before Django "
          "(bench/baselines/wsgi.py): what the server, loopback and wrk cost per request on this machine.")
    if failed_requests:
        print("WARNING: some requests failed (non-2xx or socket errors): those rows measure errors too.")


if __name__ == "__main__":
    sys.exit(main())
