"""The data API's one Django view: routes `/t/<slug>/<rest>` to the stage handlers, turns
every failure into PostgREST's error shape, and never answers a traceback.

Handlers are looked up by route; a route whose handler is not built yet answers 501.
"""

from __future__ import annotations

import structlog
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from runtime.api.errors import ApiError

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
    for key, value in CORS_HEADERS.items():
        response[key] = value
    return response


def _auth_shaped(error: ApiError) -> ApiError:
    """Key and token errors met before the auth handler, in Supabase Auth's shape, so that
    auth-js and supabase-py read their `error_code`."""
    from runtime.auth.errors import AuthError

    if isinstance(error, AuthError):
        return error
    code = {401: "bad_jwt", 404: "no_definition", 503: "unexpected_failure"}.get(error.status, "unexpected_failure")
    return AuthError(error.status, code, error.message, headers=error.headers)


def _answer(request, slug: str, rest: str):
    from runtime.api.context import request_context

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
        context = request_context(request, slug)
        return handler(request, context, name)
    except ApiError as error:
        return (_auth_shaped(error) if kind == "auth" else error).response()
    except Exception:  # a bug: logged with the request id, answered without details
        log.exception("data_api.unhandled", route=kind)
        return ApiError(500, "PGRST000", f"Internal error (request {getattr(request, 'request_id', '?')}).").response()
