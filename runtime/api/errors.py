"""Errors in PostgREST's shape, `{"code", "message", "details", "hint"}`, with its status
codes, and the mapping from Postgres errors to them. Nothing reaching a caller carries a
traceback or a secret."""

from __future__ import annotations

import json
import re

import psycopg
from django.http import HttpResponse
from psycopg_pool import PoolTimeout


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


# The suffix of a constraint named `<Entity>_<field>_<kind>` (runtime/migrations/tables.py)
# -> what breaking it means, said of the field.
_CONSTRAINT_KINDS = {
    "min_length": "is shorter than the field allows",
    "max_length": "is longer than the field allows",
    "min": "is below the field's minimum",
    "max": "is above the field's maximum",
    "enum": "is not one of the field's values",
    "pattern": "does not match the field's pattern",
    "email": "is not an email address",
    "url": "is not an http(s) URL",
}
_KEY_COLUMNS = re.compile(r"^Key \((?P<cols>[^)]*)\)=")


def _constraint_field(table: str | None, constraint: str | None) -> tuple[str, str] | None:
    """(field, kind) from a constraint's name, when it follows the naming scheme."""
    if not table or not constraint or not constraint.startswith(f"{table}_"):
        return None
    rest = constraint[len(table) + 1:]
    for kind in sorted(_CONSTRAINT_KINDS, key=len, reverse=True):   # min_length before min
        if rest.endswith("_" + kind) and len(rest) > len(kind) + 1:
            return rest[: -len(kind) - 1], kind
    return None


def _describe(state: str, diag, primary: str) -> str | None:
    """A message naming the entity and field, from what Postgres reports; None if unsure."""
    table = getattr(diag, "table_name", None)
    constraint = getattr(diag, "constraint_name", None)
    detail = getattr(diag, "message_detail", None) or ""
    key = _KEY_COLUMNS.match(detail)
    if state == "23502" and table and getattr(diag, "column_name", None):
        return f"{table}.{diag.column_name} is required."
    if state == "23514":
        found = _constraint_field(table, constraint)
        if found:
            return f"{table}.{found[0]} {_CONSTRAINT_KINDS[found[1]]}."
    if state == "23505" and table and key:
        return f"{table} ({key.group('cols')}): another row already has this value."
    if state == "23503" and table and key:
        if primary.startswith("update or delete on table"):
            target = re.search(r'^update or delete on table "([^"]+)"', primary)
            # the referencing field is in the constraint's name, `<Entity>_<field>_fkey`
            prefix, suffix = f"{table}_", "_fkey"
            named = constraint and constraint.startswith(prefix) and constraint.endswith(suffix)
            field = constraint[len(prefix):-len(suffix)] if named else "?"
            return (f"The {target.group(1) if target else ''} row is still referenced by "
                    f"{table}.{field}, which does not allow deleting it.").replace("The  ", "The ")
        referenced = re.search(r'is not present in table "([^"]+)"', detail)
        return f"{table}.{key.group('cols')}: no {referenced.group(1) if referenced else 'such'} row has this id."
    return None


def busy() -> ApiError:
    """No runtime connection came free in time (RUNTIME_POOL_TIMEOUT): busy, not broken."""
    return ApiError(503, "PGRST003", "The database is busy; retry the request.", headers={"Retry-After": "1"})


def from_postgres(exc: psycopg.Error) -> ApiError:
    if isinstance(exc, PoolTimeout):
        return busy()
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
    if diag is not None:
        message = _describe(state, diag, getattr(diag, "message_primary", None) or "") or message
    details = None
    if constraint:
        details = f"constraint {constraint}"
    elif column:
        details = f"column {column}"
    return ApiError(status, state, message, details)
