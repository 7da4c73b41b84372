"""`POST rest/v1/rpc/<action>` and `POST rest/v1/rpc/<Entity>.<transition>`.

An action: its input is validated against the declared fields (400 naming the field), its
`access` rule decides (403; the service key skips it), then its steps run in ONE
transaction with the checks, state machines and invariants of every write (409/422 roll
everything back), the outbox rows of its `enqueue`/`start`/`emit` steps are written, and
the answer is its `returns` (a row as JSON, or a value). A transition: see transitions.py.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from decimal import Decimal, InvalidOperation
from functools import partial

import psycopg
from django.http import HttpResponse
from psycopg import sql

from runtime.api.errors import ApiError, bad_request, forbidden, from_postgres, not_found
from runtime.api.integrity import WriteSession
from runtime.api.steps import ExpressionCache, StepRunner
from runtime.jobs.outbox import jsonable
from runtime.api.transitions import fire
from runtime.db import retried
from runtime.definition.model import Field
from runtime.expressions import types as T

MAX_BODY = 1_000_000


def _json_body(request) -> dict:
    if len(request.body) > MAX_BODY:
        raise ApiError(413, "PGRST413", "The request body is too large.")
    try:
        body = json.loads(request.body or b"{}", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The body is not valid JSON.", code="PGRST102")
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object of named arguments.", code="PGRST102")
    return body


def _coerce(name: str, f: Field, value):
    """The input value as the field's type, or a 400 naming it."""
    def fail(expected: str):
        raise bad_request(f"Input '{name}' must be {expected}.", details=f"got {json.dumps(jsonable(value))[:80]}")

    if value is None:
        if f.required:
            raise bad_request(f"Input '{name}' is required.")
        return None
    t = f.type
    if t in ("string", "text", "email", "url", "enum"):
        if not isinstance(value, str):
            fail("a string")
        if t == "enum" and value not in f.values:
            fail(f"one of {', '.join(f.values)}")
        if f.max_length is not None and len(value) > f.max_length or t == "string" and len(value) > (f.max_length or 255):
            fail(f"at most {f.max_length or 255} characters")
        if f.min_length is not None and len(value) < f.min_length:
            fail(f"at least {f.min_length} characters")
        if f.pattern and not re.search(f.pattern, value):
            fail(f"text matching {f.pattern}")
    elif t == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or value != int(value):
            fail("an integer")
        value = int(value)
    elif t in ("decimal", "float"):
        if isinstance(value, bool):
            fail("a number")
        try:
            value = Decimal(str(value)) if not isinstance(value, Decimal) else value
        except InvalidOperation:
            fail("a number")
        if not value.is_finite():
            fail("a finite number")
    elif t == "boolean":
        if not isinstance(value, bool):
            fail("true or false")
    elif t in ("uuid", "ref", "user"):
        try:
            value = str(uuid.UUID(str(value)))
        except ValueError:
            fail("an id (uuid)")
    elif t in ("date", "datetime"):
        try:
            parse = datetime.date.fromisoformat if t == "date" else datetime.datetime.fromisoformat
            parse(str(value).replace("Z", "+00:00"))
        except ValueError:
            fail("an ISO 8601 " + ("date" if t == "date" else "date-time"))
    if t in ("integer", "decimal", "float"):
        if f.min is not None and value < f.min:
            fail(f"at least {f.min}")
        if f.max is not None and value > f.max:
            fail(f"at most {f.max}")
    return value


def validate_input(fields: dict[str, Field], body: dict) -> dict:
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise bad_request(f"Unknown input: {', '.join(unknown)}.", hint=f"Inputs: {', '.join(fields) or 'none'}.")
    return {name: _coerce(name, f, body.get(name)) for name, f in fields.items()}


def _row_json(conn, entity: str, row_id) -> str | None:
    row = conn.execute(
        sql.SQL("SELECT (to_jsonb(r) - '_search')::text FROM {} AS r WHERE r.id = %(_id)s::uuid").format(
            sql.Identifier(entity)), {"_id": str(row_id)}).fetchone()
    return row[0] if row else None


def _respond(request, body: str | None, status: int = 200) -> HttpResponse:
    if "return=minimal" in request.headers.get("Prefer", ""):
        return HttpResponse(status=204)
    return HttpResponse(body if body is not None else "null", status=status, content_type="application/json; charset=utf-8")


def handle(request, context, name: str):
    if request.method != "POST":
        raise ApiError(405, "PGRST117", f"{request.method} is not allowed on rpc/{name}; use POST.")
    backend = context.backend
    body = _json_body(request)
    if "." in name:
        entity, transition = name.split(".", 1)
        if entity not in backend.entities or transition not in backend.entities[entity].transitions:
            raise not_found(f"No transition '{name}'.", code="PGRST202")
        validate_input({"id": Field("id", "uuid", "", required=True)}, body)
        work = partial(_fire, request, context, entity, transition, body["id"])
    else:
        action = backend.actions.get(name)
        if action is None:
            raise not_found(f"No action or transition '{name}'.", code="PGRST202",
                            hint=f"Actions: {', '.join(backend.actions) or 'none'}.")
        given = validate_input(dict(action.input), body)
        work = partial(_run_action, request, context, name, action, given)
    try:
        # a transaction Postgres rolled back for losing a race (a deadlock between two
        # actions writing the same rows in opposite orders) is run again, as writes are
        return retried(work)
    except psycopg.Error as exc:
        raise from_postgres(exc) from exc


def _fire(request, context, entity: str, transition: str, row_id) -> HttpResponse:
    with context.transaction() as conn:
        session = WriteSession(conn, context.backend, context.caller)
        runner = StepRunner(conn, context.backend, session, context.caller.auth, {})
        fire(runner, entity, transition, row_id, check_access=True)
        session.finish()
        answer = _row_json(conn, entity, row_id)
    session.outbox.wake()
    return _respond(request, answer)


def _run_action(request, context, name: str, action, given: dict) -> HttpResponse:
    backend, caller = context.backend, context.caller
    with context.transaction() as conn:
        session = WriteSession(conn, backend, caller, enforce_access=False)
        runner = StepRunner(conn, backend, session, caller.auth, given)
        if not caller.is_service:
            if action.access is None:
                raise forbidden(f"The action '{name}' has no access rule: only the service key may run it.")
            if not runner.value(action.access, {}):
                raise forbidden(f"Denied by access of the action '{name}' ({action.access.path}).",
                                details=action.access.source)
        env = runner.run(action.steps, {})
        result = None
        if action.returns is not None:
            value = runner.value(action.returns, env)
            returned = ExpressionCache.of(backend).sites[action.returns.path].type
            if isinstance(returned, T.Row) and value is not None:
                result = _row_json(conn, returned.entity, value)
            else:
                result = json.dumps(jsonable(value))
        session.finish()
    session.outbox.wake()
    return _respond(request, result)
