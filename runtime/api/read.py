"""Reads: an `ApiRequest` becomes a `ReadPlan` (names resolved, access rules attached at
every level), the plan becomes ONE SQL statement, and Postgres renders the JSON body.

The statement, for `Order?select=id,customer(name),lines(*)&status=eq.paid&limit=20`:

    SELECT coalesce(json_agg(_r.*), '[]')::text, count(*)
    FROM (SELECT r."id" AS "id",
                 (SELECT row_to_json(_r1.*) FROM (SELECT r1."name" AS "name" FROM "Customer" AS r1
                      WHERE r1."id" = r."customer" AND <Customer's read rule over r1>) AS _r1) AS "customer",
                 (SELECT coalesce(json_agg(_r2.*), '[]') FROM (SELECT ... FROM "OrderLine" AS r2
                      WHERE r2."order" = r."id" AND <OrderLine's read rule over r2>) AS _r2) AS "lines"
          FROM "Order" AS r
          WHERE <Order's read rule over r> AND (r."status" = CAST(%(p1)s AS text))
          LIMIT %(p2)s OFFSET %(p3)s) AS _r

Every identifier is a `sql.Identifier` of a resolved name, every value a bound parameter
named `p<n>`. A caller sees the rows the entity's `read` rule allows at every level: an
embedded row it may not read is absent (to-many) or null (to-one). An entity without a
`read` rule reads as empty for everyone but the service key (deny by default, and a list
is never "all or 403"). The service key skips access rules.

`Prefer: count=exact` adds the filtered total as a third column (the same WHERE, no limit).
The write side builds its `return=representation` answers with `plan_read(source=...)`
and `read_sql`, and its PATCH/DELETE filters with `conditions_sql`.

The SQL is built once per request *shape* (`split_values`: the request without its filter
values and ranges) for each resource and kind of caller, and kept rendered
(`PreparedRead`); a request then costs parsing, binding its values and the caller's rule
parameters, and one round trip (`runtime.db.tenant_statement`: the role switch and the
statement in one message, the statement prepared once per pooled connection).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import psycopg
from django.conf import settings
from psycopg import sql

from runtime.api.errors import ApiError, bad_request, from_postgres
from runtime.api.grammar import parse_request
from runtime.api.request import (
    FTS_OPS, ApiRequest, Column, Condition, Embed, EmbedPath, FieldRef, Filter, Logic, OrderTerm, Preferences,
    Range, Star,
)
from runtime.api.resource import Relationship, Resource, resources_of
from runtime.api.respond import read_response
from runtime.compile.backend import ROW_ALIAS
from runtime.migrations.tables import SEARCH_COLUMN, SEARCH_CONFIG

DEFAULT_MAX_ROWS = 1000      # Supabase's default `max_rows`: a list never answers more

# casts a select may ask for (`total::text`): URL words -> SQL types
CASTS = {
    "text": "text", "varchar": "text", "int": "integer", "integer": "integer", "int4": "integer",
    "bigint": "bigint", "int8": "bigint", "smallint": "smallint", "int2": "smallint", "numeric": "numeric",
    "decimal": "numeric", "real": "real", "float4": "real", "float": "double precision",
    "float8": "double precision", "double": "double precision", "boolean": "boolean", "bool": "boolean",
    "date": "date", "timestamptz": "timestamptz", "timestamp": "timestamp", "time": "time", "json": "json",
    "jsonb": "jsonb", "uuid": "uuid",
}
# text search configurations every Postgres ships
TS_CONFIGS = frozenset({
    "simple", "arabic", "danish", "dutch", "english", "finnish", "french", "german", "greek", "hungarian",
    "indonesian", "irish", "italian", "lithuanian", "nepali", "norwegian", "portuguese", "romanian", "russian",
    "spanish", "swedish", "tamil", "turkish",
})
_TS_FUNCTIONS = {"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery",
                 "wfts": "websearch_to_tsquery"}
_COMPARE = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
            "like": "LIKE", "ilike": "ILIKE", "match": "~", "imatch": "~*"}
_TEXT_OPS = ("like", "ilike", "match", "imatch")
_IS = {"null": "IS NULL", "not_null": "IS NOT NULL", "true": "IS TRUE", "false": "IS FALSE", "unknown": "IS UNKNOWN"}
# Postgres errors a caller's values or casts can cause in a read (the SQL itself is ours):
# bad tsquery syntax, impossible casts, operators on the wrong type, too deep or too big.
_CALLER_ERRORS = {"42601": "the text search query is not valid", "42846": "the cast is not possible",
                  "42883": "the operator does not apply to this field", "42804": "the value has the wrong type",
                  "54000": "a value is too large", "54001": "the request is too complex"}


@dataclass(frozen=True)
class Slot:
    """A caller's value left out of a request's shape (see `split_values`): the SQL names it
    `v<index>`, and each request of that shape binds its own value there."""

    index: int


class Params:
    """Bound parameters named `p1`, `p2`, ... (never '.' or ':', which the rules' own
    placeholders use), plus the rules' parameters. `Slot`s become `v<n>` placeholders whose
    values the caller binds (`PreparedRead.params`)."""

    __slots__ = ("values", "_n")

    def __init__(self):
        self.values: dict = {}
        self._n = 0

    def add(self, value) -> sql.Placeholder:
        if isinstance(value, Slot):
            return sql.Placeholder(f"v{value.index}")
        self._n += 1
        name = f"p{self._n}"
        self.values[name] = value
        return sql.Placeholder(name)


@dataclass
class Level:
    """One entity in the read: the requested one, or an embedded one inside its parent."""

    resource: Resource
    alias: str
    source: sql.Composable
    outputs: dict[str, sql.Composable] = field(default_factory=dict)   # JSON key -> SQL
    where: list[sql.Composable] = field(default_factory=list)
    order: list[sql.Composable] = field(default_factory=list)
    range: Range = Range()
    limit: sql.Composable | None = None       # the range in SQL, set by `bind_range`
    offset: sql.Composable | None = None

    def bind_range(self, params: Params) -> None:
        """The limit is written into the SQL: with `LIMIT $1` Postgres could not plan a
        prepared statement once (a generic plan guesses 10% of the rows), and planned it
        again on every execution. An offset stays a parameter (`Slot`) in prepared reads."""
        limit, offset = self.range.limit, self.range.offset
        self.limit = None if limit is None else params.add(limit) if isinstance(limit, Slot) else sql.Literal(int(limit))
        self.offset = params.add(offset) if offset else None


@dataclass(frozen=True)
class ReadPlan:
    root: Level
    params: dict
    count: bool = False
    single: bool = False
    head: bool = False
    rules: tuple = ()          # the CompiledExprs of the access rules in the SQL


# values and fields ----------------------------------------------------------------------


def value_type(column_type: str) -> str:
    """The SQL type a filter value is cast to for a column: `varchar(200)` compares as text."""
    if column_type.startswith("varchar") or column_type == "text":
        return "text"
    if column_type.startswith("numeric"):
        return "numeric"
    return column_type


def _safe_key(key: str) -> str:
    """A JSON key of the output is an SQL column alias: short, and without '%' (which
    psycopg would read as a placeholder)."""
    if "%" in key or "\x00" in key or len(key.encode()) > 63 or not key:
        raise bad_request(f"The output name '{key[:80]}' is not usable; give the field an alias (alias:field).")
    return key


def field_sql(resource: Resource, alias: str, ref: FieldRef, params: Params) -> tuple[sql.Composable, str]:
    """A field (maybe a JSON path into it) as SQL, and the SQL type of the result."""
    column = resource.column(ref.name)
    expr: sql.Composable = sql.Identifier(alias, ref.name)
    if not ref.json_path:
        return expr, value_type(column.type)
    if column.type != "jsonb":
        raise bad_request(f"'{ref.name}' is not a json field: JSON paths (->, ->>) apply to json fields only.")
    for step in ref.json_path:
        key_type = "integer" if isinstance(step.key, int) else "text"
        expr = sql.SQL("({} {} CAST({} AS {}))").format(expr, sql.SQL(step.arrow), params.add(step.key),
                                                        sql.SQL(key_type))
    return expr, ("text" if ref.json_path[-1].arrow == "->>" else "jsonb")


# conditions -----------------------------------------------------------------------------


def conditions_sql(resource: Resource, conditions, alias: str, params: Params) -> list[sql.Composable]:
    """Filters and logic trees over `alias` as WHERE parts (ANDed by the caller)."""
    return [condition_sql(resource, c, alias, params) for c in conditions]


def condition_sql(resource: Resource, cond: Condition, alias: str, params: Params) -> sql.Composable:
    if isinstance(cond, Logic):
        joiner = sql.SQL(" AND " if cond.op == "and" else " OR ")
        inner = sql.SQL("({})").format(joiner.join(condition_sql(resource, c, alias, params) for c in cond.children))
    else:
        inner = filter_sql(resource, cond, alias, params)
    return sql.SQL("(NOT {})").format(inner) if cond.negated else inner


def filter_value(f: Filter):
    """The parameter a filter binds: `*` is the wildcard of like/ilike patterns, lists are
    lists. A `Slot` stays a slot (its value was converted when it was taken out)."""
    if isinstance(f.value, Slot):
        return f.value
    if isinstance(f.value, tuple):
        return [v.replace("*", "%") for v in f.value] if f.op in ("like", "ilike") else list(f.value)
    return f.value.replace("*", "%") if f.op in ("like", "ilike") else f.value


def filter_sql(resource: Resource, f: Filter, alias: str, params: Params) -> sql.Composable:
    expr, typ = field_sql(resource, alias, f.field, params)
    op = f.op
    if op == "is":
        if f.value in ("true", "false", "unknown") and typ != "boolean":
            raise bad_request(f"is.{f.value} applies to boolean fields; '{f.field.name}' is not one.")
        return sql.SQL("({} {})").format(expr, sql.SQL(_IS[f.value]))
    if op in _TEXT_OPS:
        expr, typ = sql.SQL("CAST({} AS text)").format(expr), "text"
    if op == "in" or f.modifier in ("any", "all"):
        values = filter_value(f)
        compare = "=" if op == "in" else _COMPARE[op]
        quantifier = "ALL" if f.modifier == "all" else "ANY"
        return sql.SQL("({} {} {}(CAST({} AS {})))").format(
            expr, sql.SQL(compare), sql.SQL(quantifier), params.add(values), sql.SQL(typ + "[]"))
    if op in _COMPARE:
        return sql.SQL("({} {} CAST({} AS {}))").format(expr, sql.SQL(_COMPARE[op]), params.add(filter_value(f)),
                                                        sql.SQL(typ))
    if op == "isdistinct":
        return sql.SQL("({} IS DISTINCT FROM CAST({} AS {}))").format(expr, params.add(f.value), sql.SQL(typ))
    if op in ("cs", "cd", "ov"):
        if typ not in ("jsonb",) or op == "ov":
            raise bad_request(f"{op} applies to json fields (cs: contains, cd: contained in); "
                              f"'{f.field.name}' is {typ}.")
        return sql.SQL("({} {} CAST({} AS jsonb))").format(expr, sql.SQL("@>" if op == "cs" else "<@"),
                                                           params.add(f.value))
    if op in FTS_OPS:
        return _search_sql(resource, f, expr, typ, alias, params)
    raise bad_request(f"The operator {op} is not supported here.")   # grammar lets none through


def _search_sql(resource, f: Filter, expr, typ: str, alias: str, params: Params) -> sql.Composable:
    """Full-text search. On a `search` field with the default configuration the entity's
    indexed search document (`_search`, every search field) answers; elsewhere the field
    alone is turned into a tsvector (no index)."""
    config = f.modifier or SEARCH_CONFIG
    if config not in TS_CONFIGS:
        raise bad_request(f"Unknown text search configuration '{config[:40]}'.",
                          hint="Use one of " + ", ".join(sorted(TS_CONFIGS)) + ".")
    if typ != "text" or f.field.json_path:
        raise bad_request(f"{f.op} applies to text fields; '{f.field.name}' is not one.")
    query = sql.SQL("{}(CAST({} AS regconfig), {})").format(
        sql.SQL(_TS_FUNCTIONS[f.op]), params.add(config), params.add(f.value))
    if config == SEARCH_CONFIG and f.field.name in resource.search:
        return sql.SQL("({} @@ {})").format(sql.Identifier(alias, SEARCH_COLUMN), query)
    return sql.SQL("(to_tsvector(CAST({} AS regconfig), {}) @@ {})").format(params.add(config), expr, query)


def _where_form(rule: sql.Composable) -> sql.Composable:
    """A compiled rule is `COALESCE(<expr>, false)` so that unknown never grants; as a
    conjunct of a WHERE, NULL already excludes the row, and without the COALESCE Postgres
    can use indexes (`owner = $1`)."""
    parts = getattr(rule, "_obj", None)
    if (isinstance(rule, sql.Composed) and len(parts) == 3 and parts[0] == sql.SQL("COALESCE(")
            and parts[2] == sql.SQL(", false)")):
        return sql.SQL("({})").format(parts[1])
    return rule


# the planner ----------------------------------------------------------------------------


class _Planner:
    def __init__(self, request: ApiRequest, caller, params: Params, *, apply_rules: bool, bind_rules: bool):
        self.request = request
        self.caller = caller
        self.params = params
        self.apply_rules = apply_rules and not caller.is_service
        self.bind_rules = bind_rules
        self.aliases = 0
        self.used_paths: set[EmbedPath] = set()
        self.rules: dict[int, object] = {}     # the rules used, once each

    def alias(self) -> str:
        self.aliases += 1
        return f"r{self.aliases}"

    def rule(self, resource: Resource, alias: str) -> sql.Composable | None:
        if not self.apply_rules:
            return None
        rule = resource.rule("read", alias)
        if rule is None:
            return sql.SQL("false")       # deny by default: no read rule, no rows
        if id(rule) not in self.rules:
            self.rules[id(rule)] = rule
            if self.bind_rules:
                self.params.values.update(rule.bind(auth=self.caller.auth))
        return _where_form(rule.sql)

    def level(self, resource: Resource, select, paths: set[EmbedPath], alias: str, source: sql.Composable,
              join: sql.Composable | None = None) -> Level:
        self.used_paths |= paths
        level = Level(resource, alias, source)
        if join is not None:
            level.where.append(join)
        rule = self.rule(resource, alias)
        if rule is not None:
            level.where.append(rule)
        for item in select:
            if isinstance(item, Star):
                for name in resource.columns:
                    level.outputs[name] = sql.Identifier(alias, name)
            elif isinstance(item, Column):
                expr, _ = field_sql(resource, alias, item.field, self.params)
                if item.cast:
                    cast = CASTS.get(item.cast.lower())
                    if cast is None:
                        raise bad_request(f"Unknown cast '{item.cast[:40]}'.", hint="Casts: " + ", ".join(CASTS) + ".")
                    expr = sql.SQL("CAST({} AS {})").format(expr, sql.SQL(cast))
                level.outputs[_safe_key(item.key)] = expr
            else:
                self.embed(level, item, paths)
        for path in sorted(paths):
            level.where += conditions_sql(resource, self.request.conditions_at(path), alias, self.params)
        orders = next((self.request.order_at(p) for p in sorted(paths) if self.request.order_at(p)), ())
        level.order = [self.order_term(resource, alias, term) for term in orders]
        level.range = next((self.request.range_at(p) for p in sorted(paths) if p in dict(self.request.ranges)),
                           Range())
        if alias != ROW_ALIAS:       # the top level's range is capped first (plan_read)
            level.bind_range(self.params)
        return level

    def embed(self, parent: Level, item: Embed, parent_paths: set[EmbedPath]) -> None:
        rel = parent.resource.relationship(item.relation, item.hint)
        target = resources_of(parent.resource.backend)[rel.target]
        names = {item.relation} | ({item.alias} if item.alias else set())
        paths = {p + (name,) for p in parent_paths for name in names}
        alias = self.alias()
        child = self.level(target, item.select, paths, alias, sql.Identifier(target.name),
                           rel.join(parent.alias, alias))
        if item.select:
            parent.outputs[_safe_key(item.key)] = embed_sql(child, rel)
        if item.inner:
            parent.where.append(sql.SQL("EXISTS (SELECT 1 FROM {} AS {}{})").format(
                child.source, sql.Identifier(child.alias), _where_sql(child.where)))

    def order_term(self, resource: Resource, alias: str, term: OrderTerm) -> sql.Composable:
        if term.relation is None:
            expr, _ = field_sql(resource, alias, term.field, self.params)
        else:
            # `order=customer(name)`: the to-one row's column, as the caller may read it
            rel = resource.relationship(term.relation)
            if not rel.to_one:
                raise bad_request(f"Ordering by '{term.relation}' needs a to-one relationship; it is a collection.")
            target = resources_of(resource.backend)[rel.target]
            inner = self.alias()
            column, _ = field_sql(target, inner, term.field, self.params)
            where = [rel.join(alias, inner)] + [r for r in [self.rule(target, inner)] if r is not None]
            expr = sql.SQL("(SELECT {} FROM {} AS {}{})").format(column, sql.Identifier(target.name),
                                                                sql.Identifier(inner), _where_sql(where))
        direction = sql.SQL(" DESC" if term.descending else " ASC")
        nulls = sql.SQL({"first": " NULLS FIRST", "last": " NULLS LAST", None: ""}[term.nulls])
        return sql.Composed([expr, direction, nulls])


def plan_read(resource: Resource, request: ApiRequest, caller, *, source: sql.Composable | None = None,
              apply_rules: bool = True, max_rows: int | None = None, params: Params | None = None,
              bind_rules: bool = True) -> ReadPlan:
    """Resolve the request against `resource`: a `ReadPlan` with the read rule of every entity
    it touches. `source` replaces the top-level table (a CTE of written rows, for writes).
    `bind_rules=False` leaves the rules' caller-dependent parameters out of `params` (they
    are in `plan.rules`)."""
    params = params or Params()
    planner = _Planner(request, caller, params, apply_rules=apply_rules, bind_rules=bind_rules)
    root = planner.level(resource, request.select, {()}, ROW_ALIAS, source or sql.Identifier(resource.name))
    unknown = request.embed_paths - planner.used_paths
    if unknown:
        path = ".".join(sorted(unknown)[0])
        raise bad_request(f"'{path[:80]}' is not an embedded resource in this request", code="PGRST108",
                          hint=f"Add '{path.split('.')[-1][:80]}(...)' to select to filter, order or limit it.")
    max_rows = _max_rows() if max_rows is None else max_rows
    if max_rows and (root.range.limit is None or root.range.limit > max_rows):
        root.range = Range(root.range.offset, max_rows)
    root.bind_range(params)
    return ReadPlan(root, params.values, count=request.preferences.count is not None, single=request.single,
                    head=request.method == "HEAD", rules=tuple(planner.rules.values()))


def _max_rows() -> int | None:
    return getattr(settings, "DATA_API_MAX_ROWS", DEFAULT_MAX_ROWS)


# SQL ------------------------------------------------------------------------------------


def _where_sql(parts: list[sql.Composable]) -> sql.Composable:
    if not parts:
        return sql.SQL("")
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts)


def level_sql(level: Level) -> sql.Composable:
    """`SELECT <outputs> FROM <source> AS <alias> WHERE ... ORDER BY ... LIMIT ... OFFSET ...`"""
    outputs = sql.SQL(", ").join(sql.SQL("{} AS {}").format(expr, sql.Identifier(key))
                                 for key, expr in level.outputs.items())
    query = sql.SQL("SELECT {} FROM {} AS {}{}").format(outputs, level.source, sql.Identifier(level.alias),
                                                         _where_sql(level.where))
    if level.order:
        query += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(level.order)
    if level.limit is not None:
        query += sql.SQL(" LIMIT {}").format(level.limit)
    if level.offset is not None:
        query += sql.SQL(" OFFSET {}").format(level.offset)
    return query


def embed_sql(child: Level, rel: Relationship) -> sql.Composable:
    row = sql.Identifier("_" + child.alias)
    if rel.to_one:
        return sql.SQL("(SELECT row_to_json({}.*) FROM ({}) AS {})").format(row, level_sql(child), row)
    return sql.SQL("(SELECT coalesce(json_agg({}.*), '[]') FROM ({}) AS {})").format(row, level_sql(child), row)


def read_sql(plan: ReadPlan) -> sql.Composable:
    """The one statement: (body text, rows in the page[, total rows])."""
    root = plan.root
    body = sql.SQL("NULL::text") if plan.head else sql.SQL("coalesce(json_agg(_r.*), '[]')::text")
    total = sql.SQL("")
    if plan.count:
        total = sql.SQL(", (SELECT count(*) FROM {} AS {}{})").format(root.source, sql.Identifier(root.alias),
                                                                      _where_sql(root.where))
    return sql.SQL("SELECT {}, count(*){} FROM ({}) AS _r").format(body, total, level_sql(root))


# prepared reads: one plan per request shape ---------------------------------------------


def split_values(api: ApiRequest, max_rows: int | None) -> tuple[ApiRequest, list]:
    """The request's shape (filter values and ranges replaced by `Slot`s) and those values.

    Requests of one shape plan to the same SQL, so the SQL is built once per shape and
    each request only binds its values. What decides the SQL stays in the shape: names,
    operators, `is` keywords, search configurations, JSON keys, limits (see
    `Level.bind_range`), whether there is an offset. The top level's limit is capped at
    `max_rows` here.

    >>> from runtime.api.grammar import parse_query
    >>> shape, values = split_values(parse_query("GET", [("title", "like.*a*"), ("done", "is.true"),
    ...                                                 ("offset", "5")]), 1000)
    >>> shape.conditions[0][1].value, shape.conditions[1][1].value, shape.ranges, values
    (Slot(index=0), 'true', (((), Range(offset=Slot(index=1), limit=1000)),), ['%a%', 5])
    """
    values: list = []

    def slot(value) -> Slot:
        values.append(value)
        return Slot(len(values) - 1)

    def strip(cond: Condition) -> Condition:
        if isinstance(cond, Logic):
            return _replaced(cond, children=tuple(strip(c) for c in cond.children))
        if cond.op == "is":
            return cond
        return _replaced(cond, value=slot(filter_value(cond)))

    conditions = tuple((path, strip(cond)) for path, cond in api.conditions)
    ranges = dict(api.ranges)
    root = ranges.get((), _NO_RANGE)
    if max_rows and (root.limit is None or root.limit > max_rows):
        ranges[()] = Range(root.offset, max_rows)
    if all(not r.offset for r in ranges.values()):
        shaped = tuple(sorted(ranges.items()))   # the usual case: no offset, nothing to take out
    else:
        shaped = tuple((path, Range(slot(r.offset) if r.offset else 0, r.limit)) for path, r in sorted(ranges.items()))
    return _replaced(api, conditions=conditions, ranges=shaped, preferences=_count_only(api.preferences.count),
                     single=False), values


_NO_RANGE = Range()


def _replaced(original, /, **changes):
    """`dataclasses.replace` for the frozen request types, without running `__init__`
    again (they have no `__post_init__`): the same value, a fraction of the time."""
    made = object.__new__(type(original))
    made.__dict__.update(original.__dict__)
    made.__dict__.update(changes)
    return made


@lru_cache(8)
def _count_only(count: str | None) -> Preferences:
    """The preferences a read's shape keeps (only `count` changes its SQL), one per value."""
    return Preferences(count=count)


@dataclass(frozen=True)
class PreparedRead:
    """A request shape's SQL, rendered once, with the parameters every request of the shape
    shares and the rules whose parameters depend on the caller."""

    query: str
    constants: dict
    rules: tuple
    count: bool
    head: bool

    def params(self, values: list, caller) -> dict:
        params = dict(self.constants)
        for rule in self.rules:
            params.update(rule.bind(auth=caller.auth))
        params.update((f"v{i}", value) for i, value in enumerate(values))
        return params


MAX_PREPARED = 2048
_prepared: OrderedDict[tuple, PreparedRead] = OrderedDict()
_prepared_lock = threading.Lock()


def prepared_read(resource: Resource, shape: ApiRequest, caller) -> PreparedRead:
    """The SQL of a request shape for this resource and kind of caller, from the cache or
    planned now. The key holds the Resource itself, whose backend is one compiled version."""
    key = (resource, caller.is_service, shape)
    with _prepared_lock:
        prepared = _prepared.get(key)
        if prepared is not None:
            _prepared.move_to_end(key)
            return prepared
    planner_params = Params()
    plan = plan_read(resource, shape, caller, max_rows=0, params=planner_params, bind_rules=False)
    prepared = PreparedRead(read_sql(plan).as_string(None), dict(planner_params.values), plan.rules, plan.count,
                            plan.head)
    with _prepared_lock:
        _prepared[key] = prepared
        while len(_prepared) > MAX_PREPARED:
            _prepared.popitem(last=False)
    return prepared


# execution ------------------------------------------------------------------------------


def caller_error(exc: psycopg.Error) -> ApiError:
    """A Postgres error as the caller's 400 when its values caused it, else `from_postgres`."""
    state = getattr(exc, "sqlstate", None) or ""
    if state in _CALLER_ERRORS:
        return ApiError(400, state, _CALLER_ERRORS[state], None, None)
    return from_postgres(exc)


def execute_read(context, query, params: dict, count: bool) -> tuple[str | None, int, int | None]:
    """Run the one statement under the tenant's role: (body, rows in the page, total)."""
    try:
        row = context.statement(query, params)
    except psycopg.Error as exc:
        raise caller_error(exc) from None
    return row[0], row[1], (row[2] if count else None)


def handle_read(request, context, resource: Resource):
    """GET and HEAD on `rest/v1/<Entity>`."""
    api = parse_request(request)
    shape, values = split_values(api, _max_rows())
    prepared = prepared_read(resource, shape, context.caller)
    body, page, total = execute_read(context, prepared.query, prepared.params(values, context.caller),
                                     prepared.count)
    applied = f"count={api.preferences.count}" if api.preferences.count else ""
    return read_response(body=body, page=page, total=total, offset=api.range_at(()).offset, single=api.single,
                         head=prepared.head, applied=applied)
