"""A recording HTTP receiver: the external API an `http` step calls in tests.

By default every request gets `200` and a JSON body naming it:
`{"ok": true, "id": "<uuid>", "method", "path", "count": <requests so far with this
Idempotency-Key>}`. Rules change that, first match first, each for a number of requests
or for good:

    rx = Receiver().start()
    rx.fail(2, status=503)                 # the next 2 requests answer 503, then 200 again
    rx.slow(5.0, times=1)                  # the next request waits 5 s before answering
    rx.on(path="/contacts", method="DELETE", status=204)
    rx.count("run-id:0")                   # requests that carried this Idempotency-Key
    rx.stop()

In another process: `python -m tests.fakes.receiver --port 8765`, then
`ReceiverClient("http://127.0.0.1:8765")` has the same `fail`, `slow`, `on`, `count`,
`requests` and `reset`.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

from tests.fakes.base import Answer, FakeClient, FakeServer, Recorded, serve_main


@dataclass
class Rule:
    method: str | None = None          # None: any
    path: str | None = None            # None: any; else the exact path
    status: int = 200
    body: Any = None                   # None: the default JSON body
    headers: dict[str, str] | None = None
    delay: float = 0.0
    times: int | None = None           # None: for good

    def matches(self, request: Recorded) -> bool:
        return (self.method is None or self.method.upper() == request.method) and (
            self.path is None or self.path == request.path
        )


class Receiver(FakeServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self._rules: list[Rule] = []
        self._rules_lock = threading.Lock()

    def on(self, *, method: str | None = None, path: str | None = None, status: int = 200, body: Any = None,
           headers: dict[str, str] | None = None, delay: float = 0.0, times: int | None = None) -> "Receiver":
        with self._rules_lock:
            self._rules.append(Rule(method, path, int(status), body, headers, float(delay),
                                    None if times is None else int(times)))
        return self

    def fail(self, times: int = 1, *, status: int = 503, body: Any = None, **match) -> "Receiver":
        return self.on(status=status, body=body if body is not None else {"error": "failing on purpose"},
                       times=times, **match)

    def slow(self, seconds: float, *, times: int | None = 1, **match) -> "Receiver":
        return self.on(delay=seconds, times=times, **match)

    def reset(self) -> None:
        super().reset()
        with self._rules_lock:
            self._rules.clear()

    def _rule_for(self, request: Recorded) -> Rule | None:
        with self._rules_lock:
            for rule in self._rules:
                if rule.matches(request):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return rule
        return None

    def answer(self, request: Recorded) -> Answer:
        rule = self._rule_for(request)
        body = rule.body if rule and rule.body is not None else {
            "ok": True,
            "id": str(uuid.uuid4()),
            "method": request.method,
            "path": request.path,
            "count": self.count(request.idempotency_key) if request.idempotency_key else None,
        }
        if rule is None:
            return Answer(200, body)
        return Answer(rule.status, body, dict(rule.headers or {}), rule.delay)

    def control(self, action: str, payload: Any) -> Any:
        if action == "on":
            self.on(**(payload or {}))
            return {"ok": True}
        return super().control(action, payload)


class ReceiverClient(FakeClient):
    """A receiver started with `python -m tests.fakes.receiver`, driven from here."""

    def on(self, **rule) -> None:
        self.control("on", rule)

    def fail(self, times: int = 1, *, status: int = 503, body: Any = None, **match) -> None:
        self.on(status=status, body=body if body is not None else {"error": "failing on purpose"}, times=times, **match)

    def slow(self, seconds: float, *, times: int | None = 1, **match) -> None:
        self.on(delay=seconds, times=times, **match)


if __name__ == "__main__":
    serve_main(Receiver)
