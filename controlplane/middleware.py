"""Per-request context for logs: a request id (taken from X-Request-ID when sane), the
user and the tenant, bound in contextvars so every log line of the request carries them,
and one summary line per request."""

from __future__ import annotations

import logging
import random
import re
import time
import uuid

import structlog

log = structlog.get_logger("plinth.request")
_stdlib_log = logging.getLogger("plinth.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _new_request_id() -> str:
    """A uuid4 in hex, from `random` rather than `os.urandom`: a request id is not a secret,
    and the system call hands the GIL to another thread of the worker and waits to get it
    back (`random` is reseeded in each forked worker)."""
    return uuid.UUID(int=random.getrandbits(128), version=4).hex


def begin_request(request) -> float:
    """Give the request its id and bind it for the request's log lines; the start time."""
    # META, not request.headers: building the headers mapping costs more than this read
    given = request.META.get("HTTP_X_REQUEST_ID", "")
    request.request_id = given if _REQUEST_ID.match(given) else _new_request_id()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request.request_id)
    return time.perf_counter()


def end_request(request, response, started: float) -> None:
    """The request's summary line, and its id on the response."""
    # the line's processors (time stamp, context, redaction) only when it is written
    if _stdlib_log.isEnabledFor(logging.INFO):
        user = getattr(request, "user", None)
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            user=getattr(user, "pk", None) if user is not None and user.is_authenticated else None,
        )
    response["X-Request-ID"] = request.request_id
    structlog.contextvars.clear_contextvars()


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = begin_request(request)
        response = self.get_response(request)
        end_request(request, response, started)
        return response


def bind_tenant(slug: str) -> None:
    """Called wherever a request or task resolves its tenant."""
    structlog.contextvars.bind_contextvars(tenant=slug)


# The data API (`/t/<slug>/...`) authenticates by apikey and bearer token, never by the
# console's cookies, and answers JSON: sessions, Django users and messages mean nothing
# there. These wrappers run the wrapped middleware for every other path (console, admin
# API, auth pages: unchanged) and skip it for data API paths, saving its per-request work.
# The wrapped middleware must only hook requests and responses (no process_view or
# process_exception: those the wrapper would not forward).
DATA_API_PREFIX = "/t/"


class _SkippedForDataApi:
    wrapped = ""

    def __init__(self, get_response):
        from django.utils.module_loading import import_string

        self.get_response = get_response
        self.inner = import_string(self.wrapped)(get_response)

    def __call__(self, request):
        if request.path_info.startswith(DATA_API_PREFIX):
            return self.get_response(request)
        return self.inner(request)


class SessionMiddleware(_SkippedForDataApi):
    wrapped = "django.contrib.sessions.middleware.SessionMiddleware"


class AuthenticationMiddleware(_SkippedForDataApi):
    wrapped = "django.contrib.auth.middleware.AuthenticationMiddleware"


class MessageMiddleware(_SkippedForDataApi):
    wrapped = "django.contrib.messages.middleware.MessageMiddleware"
