"""Where a data API request's time goes, in-process: the WSGI application called directly
(no server, no sockets of HTTP), on the same tenant, table and rows as `data_api.py`.

    python bench/profile_api.py [--requests 2000] [--profile get] [--top 30]

Prints wall and CPU time (this thread's) per request for each endpoint of `data_api.py` (the data API and the
baselines), one thread, after a warm-up; `--profile OP` adds cProfile's top functions
for the data API's OP (list, get or insert). A developer's tool for finding what to make
cheaper: the figures include Postgres's time (the round trips), not the server's.
"""

from __future__ import annotations

import argparse
import os
import cProfile
import io
import pstats
import statistics
import sys
import time
from urllib.parse import urlsplit

from _common import bench_database


def environ_for(e, body: str | None) -> dict:
    parts = urlsplit(e.path)
    data = (body or "").encode()
    env = {
        "REQUEST_METHOD": e.method, "PATH_INFO": parts.path, "QUERY_STRING": parts.query, "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "CONTENT_LENGTH": str(len(data)),
    }
    for key, value in e.headers.items():
        name = key.upper().replace("-", "_")
        env[name if name in ("CONTENT_TYPE",) else f"HTTP_{name}"] = value
    return env


def call(app, e, n: int) -> tuple[str, bytes]:
    body = e.bodies[n % len(e.bodies)] if e.bodies else None
    status = []
    chunks = app(environ_for(e, body), lambda s, h, exc=None: status.append(s))
    try:
        out = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return status[0], out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", default="", help="list, get or insert: cProfile the data API's")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()


    os.environ["PLINTH_BENCH_VIEWS"] = "1"
    os.environ["DEBUG"] = "0"
    with bench_database(f"plinth_bench_profile_{os.getpid()}"):   # runs side by side
        import data_api

        data = data_api.set_up()
        from bench.baselines.wsgi import application     # the platform's, and the floor (0)

        eps = data_api.endpoints(data)
        for e in eps:
            for n in range(200):
                status, out = call(application, e, n)
                assert status[:1] == "2", (e.label, e.op, status, out[:300])
        print(f"{'op':<7} {'server':<40} {'wall µs':>8} {'cpu µs':>7}")
        for e in eps:
            times, cpu = [], []
            for n in range(args.requests):
                started, started_cpu = time.perf_counter(), time.thread_time()
                call(application, e, n)
                times.append(time.perf_counter() - started)
                cpu.append(time.thread_time() - started_cpu)
            print(f"{e.op:<7} {e.label:<40} {statistics.median(times) * 1e6:>8.0f} {statistics.mean(cpu) * 1e6:>7.0f}")
        if args.profile:
            e = next(e for e in eps if e.op == args.profile and e.server == "api")
            # this thread's CPU time, not the wall clock: a round trip's wait is Postgres's time,
            # and on loopback the wall clock of a send counts Postgres running on this core
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            for n in range(args.requests):
                call(application, e, n)
            profiler.disable()
            for key in ("tottime", "cumulative"):
                pstats.Stats(profiler).sort_stats(key).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
