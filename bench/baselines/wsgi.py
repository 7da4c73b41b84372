"""The WSGI application `bench/data_api.py` runs under gunicorn: the platform's own
(`controlplane.wsgi`), plus the floor (0) at `/_bench/floor`, which never exists on a real
platform (`make run` serves `controlplane.wsgi`).

(0) answers from the WSGI callable itself, before Django: a GET gets a constant JSON
string of `?bytes=` bytes (the size of the data API's answer), a POST reads its body and
gets an empty 201. What it costs per request is what gunicorn, the kernel's loopback and
the load generator cost, on this machine, in this run: no server on this gunicorn can
answer faster, so its req/s is the ceiling every other row is under.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from controlplane.wsgi import application as platform

FLOOR = "/_bench/floor"
_bodies: dict[int, bytes] = {}


def _body(size: int) -> bytes:
    found = _bodies.get(size)
    if found is None:
        found = _bodies.setdefault(size, b'"' + b"x" * max(size - 2, 0) + b'"')
    return found


def application(environ, start_response):
    if environ.get("PATH_INFO") != FLOOR:
        return platform(environ, start_response)
    if environ["REQUEST_METHOD"] == "POST":
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("201 Created", [("Content-Length", "0")])
        return [b""]
    size = int(parse_qs(environ.get("QUERY_STRING", "")).get("bytes", ["2"])[0])
    body = _body(min(max(size, 2), 1_000_000))
    start_response("200 OK", [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
