"""Rule: a field's default is a value of the field's type that its own constraints accept.

Literals only, plus two markers evaluated at write time: `now` (date and datetime fields)
and `auth.id` (user and uuid fields). The words are reserved as defaults: a string field
cannot default to the text "now". A ref has no literal default, since a row id written
into a definition means nothing in another environment.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from typing import Any, Iterator

from ..model import DEFAULT_AUTH_ID, DEFAULT_NOW, EMAIL_PATTERN, URL_PATTERN, Definition, DefinitionError, Field
from ..walk import all_fields
from .field_options import is_bigint

CODES = {
    "default.type_mismatch": "A default that is not a value of the field's type.",
    "default.not_in_values": "An enum field's default is not one of its values.",
    "default.now_not_allowed": "`now` as the default of a field that is not a date or datetime.",
    "default.auth_id_not_allowed": "`auth.id` as the default of a field that is not a user or uuid.",
    "default.violates_constraint": "A default outside the field's own min/max, lengths or pattern.",
    "default.not_allowed": "A default on a ref field (a row id cannot be written in a definition).",
}

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parses(parse: Any, value: Any) -> bool:
    try:
        parse(value)
    except (ValueError, TypeError, ArithmeticError):
        return False
    return True


def _decimal(value: Any) -> decimal.Decimal:
    number = decimal.Decimal(value if isinstance(value, str) else repr(value))
    if not number.is_finite():
        raise ValueError("not finite")
    return number


_TYPE_OK = {
    "string": lambda v: isinstance(v, str),
    "text": lambda v: isinstance(v, str),
    "email": lambda v: isinstance(v, str) and re.search(EMAIL_PATTERN, v, re.IGNORECASE) is not None,
    "url": lambda v: isinstance(v, str) and re.search(URL_PATTERN, v, re.IGNORECASE) is not None,
    "integer": is_bigint,
    "decimal": lambda v: _is_number(v) or (isinstance(v, str) and _parses(_decimal, v)),
    "float": lambda v: _is_number(v) and _parses(float, v),
    "boolean": lambda v: isinstance(v, bool),
    "date": lambda v: isinstance(v, str) and _parses(dt.date.fromisoformat, v),
    "datetime": lambda v: isinstance(v, str) and _parses(dt.datetime.fromisoformat, v),
    "json": lambda v: True,
    "uuid": lambda v: isinstance(v, str) and _parses(uuid.UUID, v),
    "enum": lambda v: isinstance(v, str),
    "user": lambda v: False,   # only auth.id
}


def _field_errors(field: Field) -> Iterator[DefinitionError]:
    value, where = field.default, f"{field.path}/default"
    if value == DEFAULT_NOW:
        if field.type not in ("date", "datetime"):
            yield DefinitionError("default.now_not_allowed", where,
                                  f"'now' is a default for date and datetime fields only, not {field.type}.")
        return
    if value == DEFAULT_AUTH_ID:
        if field.type not in ("user", "uuid"):
            yield DefinitionError("default.auth_id_not_allowed", where,
                                  f"'auth.id' is a default for user and uuid fields only, not {field.type}.")
        return
    if value is None:  # `default: null` is the same as no default
        return
    if field.type == "ref":
        yield DefinitionError("default.not_allowed", where,
                              "A ref field cannot have a default; set it in the create step or the request.")
        return
    if not _TYPE_OK[field.type](value):
        hint = " (only auth.id)" if field.type == "user" else ""
        yield DefinitionError("default.type_mismatch", where,
                              f"{_short(value)} is not a valid {field.type} value{hint}.")
        return
    if field.type == "enum" and value not in field.values:
        yield DefinitionError("default.not_in_values", where,
                              f"'{value}' is not one of the values ({', '.join(field.values)}).")
        return
    problem = _constraint_problem(field, value)
    if problem:
        yield DefinitionError("default.violates_constraint", where, f"The default {_short(value)} {problem}.")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _constraint_problem(field: Field, value: Any) -> str | None:
    if _is_number(field.min) and _is_number(value) and value < field.min:
        return f"is below min ({field.min})"
    if _is_number(field.max) and _is_number(value) and value > field.max:
        return f"is above max ({field.max})"
    if isinstance(value, str) and "\x00" in value:
        return "contains a NUL character, which Postgres text cannot hold"
    if isinstance(value, str) and field.type in ("string", "text", "email", "url"):
        if field.min_length is not None and len(value) < field.min_length:
            return f"is shorter than min_length ({field.min_length})"
        if field.max_length is not None and len(value) > field.max_length:
            return f"is longer than max_length ({field.max_length})"
        if field.pattern is not None:
            try:
                if not re.search(field.pattern, value):
                    return f"does not match the pattern {field.pattern!r}"
            except re.error:
                return None  # reported by field_options
    return None


def check(d: Definition) -> Iterator[DefinitionError]:
    for field, _where in all_fields(d):
        if field.has_default:
            yield from _field_errors(field)
