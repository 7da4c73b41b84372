"""The functions an expression may call: their signatures and the SQL each becomes.

Scalar functions take and return plain SQL values; the collection functions (`size` of a
collection, `sum`, `min`, `max`) and the macros are compiled by `collections.py` because
they become subqueries. Every function can be called as `f(x, y)` or as `x.f(y)`.

`duration()` and `timestamp()` only take literal strings: they are parsed here, at
definition time, so that a typo is a definition error rather than a failing query.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from psycopg import sql

from runtime.expressions import types as T
from runtime.expressions.errors import ExprProblem


@dataclass(frozen=True)
class Function:
    params: tuple[str, ...]          # the scalar type each argument must have ("any": any scalar)
    result: T.Type
    template: str                    # SQL with {0}, {1} for the arguments
    signature: str                   # for messages: "startsWith(string, prefix string)"


SCALAR_FUNCTIONS = {
    "lower": Function(("string",), T.STRING, "lower({0})", "lower(string)"),
    "upper": Function(("string",), T.STRING, "upper({0})", "upper(string)"),
    "startsWith": Function(("string", "string"), T.BOOL, "starts_with({0}, {1})",
                           "string.startsWith(prefix)"),
    # right(s, n) rather than LIKE: a pattern would need its own escaping of % and _
    "endsWith": Function(("string", "string"), T.BOOL, "(right({0}, char_length({1})) = {1})",
                         "string.endsWith(suffix)"),
    "contains": Function(("string", "string"), T.BOOL, "(strpos({0}, {1}) > 0)",
                         "string.contains(part)"),
    "matches": Function(("string", "string"), T.BOOL, "({0} ~ {1})",
                        "string.matches(regex)"),
    "string": Function(("any",), T.STRING, "CAST({0} AS text)", "string(value)"),
}
STRING_SIZE = Function(("string",), T.INT, "char_length({0})", "size(string)")
COLLECTION_FUNCTIONS = ("size", "sum", "min", "max")
LITERAL_FUNCTIONS = ("duration", "timestamp")
ALL_FUNCTIONS = sorted(set(SCALAR_FUNCTIONS) | set(COLLECTION_FUNCTIONS) | set(LITERAL_FUNCTIONS)
                       | {"exists", "all", "exists_one", "filter", "map"})


def render(fn: Function, args: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(fn.template).format(*args)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600,
                 "d": 86400}


def parse_duration(text: str) -> dt.timedelta:
    """CEL/Go duration syntax ('24h', '1h30m', '1.5s', '-10m'), plus 'd' for days."""
    body = text[1:] if text[:1] in "+-" else text
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ExprProblem("expr.bad_arguments",
                          f"duration({text!r}): expected a duration like '24h', '90m' or '1h30m'")
    if total > 1e11:
        raise ExprProblem("expr.bad_literal", f"duration({text!r}) is too long")
    seconds = -total if text.startswith("-") else total
    return dt.timedelta(seconds=seconds)


def parse_timestamp(text: str) -> dt.datetime:
    """RFC 3339 with an explicit offset: '2026-01-01T00:00:00Z'."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None or "T" not in text.upper():
        raise ExprProblem("expr.bad_arguments",
                          f"timestamp({text!r}): expected an RFC 3339 time with a zone, "
                          "like '2026-01-01T00:00:00Z'")
    return value
