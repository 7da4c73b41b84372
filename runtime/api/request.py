"""The typed values of a data API request, as `grammar.py` parses them from the query string
and headers (PostgREST's `ApiRequest`). Nothing here knows the tenant's definition: names
are still words from the URL; the planners (`read.py`, `write.py`) resolve them against
the entity and answer 42703 / PGRST200 for the ones that do not exist.

The shapes, from the outside in:

- `ApiRequest`: method, `select` tree, conditions and orders and ranges per embedding
  path, `Preferences`, the wanted representation (`single`), `columns`, `on_conflict`;
- `select`: `Star`, `Column` (a field, maybe a JSON path and a cast, maybe an alias) and
  `Embed` (a relationship with its own select list);
- conditions: `Filter` (field, operator, value, negated) and `Logic` (and/or of conditions).

Everything is frozen and hashable, so a parsed request can be a cache key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

# Embedding path of a condition/order/range: () is the requested entity, ("customer",)
# its embedded `customer`, ("lines", "product") deeper. Names are aliases when the select
# gave one, else relationship names.
EmbedPath = tuple[str, ...]


@dataclass(frozen=True)
class JsonStep:
    """One JSON path step: `->` (json) or `->>` (text), with a key or an array index."""

    arrow: str                 # "->" | "->>"
    key: str | int


@dataclass(frozen=True)
class FieldRef:
    """A column, maybe followed by a JSON path: `meta->tags->>0`."""

    name: str
    json_path: tuple[JsonStep, ...] = ()

    @property
    def output_name(self) -> str:
        """The key PostgREST gives a selected field: the last JSON key, else the column."""
        return str(self.json_path[-1].key) if self.json_path else self.name


@dataclass(frozen=True)
class Star:
    """`*`: every visible column of the entity."""


@dataclass(frozen=True)
class Column:
    field: FieldRef
    alias: str | None = None
    cast: str | None = None

    @property
    def key(self) -> str:
        return self.alias or self.field.output_name


@dataclass(frozen=True)
class Embed:
    """`alias:relation!hint!inner(select...)`; an empty select embeds for filtering only."""

    relation: str
    select: tuple["SelectItem", ...]
    alias: str | None = None
    hint: str | None = None
    inner: bool = False

    @property
    def key(self) -> str:
        return self.alias or self.relation


SelectItem = Union[Star, Column, Embed]

# Operators and what their value is: a word (str), a list (tuple of str), or a keyword.
SIMPLE_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "isdistinct")
LIST_OPS = ("in",)
JSON_OPS = ("cs", "cd", "ov")
FTS_OPS = ("fts", "plfts", "phfts", "wfts")
IS_VALUES = ("null", "not_null", "true", "false", "unknown")
OPERATORS = SIMPLE_OPS + LIST_OPS + ("is",) + JSON_OPS + FTS_OPS
# ops that take `(any)` / `(all)`: `like(any).{a*,b*}`
QUANTIFIABLE_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch")


@dataclass(frozen=True)
class Filter:
    """`field=[not.]op[(modifier)].value`.

    `value` is a str for most operators, a tuple of str for `in` and quantified operators,
    one of IS_VALUES for `is`. `modifier` is the text search configuration of the fts
    family (`fts(english)`) or `any`/`all` for quantified operators.
    """

    field: FieldRef
    op: str
    value: str | tuple[str, ...]
    negated: bool = False
    modifier: str | None = None


@dataclass(frozen=True)
class Logic:
    """`and=(...)` / `or=(...)`, maybe negated, with filters and nested logic inside."""

    op: str                                   # "and" | "or"
    children: tuple["Condition", ...]
    negated: bool = False


Condition = Union[Filter, Logic]


@dataclass(frozen=True)
class OrderTerm:
    field: FieldRef
    descending: bool = False
    nulls: str | None = None                  # "first" | "last" | None (Postgres default)
    relation: str | None = None               # `order=customer(name)`: a to-one embed's column


@dataclass(frozen=True)
class Range:
    offset: int = 0
    limit: int | None = None


@dataclass(frozen=True)
class Preferences:
    """The `Prefer` header (RFC 7240), as PostgREST reads it. Unknown preferences are
    listed in `invalid` (an error only with `handling=strict`)."""

    return_: str | None = None                # minimal | headers-only | representation
    count: str | None = None                  # exact | planned | estimated
    resolution: str | None = None             # merge-duplicates | ignore-duplicates
    missing: str | None = None                # default | null
    handling: str | None = None               # lenient | strict
    tx: str | None = None                     # commit | rollback
    max_affected: int | None = None
    invalid: tuple[str, ...] = ()

    @property
    def applied(self) -> str:
        """`Preference-Applied`: the preferences this request honours."""
        parts = []
        if self.return_:
            parts.append(f"return={self.return_}")
        if self.count:
            parts.append(f"count={self.count}")
        if self.resolution:
            parts.append(f"resolution={self.resolution}")
        if self.missing:
            parts.append(f"missing={self.missing}")
        if self.handling:
            parts.append(f"handling={self.handling}")
        return ", ".join(parts)


@dataclass(frozen=True)
class ApiRequest:
    """A parsed data API request for one entity."""

    method: str
    select: tuple[SelectItem, ...] = (Star(),)
    conditions: tuple[tuple[EmbedPath, Condition], ...] = ()    # all ANDed, per level
    orders: tuple[tuple[EmbedPath, tuple[OrderTerm, ...]], ...] = ()
    ranges: tuple[tuple[EmbedPath, Range], ...] = ()
    preferences: Preferences = field(default_factory=Preferences)
    single: bool = False                      # Accept: application/vnd.pgrst.object+json
    columns: tuple[str, ...] | None = None    # POST/PATCH `columns=`
    on_conflict: tuple[str, ...] | None = None

    def conditions_at(self, path: EmbedPath) -> tuple[Condition, ...]:
        return tuple(c for p, c in self.conditions if p == path)

    def order_at(self, path: EmbedPath) -> tuple[OrderTerm, ...]:
        return next((terms for p, terms in self.orders if p == path), ())

    def range_at(self, path: EmbedPath) -> Range:
        return next((r for p, r in self.ranges if p == path), Range())

    @property
    def embed_paths(self) -> set[EmbedPath]:
        """Every embedding path a condition, order or range names (checked by the planner)."""
        paths = {p for p, _ in self.conditions} | {p for p, _ in self.orders} | {p for p, _ in self.ranges}
        paths.discard(())
        return paths
