"""One error shape for the whole admin API:

    {"code": "validation_error", "message": "...", "errors": [{"code", "path", "message"}]}

`path` is a JSON Pointer into the request body (`/email`), empty when the error is about the
request as a whole. DRF's exceptions and the services' `ServiceError` both end up here.
"""

from __future__ import annotations

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from tenants.services import ServiceError

_MESSAGES = {
    status.HTTP_400_BAD_REQUEST: "The request is invalid.",
}


def error_response(code: str, message: str, status_code: int, errors: list[dict] | None = None, headers=None):
    return Response({"code": code, "message": message, "errors": errors or []}, status=status_code, headers=headers)


def _flatten(detail, path: str = "") -> list[dict]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            sub = path if key == "non_field_errors" else f"{path}/{key}"
            out.extend(_flatten(value, sub))
        return out
    if isinstance(detail, list):
        out = []
        for index, value in enumerate(detail):
            # a list of messages for one field keeps the field's path; nested objects get an index
            out.extend(_flatten(value, path if not isinstance(value, (dict, list)) else f"{path}/{index}"))
        return out
    return [{"code": getattr(detail, "code", "invalid"), "path": path, "message": str(detail)}]


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        errors = [{"code": exc.code, "path": f"/{exc.field}" if exc.field else "", "message": exc.message}]
        return error_response(exc.code, exc.message, exc.status, errors)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django's handler500 answers JSON for /api/ paths
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        message = errors[0]["message"] if len(errors) == 1 else f"{len(errors)} problems in the request."
        return error_response("validation_error", message, response.status_code, errors, response.headers)
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
    message = str(detail.get("detail", detail)) if isinstance(detail, dict) else str(detail)
    return error_response(code, message, response.status_code, None, dict(response.items()))
