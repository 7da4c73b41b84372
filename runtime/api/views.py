"""The data API's entry: routes `/t/<slug>/<rest>` to the stage handlers, turns every
failure into PostgREST's error shape, and never answers a traceback.

`serve` is a data API request from start to answer, as the platform's WSGI handler
(controlplane/wsgi.py) runs it: without Django's middleware chain and URL resolver, whose
work for a data API request was a third of the request (sessions, users, messages and
CSRF mean nothing here; the handler and resolver cost by themselves). What the middleware
did for these paths, `serve` does: the request id and log line, the ALLOWED_HOSTS check,
the security middleware's headers and HTTPS redirect. `data_api`, the Django view, answers
the same through Django's own path (its test client, and any path the WSGI handler does
not take).

Handlers are looked up by route; a route whose handler is not built yet answers 501.
"""

from __future__ import annotations

import re

import structlog
from django.core.exceptions import DisallowedHost
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.views.decorators.csrf import csrf_exempt
from psycopg_pool import PoolTimeout

from controlplane.middleware import begin_request, end_request

from runtime.api.context import forget, remembered_context, request_context
from runtime.api.errors import ApiError, busy
from runtime.db import TenantChanged

log = structlog.get_logger("plinth.data_api")


def _route(rest: str) -> tuple[str, str]:
    """('rest', 'Entity') / ('rpc', 'name') / ('openapi', '') / ('auth', 'token') / ('unknown', rest)."""
    parts = rest.strip("/").split("/")
    if parts[:2] == ["rest", "v1"]:
        if len(parts) == 2:
            return "openapi", ""
        if parts[2] == "rpc" and len(parts) == 4:
            return "rpc", parts[3]
        if len(parts) == 3:
            return "rest", parts[2]
    if parts[:2] == ["auth", "v1"] and len(parts) >= 3:
        return "auth", "/".join(parts[2:])
    return "unknown", rest


def _handler(kind: str):
    if kind == "rest":
        from runtime.api import resource

        return resource.handle
    if kind == "rpc":
        from runtime.api import rpc

        return rpc.handle
    if kind == "openapi":
        from runtime.api import openapi

        return openapi.handle
    if kind == "auth":
        from runtime.auth import views as auth_views

        return auth_views.handle
    return None


# Browsers call the data API directly (supabase-js in a web app): every answer allows any
# origin, since access is decided by keys and tokens, never by cookies.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": (
        "apikey, authorization, content-type, prefer, range, range-unit, accept, accept-profile, "
        "content-profile, x-client-info, x-supabase-api-version, x-request-id"
    ),
    "Access-Control-Expose-Headers": "Content-Range, Content-Location, Location, X-Request-ID, Retry-After",
    "Access-Control-Max-Age": "86400",
}


@csrf_exempt
def data_api(request, slug: str, rest: str = ""):
    if request.method == "OPTIONS":  # a CORS preflight: no key is sent with it
        response = HttpResponse(status=204)
    else:
        response = _answer(request, slug, rest)
    return _with_cors(response)


# CORS_HEADERS as Django's ResponseHeaders stores them (lower-cased name -> (name, value)):
# these constant, valid headers go on every answer without `__setitem__`'s checks of each
_CORS_STORE = {key.lower(): (key, value) for key, value in CORS_HEADERS.items()}


def _with_cors(response: HttpResponse) -> HttpResponse:
    response.headers._store.update(_CORS_STORE)
    return response


# `/t/<slug>/<rest>` as the URL patterns have it (Django's `slug` converter); `rest` may be empty
DATA_API_PATH = re.compile(r"/t/([-a-zA-Z0-9_]+)/(.*)", re.DOTALL)
# The middleware whose work a data API answer needs, called by hand (settings read once)
_security = SecurityMiddleware(lambda request: None)
_frames = XFrameOptionsMiddleware(lambda request: None)


def serve(request, slug: str, rest: str) -> HttpResponse:
    """A data API request without Django's handler: see the module's docstring."""
    started = begin_request(request)
    try:
        request.get_host()       # ALLOWED_HOSTS, as CommonMiddleware checks it
        response = _security.process_request(request) or data_api(request, slug, rest)
    except DisallowedHost:
        response = _with_cors(ApiError(400, "PGRST000", "The Host header names no host this server answers to.")
                              .response())
    response = _frames.process_response(request, _security.process_response(request, response))
    if not response.has_header("Content-Length"):     # as CommonMiddleware sets it
        response.headers["Content-Length"] = str(len(response.content))
    end_request(request, response, started)
    return response


def _auth_shaped(error: ApiError) -> ApiError:
    """Key and token errors met before the auth handler, and what a write of the handler
    refuses (an invariant, a check, a reference), in Supabase Auth's shape, so that auth-js
    and supabase-py read their `error_code`."""
    from runtime.auth.errors import AuthError

    if isinstance(error, AuthError):
        return error
    code = {401: "bad_jwt", 404: "no_definition", 409: "conflict", 422: "validation_failed"}.get(
        error.status, "unexpected_failure")
    return AuthError(error.status, code, error.message, headers=error.headers)


# Routes served on the facts a worker remembers about the tenant and key (runtime/api/
# context.py, "Remembered facts"). Not auth: its handlers count login attempts and send
# nothing of theirs to run again.
REMEMBERING = frozenset({"rest", "rpc", "openapi"})


def _on_remembered_facts(request, slug: str, handler, name: str):
    """The handler on remembered facts, checked by the request's first statement or, when it
    had none (or was refused), before the answer; on outdated facts (nothing ran) it is run
    again on facts looked up afresh."""
    try:
        context = remembered_context(request, slug)     # checks the facts itself if it refuses
        if context is not None:
            try:
                response = handler(request, context, name)
            except TenantChanged:
                raise
            except Exception:   # an answer (or a failure) on facts that may be outdated
                context.confirm()
                raise
            context.confirm()
            return response
    except TenantChanged:
        forget(request, slug)
    return handler(request, request_context(request, slug), name)


def _answer(request, slug: str, rest: str):
    kind, name = _route(rest)
    try:
        if kind == "unknown":
            raise ApiError(404, "PGRST125", f"No data API endpoint at /{rest}.",
                           hint="Use rest/v1/<Entity>, rest/v1/rpc/<action> or auth/v1/...")
        try:
            handler = _handler(kind)
        except ImportError:
            handler = None
        if handler is None:
            raise ApiError(501, "PGRST501", f"{kind} endpoints are not available yet.")
        if kind in REMEMBERING:
            return _on_remembered_facts(request, slug, handler, name)
        return handler(request, request_context(request, slug), name)
    except (ApiError, PoolTimeout) as error:
        if isinstance(error, PoolTimeout):      # a route that does not answer it itself (auth)
            error = busy()
        return (_auth_shaped(error) if kind == "auth" else error).response()
    except Exception:  # a bug: logged with the request id, answered without details
        log.exception("data_api.unhandled", route=kind)
        return ApiError(500, "PGRST000", f"Internal error (request {getattr(request, 'request_id', '?')}).").response()
