"""A fake OpenAI-compatible API: `POST /v1/chat/completions` answered from a queue of
canned completions, each with its token usage, for tests of `ai` steps.

    ai = FakeOpenAI(api_key="sk-test").start()
    base_url = ai.url                      # http://127.0.0.1:<port>/v1
    ai.reply_json({"priority": "high"}, tokens=30)
    ai.reply_text("not json at all", tokens=12)
    ai.reply_error(429, times=2)
    ...                                    # each request takes the next answer
    ai.requests[0].json["response_format"] == {"type": "json_object"}
    ai.stop()

With the queue empty, a request gets `default` (a text completion "OK", 10 tokens). A
request without `Authorization: Bearer <api_key>` gets 401 when `api_key` is set. In
another process: `python -m tests.fakes.openai_server --port 8766 --api-key sk-test`, and
`FakeOpenAIClient(url)` queues answers the same way.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

from tests.fakes.base import Answer, FakeClient, FakeServer, Recorded, serve_main

PATH = "/v1/chat/completions"


def completion(content: str | None, *, model: str = "fake-model", prompt_tokens: int | None = None,
               completion_tokens: int | None = None, tokens: int | None = 10, n: int = 1) -> dict:
    """A chat completion shaped like OpenAI's; `tokens` is usage.total_tokens (None: no usage)."""
    body: dict[str, Any] = {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }
    if tokens is not None:
        prompt = prompt_tokens if prompt_tokens is not None else tokens // 2
        done = completion_tokens if completion_tokens is not None else tokens - prompt
        body["usage"] = {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": tokens}
    return body


class FakeOpenAI(FakeServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None):
        super().__init__(host, port)
        self.api_key = api_key or None
        self.default: dict = {"content": "OK", "tokens": 10}
        self._queue: deque[dict] = deque()
        self._queue_lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL to configure (`{base_url}/chat/completions` is what gets called)."""
        return f"{super().url}/v1"

    # queueing answers -------------------------------------------------------------------

    def reply(self, content: str | None, *, tokens: int | None = 10, status: int = 200, delay: float = 0.0,
              times: int = 1, raw: Any = None) -> "FakeOpenAI":
        """Queue an answer `times` times: a completion with this content and usage, or with
        `raw` the body as given (an error body, something that is no completion)."""
        with self._queue_lock:
            for _ in range(int(times)):
                self._queue.append({"content": content, "tokens": tokens, "status": int(status),
                                    "delay": float(delay), "raw": raw})
        return self

    def reply_json(self, obj: Any, *, tokens: int | None = 10, **kw) -> "FakeOpenAI":
        return self.reply(json.dumps(obj), tokens=tokens, **kw)

    def reply_text(self, text: str, *, tokens: int | None = 10, **kw) -> "FakeOpenAI":
        return self.reply(text, tokens=tokens, **kw)

    def reply_error(self, status: int = 500, *, times: int = 1, message: str = "failing on purpose",
                    **kw) -> "FakeOpenAI":
        body = {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error"}}
        return self.reply(None, status=status, raw=body, times=times, **kw)

    def reset(self) -> None:
        super().reset()
        with self._queue_lock:
            self._queue.clear()

    # answering --------------------------------------------------------------------------

    def answer(self, request: Recorded) -> Answer:
        if request.method != "POST" or request.path != PATH:
            return Answer(404, {"error": {"message": f"no route {request.method} {request.path}"}})
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Answer(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}})
        asked = request.json if isinstance(request.json, dict) else {}
        with self._queue_lock:
            spec = self._queue.popleft() if self._queue else dict(self.default)
        if spec.get("raw") is not None:
            return Answer(spec.get("status", 200), spec["raw"], delay=spec.get("delay", 0.0))
        body = completion(spec.get("content"), model=str(asked.get("model", "fake-model")),
                          tokens=spec.get("tokens"), n=len(self.requests))
        return Answer(spec.get("status", 200), body, delay=spec.get("delay", 0.0))

    def control(self, action: str, payload: Any) -> Any:
        if action == "reply":
            self.reply(**(payload or {}))
            return {"ok": True}
        return super().control(action, payload)


class FakeOpenAIClient(FakeClient):
    """A fake started with `python -m tests.fakes.openai_server`, driven from here."""

    def reply(self, content: str | None, **kw) -> None:
        self.control("reply", {"content": content, **kw})

    def reply_json(self, obj: Any, **kw) -> None:
        self.reply(json.dumps(obj), **kw)

    def reply_error(self, status: int = 500, *, times: int = 1, message: str = "failing on purpose") -> None:
        self.control("reply", {"content": None, "status": status, "times": times,
                               "raw": {"error": {"message": message}}})


if __name__ == "__main__":
    serve_main(FakeOpenAI, api_key="")
