"""The result of compiling an expression: one SQL fragment plus what it needs at run time.

A `CompiledExpr` is meant to be embedded in a bigger query (the WHERE of a list request, a
CHECK query, an invariant query per anchor row, `SELECT <expr>` for a step value). Its SQL
uses named placeholders of two kinds, chosen so that several fragments can share one
query without their parameters colliding:

- runtime values (`auth.id`, `input.qty`, `order.id`, `contact.body.id`, `secrets.KEY`)
  are named after their path: the same name always means the same value;
- string-like literals from the definition are named after their content
  (`lit:placed`, `dur:24h`), so equal names hold equal values too.

Numbers, booleans and null are inlined as SQL literals; strings never are, because psycopg
would read a `%` inside a quoted string as a placeholder.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from psycopg import sql
from psycopg.types.json import Jsonb

from runtime.expressions import types as T

_SAFE_LITERAL = re.compile(r"[A-Za-z0-9_.:/@+-]")
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_]")


def _escape(text: str, safe: re.Pattern) -> str:
    return "".join(c if safe.fullmatch(c) else "".join(f"~{b:02x}" for b in c.encode()) for c in text)


def literal_name(tag: str, text: str) -> str:
    """A placeholder name that identifies a literal's value: equal names, equal values."""
    escaped = _escape(text, _SAFE_LITERAL)
    if len(escaped) <= 40:
        return f"{tag}:{escaped}"
    return f"{tag}#{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def path_name(path: tuple[str | int, ...]) -> str:
    """`('auth', 'id')` -> 'auth.id'; list indexes as `[0]`."""
    parts = []
    for key in path:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        else:
            parts.append(("." if parts else "") + _escape(key, _SAFE_SEGMENT))
    return "".join(parts)


@dataclass(frozen=True)
class CompiledExpr:
    """One expression as SQL. `sql` is a psycopg Composable; run it with `bind(...)`."""

    sql: sql.Composable
    params: Mapping[str, Any]                       # the literals' values, by placeholder name
    needs: frozenset[tuple[str | int, ...]]         # runtime values, by path
    type: T.Type
    source: str
    path: str = ""
    dyn_needs: frozenset[tuple[str | int, ...]] = field(default=frozenset())

    def bind(self, *, auth: Mapping[str, Any] | None = None, input: Mapping[str, Any] | None = None,
             bindings: Mapping[str, Any] | None = None, event: Any = None,
             secrets: Mapping[str, Any] | None = None, record: Any = None) -> dict[str, Any]:
        """Every parameter the SQL uses, from the caller's values.

        `auth` is None for an anonymous caller (then `auth.id`, `auth.role`, ... are NULL).
        A row (`record`, a binding made by `as`, `input.order`) may be given as a mapping
        with an `id` or as the id itself. Missing values are NULL.
        """
        values = dict(self.params)
        if self._needed:
            roots = dict(bindings or {})
            roots.update(auth=auth, input=input or {}, event=event, secrets=secrets or {},
                         record=record)
            for path, name, dynamic in self._needed:
                value = resolve(roots, path)
                if dynamic and value is not None:
                    value = Jsonb(value)
                values[name] = value
        return values

    @cached_property
    def _needed(self) -> tuple[tuple[tuple[str | int, ...], str, bool], ...]:
        """(path, placeholder name, dynamic) of each runtime value, in name order: worked out
        once per expression, not on every `bind` (the expression is compiled once per
        backend and bound on every request)."""
        return tuple((path, path_name(path), path in self.dyn_needs) for path in sorted(self.needs, key=path_name))

    def as_string(self, context: Any = None) -> str:
        return self.sql.as_string(context)


def resolve(roots: Mapping[str, Any], path: tuple[str | int, ...]) -> Any:
    value: Any = roots
    for i, key in enumerate(path):
        if value is None:
            return None
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(key, int) and isinstance(value, (list, tuple)):
            value = value[key] if -len(value) <= key < len(value) else None
        elif key == "id" and i == len(path) - 1 and isinstance(value, (str, uuid.UUID)):
            pass        # a row given as its id
        else:
            return None     # never getattr: keys come from the definition's text
    return value
