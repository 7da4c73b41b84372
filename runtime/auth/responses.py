"""Successful answers of auth endpoints: JSON, never cached (they carry tokens)."""

from __future__ import annotations

import json
import uuid

from django.http import HttpResponse

from runtime.api.context import RequestContext
from runtime.auth.errors import AuthError, validation


def json_response(data, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(data), status=status, content_type="application/json; charset=utf-8")
    response["Cache-Control"] = "no-store"
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def no_content() -> HttpResponse:
    return HttpResponse(status=204)


def method_not_allowed(allowed) -> AuthError:
    return AuthError(405, "method_not_allowed", f"Use {', '.join(sorted(allowed))} here.",
                     headers={"Allow": ", ".join(sorted(allowed))})


def dispatch(request, table: dict, *args) -> HttpResponse:
    """Call the handler `table` has for the request's method."""
    handler = table.get(request.method)
    if handler is None:
        raise method_not_allowed(table)
    return handler(request, *args)


def uuid_of(value: str, name: str = "user_id") -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError):
        raise validation(f"{name} must be an UUID")


def session_id_of(context: RequestContext) -> str | None:
    """The `session_id` claim of the caller's access token, when it is a uuid."""
    value = context.caller.claims.get("session_id")
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None
