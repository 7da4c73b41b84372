"""The write side of `rest/v1/<Entity>`: POST (insert, upsert), PATCH, DELETE and PUT, in
PostgREST's shapes, on top of `integrity.WriteSession` (which keeps access rules, checks,
the state machine, invariants and the audit trail).

    parse (query string, Prefer, JSON body -> typed values) -> execute (one transaction,
    retried on deadlock) -> respond (201/200/204, Content-Range, the written rows)

Body values are checked against the field types here, so a wrong value is a 400 naming
the field, never a database error without a name. System fields: `id` may be given on
insert (client-made ids, upserts on id); `created_at` and `updated_at` never.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from django.http import HttpResponse
from django.core.exceptions import RequestDataTooBig
from django.http.request import RawPostDataException
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout

from runtime.api.errors import ApiError, bad_request, busy
from runtime.api.grammar import parse_request
from runtime.api.integrity import ALIAS, SYSTEM_FIELDS, WriteSession, Written
from runtime.api.read import Params, caller_error, conditions_sql
from runtime.api.request import ApiRequest, Column, Filter, Star
from runtime.api.resource import resource_of
from runtime.compile.backend import CompiledBackend, CompiledEntity
from runtime.db import retried

MAX_ROWS = 10_000
MAX_JSON_DEPTH = 64
INT64 = (-(2**63), 2**63 - 1)


def handle_write(request, context, entity_name: str) -> HttpResponse:
    backend = context.backend
    entity = backend.entities.get(entity_name)
    if entity is None:
        raise ApiError(404, "PGRST205", f"Could not find the entity '{entity_name}'.",
                       hint=f"Entities: {', '.join(sorted(backend.entities)) or 'none'}.")
    api = parse_request(request)
    body = None if request.method == "DELETE" else read_body(request)
    plan = plan_write(api, backend, entity, body)

    def attempt() -> HttpResponse:
        # deferred: BEGIN, the guard and the switch go in the message of the first statements
        with context.transaction(deferred=True) as conn:
            session = WriteSession(conn, backend, context.caller, single_write=True)
            written = execute(session, plan)
            session.finish()
            payload = None
            if api.preferences.return_ == "representation":
                payload = representation(conn, session, entity, api, written)
                if api.single:  # inside the transaction: a 406 rolls the write back
                    payload = single_object(payload)
        session.outbox.wake()
        return respond(api, written, payload)

    try:
        # an upsert that lost the race to insert its key finds the row on the next attempt
        return retried(attempt, also=_duplicate_key if plan.kind == "upsert" else None)
    except PoolTimeout:  # before psycopg.Error, which it is too
        raise busy() from None
    except psycopg.Error as exc:
        if getattr(exc, "sqlstate", None) is None:  # refused by the driver before Postgres saw it
            raise bad_request("A value could not be sent to the database.", details=type(exc).__name__)
        raise caller_error(exc)


def _duplicate_key(exc: psycopg.Error) -> bool:
    return exc.sqlstate == "23505"


# The body ---------------------------------------------------------------------------------


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


# Decimals stay exact; NaN and Infinity are not JSON. Made once: `json.loads` with options
# builds a decoder on every call.
_BODY_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)


def read_body(request) -> Any:
    try:
        raw = request.body
    except (RequestDataTooBig, RawPostDataException):
        raise ApiError(413, "PGRST413", "The request body is too large.")
    if not raw.strip():
        raise bad_request("The request needs a JSON body.", code="PGRST102")
    try:
        # as `json.loads` reads bytes: UTF-8, -16 or -32, found from the first bytes
        return _BODY_DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise bad_request("The request body is not valid JSON.", details=str(exc)[:200], code="PGRST102")


# Planning: what to write, with typed values -------------------------------------------------


@dataclass
class WritePlan:
    """What the request asks: `kind` insert | upsert | update | delete, the rows or values,
    the row filter (update, delete), and the upsert's key and resolution."""

    kind: str
    entity: str
    rows: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    where: Any = None
    on_conflict: tuple[str, ...] = ()
    ignore: bool = False
    missing_default: bool = False


def plan_write(api: ApiRequest, backend: CompiledBackend, entity: CompiledEntity, body: Any) -> WritePlan:
    prefer = api.preferences
    method = api.method
    if method == "POST":
        rows = body if isinstance(body, list) else [body]
        if not all(isinstance(row, dict) for row in rows):
            raise bad_request("POST takes a JSON object or an array of objects.", code="PGRST102")
        if len(rows) > MAX_ROWS:
            raise ApiError(413, "PGRST413", f"At most {MAX_ROWS} rows per request.")
        typed = [typed_row(entity, row, api.columns, insert=True) for row in rows]
        missing_default = prefer.missing == "default"
        if prefer.resolution or api.on_conflict:
            return WritePlan("upsert", entity.name, typed, on_conflict=api.on_conflict or ("id",),
                             ignore=prefer.resolution == "ignore-duplicates", missing_default=missing_default)
        return WritePlan("insert", entity.name, typed, missing_default=missing_default)
    if method == "PUT":
        return _plan_put(api, entity, body)
    if method == "PATCH":
        if not isinstance(body, dict):
            raise bad_request("PATCH takes one JSON object: the fields to set.", code="PGRST102")
        values = typed_row(entity, body, api.columns, insert=False)
        return WritePlan("update", entity.name, values=values, where=where_of(api, backend, entity))
    if method == "DELETE":
        return WritePlan("delete", entity.name, where=where_of(api, backend, entity))
    raise ApiError(405, "PGRST117", f"Unsupported HTTP method {method}.")


def _plan_put(api: ApiRequest, entity: CompiledEntity, body: Any) -> WritePlan:
    """PUT = upsert one row by primary key: `?id=eq.<uuid>` and the row with the same id."""
    if not isinstance(body, dict):
        raise bad_request("PUT takes one JSON object: the whole row.", code="PGRST102")
    target = primary_key_filter(api)
    if target is None:
        raise bad_request("PUT needs exactly one filter, on the primary key: ?id=eq.<uuid>.", code="PGRST105")
    row = typed_row(entity, body, api.columns, insert=True)
    if "id" in row and str(row["id"]) != str(target):
        raise bad_request("The id in the body does not match the id=eq filter.", code="PGRST115")
    row["id"] = target
    return WritePlan("upsert", entity.name, [row], on_conflict=("id",), missing_default=False)


def typed_row(entity: CompiledEntity, row: dict, columns: tuple[str, ...] | None, *, insert: bool) -> dict:
    """The body's object as field -> Python value, with every problem named (400)."""
    if columns is not None:
        unknown = [c for c in columns if c not in entity.table.columns]
        if unknown:
            raise _unknown(entity, unknown)
        row = {k: v for k, v in row.items() if k in columns}
    unknown = [k for k in row if k not in entity.table.columns]
    if unknown:
        raise _unknown(entity, unknown)
    refused = [k for k in row if k in SYSTEM_FIELDS and not (insert and k == "id")]
    if refused:
        raise bad_request(f"{', '.join(f'{entity.name}.{k}' for k in refused)} cannot be written: "
                          "Plinth maintains it.", code="PGRST204")
    return {name: coerce(entity, name, value) for name, value in row.items()}


def _unknown(entity: CompiledEntity, names: list[str]) -> ApiError:
    fields = ", ".join(c for c in entity.table.columns if c not in ("created_at", "updated_at"))
    listed = ", ".join(repr(n)[:80] for n in names[:10])
    return bad_request(f"{entity.name} has no field {listed}.", code="PGRST204", hint=f"Fields: {fields}.")


def _type_error(entity: CompiledEntity, name: str, expected: str, value: Any) -> ApiError:
    got = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")
    return bad_request(f"{entity.name}.{name} must be {expected}, not {got}.", code="22P02")


def coerce(entity: CompiledEntity, name: str, value: Any) -> Any:
    """One JSON value for one field, as the Python value psycopg sends (or a 400)."""
    if value is None:
        return None
    spec = entity.table.columns[name].source
    kind = "uuid" if name == "id" else spec.type

    def fail(expected: str):
        return _type_error(entity, name, expected, value)

    if kind in ("string", "text", "email", "url", "enum"):
        if not isinstance(value, str):
            raise fail("a string")
        _check_text(entity, name, value)
        limit = spec.max_length or (254 if kind == "email" else 255)
        if kind in ("string", "email") and len(value) > limit:
            # the same answer as the length checks of text fields (a CHECK constraint)
            raise ApiError(422, "23514", f"{entity.name}.{name} is longer than the field allows (at most {limit} characters).")
        return value
    if kind == "integer":
        number = _number(value)
        if isinstance(number, Decimal) and number == number.to_integral_value():
            number = int(number)
        if not isinstance(number, int) or not INT64[0] <= number <= INT64[1]:
            raise fail("a whole number (64-bit)")
        return number
    if kind in ("decimal", "float"):
        number = _number(value)
        if number is None:
            raise fail("a number")
        if kind == "float":
            number = float(number)
            if number in (float("inf"), float("-inf")):
                raise fail("a number a double can hold")
            return number
        return Decimal(number)
    if kind == "boolean":
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if kind in ("date", "datetime"):
        if not isinstance(value, str):
            raise fail("an ISO 8601 date" if kind == "date" else "an ISO 8601 date and time")
        try:
            if kind == "date":
                return dt.date.fromisoformat(value)
            return dt.datetime.fromisoformat(value)
        except ValueError:
            raise fail("an ISO 8601 date" if kind == "date" else "an ISO 8601 date and time")
    if kind in ("uuid", "ref", "user"):
        if not isinstance(value, str):
            raise fail("a uuid")
        try:
            return uuid.UUID(value)
        except ValueError:
            raise fail("a uuid")
    if kind == "json":
        text = dump_json(value)  # now, so that a problem is a 400 here and not inside the driver
        return Jsonb(value, dumps=lambda _value: text)
    raise fail("a value")  # an unknown field type: refuse, never guess


def _number(value: Any) -> int | Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,6})?\s*", value):
        return Decimal(value.strip())
    return None


def _check_text(entity: CompiledEntity, name: str, value: str) -> None:
    if "\x00" in value:
        raise bad_request(f"{entity.name}.{name} may not contain NUL characters.", code="22P05")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{entity.name}.{name} is not valid Unicode text (a lone surrogate).", code="22P05")


def dump_json(value: Any, depth: int = 0) -> str:
    """JSON text keeping decimals exact (the body was read with `parse_float=Decimal`)."""
    if depth > MAX_JSON_DEPTH:
        raise bad_request(f"JSON values may nest at most {MAX_JSON_DEPTH} levels.", code="22P02")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dump_json(v, depth + 1) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump_json(v, depth + 1) for v in value) + "]"
    return json.dumps(value)


# Filters ----------------------------------------------------------------------------------
#
# The query string is parsed by the shared PostgREST grammar (runtime/api/grammar.py) and
# filters compile as reads compile them (runtime/api/read.py), over the alias `r`.


def where_of(api: ApiRequest, backend: CompiledBackend, entity: CompiledEntity) -> tuple[sql.Composable, dict]:
    """The filters of a PATCH or DELETE as a predicate over `r`. A write without any filter
    would touch every row: refused, as pg-safeupdate does for Supabase."""
    if api.embed_paths or api.orders:
        raise bad_request(f"{api.method} takes filters on the entity's own fields only (no embedded "
                          "filters, order or limit).", code="PGRST100")
    conditions = api.conditions_at(())
    if not conditions:
        raise bad_request(f"{api.method} needs a filter: ?id=eq.<uuid> (a write without one would touch every row).",
                          code="PGRST106")
    params = Params()
    resource = resource_of(backend, entity.name)
    parts = conditions_sql(resource, conditions, "r", params)
    return sql.SQL(" AND ").join(parts), params.values


def primary_key_filter(api: ApiRequest) -> uuid.UUID | None:
    conditions = api.conditions_at(())
    if len(conditions) != 1:
        return None
    cond = conditions[0]
    if not isinstance(cond, Filter) or cond.field.name != "id" or cond.op != "eq" or cond.negated:
        return None
    try:
        return uuid.UUID(str(cond.value))
    except ValueError:
        raise bad_request("id=eq.<value> must be a uuid.", code="22P02")


# Executing and answering ----------------------------------------------------------------------


def execute(session: WriteSession, plan: WritePlan) -> list[Written]:
    if plan.kind == "insert":
        return session.insert(plan.entity, plan.rows, missing_default=plan.missing_default)
    if plan.kind == "upsert":
        return session.upsert(plan.entity, plan.rows, plan.on_conflict, ignore_duplicates=plan.ignore,
                              missing_default=plan.missing_default)
    if plan.kind == "update":
        return session.update(plan.entity, plan.where, plan.values)
    return session.delete(plan.entity, plan.where)


def representation(conn, session: WriteSession, entity: CompiledEntity, api: ApiRequest, written: list[Written]) -> str:
    """The written rows as a JSON array, shaped by `select`, built by Postgres from the rows'
    stored JSON (exact numbers). Rows the caller may not read are left out, as a read would."""
    rows = [w.row for w in written]
    if rows and session.enforce_access and written[0].operation != "delete":
        # deleted rows were readable (a delete matches only those); new ones are checked now
        rule = entity.access.get("read")
        visible: set[str] = set()
        if rule is not None:
            query = sql.SQL("SELECT {}.id::text FROM {} AS {} WHERE {}.id = ANY(%(_ids)s::uuid[]) AND {}").format(
                ALIAS, sql.Identifier(entity.name), ALIAS, ALIAS, rule.sql.sql)
            visible = {i for (i,) in conn.execute(query, {**rule.sql.bind(auth=session.auth),
                                                          "_ids": [r.id for r in rows]}).fetchall()}
        rows = [r for r in rows if r.id in visible]
    shape = _projection(entity, api.select)
    query = sql.SQL("SELECT coalesce(json_agg({} ORDER BY t.n), '[]')::text "
                    "FROM unnest(%(_rows)s::jsonb[]) WITH ORDINALITY AS t(x, n)").format(shape)
    return conn.execute(query, {"_rows": [r.text for r in rows]}).fetchone()[0]


def _projection(entity: CompiledEntity, select: tuple) -> sql.Composable:
    if any(isinstance(item, Star) for item in select):
        return sql.SQL("t.x")
    pairs = []
    for item in select:
        if not isinstance(item, Column) or item.field.json_path or item.cast:
            raise bad_request("Write responses take plain fields in select ('id,title' or 'label:title').",
                              code="PGRST100")
        if item.field.name not in entity.table.columns:
            raise ApiError(400, "42703", f"{entity.name} has no field '{item.field.name}'.")
        pairs.append(sql.SQL("{}, t.x -> {}").format(sql.Literal(item.key), sql.Literal(item.field.name)))
    return sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(pairs))


def single_object(payload: str) -> str:
    """`Accept: application/vnd.pgrst.object+json`: exactly one row, as an object."""
    items = json.loads(payload, parse_float=Decimal)
    if len(items) != 1:
        raise ApiError(406, "PGRST116", "JSON object requested, multiple (or no) rows returned",
                       details=f"The result contains {len(items)} rows")
    return payload.strip()[1:-1].strip()  # the one object, bytes as Postgres made them


def respond(api: ApiRequest, written: list[Written], payload: str | None) -> HttpResponse:
    count = len(written)
    exact = api.preferences.count == "exact"
    if api.method == "POST":
        content_range = f"*/{count if exact else '*'}"
        status = 201
    else:
        content_range = f"0-{count - 1}/{count if exact else '*'}" if count else f"*/{count if exact else '*'}"
        status = 200 if payload is not None else 204
    if payload is None:
        response = HttpResponse(status=status)
    else:
        content_type = "application/vnd.pgrst.object+json" if api.single else "application/json"
        response = HttpResponse(payload, status=status, content_type=f"{content_type}; charset=utf-8")
    response["Content-Range"] = content_range
    applied = api.preferences.applied
    if applied:
        response["Preference-Applied"] = applied
    return response
