"""Errors in PostgREST's shape, `{"code", "message", "details", "hint"}`, with its status
codes, and the mapping from Postgres errors to them. Nothing reaching a caller carries a
traceback or a secret."""

from __future__ import annotations

import json

import psycopg
from django.http import HttpResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str | None = None, hint: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.hint = status, code, message, details, hint
        self.headers = headers or {}

    def body(self) -> dict:
        return {"code": self.code, "message": self.message, "details": self.details, "hint": self.hint}

    def response(self) -> HttpResponse:
        response = HttpResponse(json.dumps(self.body()), status=self.status, content_type="application/json; charset=utf-8")
        for key, value in self.headers.items():
            response[key] = value
        return response


def bad_request(message: str, details: str | None = None, hint: str | None = None, code: str = "PGRST100") -> ApiError:
    return ApiError(400, code, message, details, hint)


def not_found(message: str, code: str = "PGRST205", hint: str | None = None) -> ApiError:
    return ApiError(404, code, message, None, hint)


def unauthorized(message: str, code: str = "PGRST301") -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def forbidden(message: str, details: str | None = None) -> ApiError:
    return ApiError(403, "42501", message, details)


# SQLSTATE -> (status, what to say). Constraint names tell which field (tables.py names them).
_SQLSTATE = {
    "23505": (409, "duplicate key value violates unique constraint"),
    "23503": (409, "the row references, or is referenced by, a row that does not allow it"),
    "23514": (422, "a value breaks a rule of the field"),
    "23502": (400, "a required value is missing"),
    "22P02": (400, "a value has the wrong type"),
    "22001": (400, "a value is too long"),
    "22003": (400, "a number is out of range"),
    "22007": (400, "a date or time is not valid"),
    "22008": (400, "a date or time is out of range"),
    "2201B": (400, "a regular expression is not valid"),
    "22023": (400, "a value is not valid"),
    "22012": (400, "division by zero"),
    "40001": (409, "the request conflicted with a concurrent one; retry it"),
    "40P01": (409, "the request conflicted with a concurrent one; retry it"),
    "55P03": (409, "the rows are locked by another request; retry it"),
    "57014": (504, "the request took too long and was cancelled"),
    "54001": (400, "the request is too complex"),
}


def from_postgres(exc: psycopg.Error) -> ApiError:
    state = getattr(exc, "sqlstate", None) or ""
    diag = getattr(exc, "diag", None)
    constraint = getattr(diag, "constraint_name", None) if diag else None
    column = getattr(diag, "column_name", None) if diag else None
    status, message = _SQLSTATE.get(state, (None, None))
    if status is None:
        if state.startswith("22"):
            status, message = 400, "a value is not valid"
        elif state.startswith("23"):
            status, message = 409, "the change conflicts with existing rows"
        else:
            # Anything else is our bug or an outage, never the caller's data: say so plainly.
            return ApiError(500, "PGRST000", "The database could not run this request.", None, None)
    details = None
    if constraint:
        details = f"constraint {constraint}"
    elif column:
        details = f"column {column}"
    return ApiError(status, state, message, details)
