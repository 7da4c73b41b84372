"""A real HTTP server on 127.0.0.1 that records every request: the base of the fakes that
job and workflow tests call instead of the outside world.

In a test:

    with Receiver() as rx:            # or rx = Receiver().start(); ...; rx.stop()
        call(rx.url + "/hooks")
        assert rx.requests[0].json == {...}

From another process (an end-to-end test driving a worker): `python -m
tests.fakes.receiver --port 8765` (or `tests.fakes.openai_server`) prints its URL on the
first line and serves until killed; `FakeClient(url)` reads what it recorded and changes
how it answers, through the control paths under `/_fake/`, which are never recorded.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

CONTROL = "/_fake/"


@dataclass
class Recorded:
    """One request as the server received it; header names are lowercased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    def as_dict(self) -> dict:
        return {"method": self.method, "path": self.path, "query": self.query, "headers": self.headers,
                "body": self.text, "at": self.at}

    @classmethod
    def from_dict(cls, d: dict) -> "Recorded":
        return cls(d["method"], d["path"], d["query"], d["headers"], d["body"].encode(), d["at"])


@dataclass
class Answer:
    status: int = 200
    body: Any = None                  # bytes or str as is; anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0                # seconds before the answer starts

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        if self.body is None:
            return b"", headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode(), headers


class FakeServer:
    """Subclasses decide the answers (`answer`) and may add control paths (`control`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._server = _Server((host, port), _handler(self))
        self._server.daemon_threads = True  # a slow answer never holds up stop()
        self._thread: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # what was received ----------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def count(self, idempotency_key: str) -> int:
        """How many requests carried this Idempotency-Key."""
        return sum(1 for r in self.requests if r.idempotency_key == idempotency_key)

    def counts(self) -> dict[str | None, int]:
        out: dict[str | None, int] = {}
        for r in self.requests:
            out[r.idempotency_key] = out.get(r.idempotency_key, 0) + 1
        return out

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Recorded]:
        """Block until at least `n` requests arrived (for work done by another process)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(self).__name__} got {len(self.requests)} requests, not {n}, in {timeout}s")
            time.sleep(0.02)
        return self.requests

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()

    # for subclasses -------------------------------------------------------------------

    def answer(self, request: Recorded) -> Answer:
        raise NotImplementedError

    def control(self, action: str, payload: Any) -> Any:
        """A control request `POST /_fake/<action>`; answers JSON, or None for 404."""
        if action == "reset":
            self.reset()
            return {"ok": True}
        return None

    def _record(self, request: Recorded) -> Answer:
        with self._lock:
            self._requests.append(request)
        return self.answer(request)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a caller that hung up is no news
            super().handle_error(request, client_address)


def _handler(fake: FakeServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                # the sender went away mid-body (a worker killed while sending): no request
                # arrived, as for any server, so nothing is recorded or answered
                raise ConnectionResetError("the request's body ended early")
            return body

        def _send(self, answer: Answer, head_only: bool = False) -> None:
            body, headers = answer.encoded()
            if answer.delay:
                time.sleep(answer.delay)
            try:
                self.send_response(answer.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head_only:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller gave up (a timeout test): nothing to answer

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            try:
                body = self._read_body()
            except (ConnectionResetError, ValueError):
                self.close_connection = True
                return
            if parts.path.startswith(CONTROL):
                action = parts.path[len(CONTROL):]
                if action == "requests" and self.command == "GET":
                    result: Any = [r.as_dict() for r in fake.requests]
                else:
                    result = fake.control(action, json.loads(body or b"null"))
                self._send(Answer(404, {"error": "no such control"}) if result is None else Answer(200, result))
                return
            recorded = Recorded(
                self.command, parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}, body
            )
            self._send(fake._record(recorded), head_only=self.command == "HEAD")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    return Handler


class FakeClient:
    """A fake started in another process, seen through its control paths."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _root(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def control(self, action: str, payload: Any = None) -> Any:
        response = httpx.post(f"{self._root()}{CONTROL}{action}", json=payload, timeout=10)
        response.raise_for_status()
        return response.json()

    @property
    def requests(self) -> list[Recorded]:
        response = httpx.get(f"{self._root()}{CONTROL}requests", timeout=10)
        response.raise_for_status()
        return [Recorded.from_dict(d) for d in response.json()]

    def count(self, idempotency_key: str) -> int:
        return sum(1 for r in self.requests if r.idempotency_key == idempotency_key)

    def reset(self) -> None:
        self.control("reset")


def serve_main(make, argv: list[str] | None = None, **options) -> None:
    """`python -m tests.fakes.<module> --port N`: print the URL, serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    for name, default in options.items():
        parser.add_argument(f"--{name.replace('_', '-')}", default=default)
    args = parser.parse_args(argv)
    fake = make(port=args.port, **{name: getattr(args, name) for name in options})
    signal.signal(signal.SIGTERM, lambda *_: (fake.stop(), sys.exit(0)))
    fake.start()
    print(fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
