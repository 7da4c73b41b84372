"""What an expression node compiles to, before it is flattened into one SQL fragment.

A path such as `input.order.customer.account` is compiled one step at a time, and each step
needs to know more than "some SQL": whether the row's columns are reachable through a table
alias (`record` in a rule, a macro variable) or only through its id (a ref field, a step
result), whether a runtime value is still a path that a `.field` can extend (`contact.body`)
or already a parameter, whether a collection is a query that a macro can extend.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from runtime.expressions import types as T


@dataclass(frozen=True)
class S:
    """A plain SQL value of a scalar type."""

    sql: sql.Composable
    type: T.Type


@dataclass(frozen=True)
class RowAlias:
    """A row whose columns are `alias.column` (record in a rule, a macro variable)."""

    alias: str
    entity: str


@dataclass(frozen=True)
class RowId:
    """A row known by an SQL expression that gives its id; columns need a subquery."""

    id: sql.Composable
    entity: str


@dataclass(frozen=True)
class UserId:
    """An end user known by the SQL expression of their id (a `user` field)."""

    id: sql.Composable


@dataclass(frozen=True)
class AuthUser:
    """The caller: `auth.id`, `auth.email`, `auth.role` are parameters, NULL when anonymous."""


@dataclass(frozen=True)
class Path:
    """A runtime value reached by a path (`input.qty`, `contact.body.id`), not yet a parameter."""

    path: tuple[str | int, ...]
    type: T.Type


@dataclass(frozen=True)
class Coll:
    """A collection as the parts of a query: `SELECT <elem> FROM <source> WHERE <where>`."""

    source: sql.Composable
    where: tuple[sql.Composable, ...]
    elem: "Value"
    order: tuple[sql.Composable, ...]


Value = S | RowAlias | RowId | UserId | AuthUser | Path | Coll


def typed(expr: sql.Composable, type_: T.Type) -> Value:
    """Wrap SQL giving a value of `type_`: references stay traversable."""
    if isinstance(type_, T.Row):
        return RowId(expr, type_.entity)
    if isinstance(type_, T.User):
        return UserId(expr)
    return S(expr, type_)
