"""Per-request context for logs: a request id (taken from X-Request-ID when sane), the
user and the tenant, bound in contextvars so every log line of the request carries them,
and one summary line per request."""

from __future__ import annotations

import re
import time
import uuid

import structlog

log = structlog.get_logger("plinth.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        request.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        user = getattr(request, "user", None)
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            user=getattr(user, "pk", None) if user is not None and user.is_authenticated else None,
        )
        response["X-Request-ID"] = request_id
        structlog.contextvars.clear_contextvars()
        return response


def bind_tenant(slug: str) -> None:
    """Called wherever a request or task resolves its tenant."""
    structlog.contextvars.bind_contextvars(tenant=slug)
