"""Typed expression to one SQL fragment (psycopg `sql` composition).

The compiler walks a tree the checker has already typed, so it never has to report
problems: every decision here is about SQL shape. Conventions (see docs/expressions.md):

- every identifier is `sql.Identifier`, taken from the definition's validated names;
  nothing is schema-qualified (`search_path` is set per transaction);
- `record` is `<alias>.<column>` in rules, and a row known by the `record.id` parameter in
  transition steps; a reference is followed with a scalar subquery by id;
- runtime values are named placeholders cast to their SQL type (`%(auth.id)s::uuid`);
- operators keep SQL's three-valued logic, and conditions are wrapped in
  `COALESCE(..., false)` at the top so that unknown never grants anything.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from runtime.definition.model import Definition, Field
from runtime.expressions import ast, functions as F, types as T
from runtime.expressions.collections import CollectionCompiler
from runtime.expressions.compiled import literal_name, path_name
from runtime.expressions.compile_ops import OperatorCompiler
from runtime.expressions.scope import Scope, row_member
from runtime.expressions.values import AuthUser, Coll, Path, RowAlias, RowId, S, UserId, Value, typed

ID = "id"


class Compiler(OperatorCompiler, CollectionCompiler):
    def __init__(self, definition: Definition, scope: Scope, types: dict[int, T.Type],
                 alias: str | None):
        self.definition = definition
        self.scope = scope
        self.types = types
        self.alias = alias
        self.params: dict[str, Any] = {}
        self.needs: set[tuple] = set()
        self.dyn_needs: set[tuple] = set()
        self.aliases = 0

    # -- bookkeeping -------------------------------------------------------------------
    def new_alias(self) -> str:
        self.aliases += 1
        return f"_x{self.aliases}"

    def type_of(self, node: ast.Node) -> T.Type:
        return self.types[id(node)]

    def literal(self, tag: str, text: str, value: Any, sql_type: str) -> sql.Composable:
        name = literal_name(tag, text)
        self.params[name] = value
        return sql.SQL("{}::" + sql_type).format(sql.Placeholder(name))

    def need(self, path: tuple, type_: T.Type) -> sql.Composable:
        self.needs.add(path)
        if isinstance(type_, T.Collection):
            elem = type_.elem
            base = "uuid" if isinstance(elem, (T.Row, T.User)) else \
                T.SQL_TYPES.get(T.plain(elem).name if isinstance(elem, T.Scalar) else "", "text")
            sql_type = base + "[]"
        elif isinstance(type_, T.Obj) or type_ == T.DYN:
            sql_type = "jsonb"          # an http/ai result or event as a whole, or any json value
            self.dyn_needs.add(path)
        else:
            sql_type = T.SQL_TYPES[T.plain(type_).name]
        return sql.SQL("{}::" + sql_type).format(sql.Placeholder(path_name(path)))

    # -- from values to SQL ------------------------------------------------------------
    def sql_of(self, v: Value, want: T.Type | None = None) -> sql.Composable:
        """Flatten a value into SQL; a json value is converted when `want` names a type."""
        if isinstance(v, (RowAlias, RowId, UserId, AuthUser)):
            return self.ref_id(v)
        if isinstance(v, Coll):
            return self.materialise(v)
        if isinstance(v, Path):
            if isinstance(v.type, (T.Row, T.User)):
                return self.need(v.path + (ID,), T.UUID)
            v = S(self.need(v.path, v.type), v.type)
        if v.type == T.DYN and want is not None and not T.is_nothing(want):
            return self.from_json(v.sql, want)
        return v.sql

    def ref_id(self, v: Value) -> sql.Composable:
        if isinstance(v, RowAlias):
            return sql.Identifier(v.alias, ID)
        if isinstance(v, (RowId, UserId)):
            return v.id
        if isinstance(v, AuthUser):
            return self.need(("auth", ID), T.UUID)
        return self.sql_of(v)

    def from_json(self, expr: sql.Composable, want: T.Type) -> sql.Composable:
        text = sql.SQL("({} #>> '{{}}')").format(expr)      # a json scalar as text; JSON null -> NULL
        if T.is_scalar(want, "string"):
            return text
        if T.is_scalar(want, *T.NUMERIC):
            return sql.SQL("CAST({} AS numeric)").format(text)   # 3.5 must not fail a cast to bigint
        name = "uuid" if T.ref_id_type(want) else T.SQL_TYPES.get(getattr(want, "name", ""), "text")
        return sql.SQL("CAST({} AS " + name + ")").format(text)

    def condition(self, node: ast.Node, env) -> sql.Composable:
        return self.sql_of(self.value(node, env), T.BOOL)

    # -- nodes -------------------------------------------------------------------------
    def value(self, node: ast.Node, env: dict[str, Value]) -> Value:
        return getattr(self, "_" + type(node).__name__.lower())(node, env)

    def _lit(self, node: ast.Lit, env) -> Value:
        if node.kind == "string":
            return S(self.literal("lit", node.value, node.value, "text"), T.STRING)
        if node.kind == "null":
            return S(sql.NULL, T.NULL)
        return S(sql.Literal(node.value), self.type_of(node))

    def _ident(self, node: ast.Ident, env) -> Value:
        name = node.name
        if name in env:
            return env[name]
        if name == "record":
            if self.alias is not None:
                return RowAlias(self.alias, self.scope.record)
            return Path(("record",), T.Row(self.scope.record))
        if name == "auth":
            return AuthUser()
        if name == "now":
            return S(sql.SQL("now()"), T.TIMESTAMP)
        if name in ("input", "secrets", "event") or name in self.scope.bindings:
            return Path((name,), self.type_of(node))
        return self.entity_coll(name)

    def _select(self, node: ast.Select, env) -> Value:
        base = self.value(node.operand, env)
        t = self.type_of(node)
        name = node.name
        if isinstance(base, Path):
            if isinstance(base.type, (T.Row, T.User)):
                base = typed(self.sql_of(base), base.type)
            else:
                return Path(base.path + (name,), t)
        if isinstance(base, AuthUser):
            return S(self.ref_id(base) if name == ID else self.need(("auth", name), t), t)
        if isinstance(base, UserId):
            if name == ID:
                return S(base.id, T.UUID)
            return S(self.lookup("_users", base.id, name), t)
        if isinstance(base, (RowAlias, RowId)):
            return self.row_field(base, name, t)
        return S(sql.SQL("({} -> {})").format(self.sql_of(base), self.literal("lit", name, name, "text")), t)

    def _index(self, node: ast.Index, env) -> Value:
        base = self.value(node.operand, env)
        key = node.index.value
        if isinstance(base, Path):
            return Path(base.path + (key,), T.DYN)
        key_sql = sql.Literal(key) if isinstance(key, int) else self.literal("lit", key, key, "text")
        return S(sql.SQL("({} -> {})").format(self.sql_of(base), key_sql), T.DYN)

    def row_field(self, row: RowAlias | RowId, name: str, t: T.Type) -> Value:
        row_id = self.ref_id(row)
        if name == ID:
            return S(row_id, T.UUID)
        found = row_member(self.definition, row.entity, name)
        if not isinstance(found, Field):
            source, ref_field = found
            return self.reverse_coll(source, ref_field, row_id)
        if isinstance(row, RowAlias):
            return typed(sql.Identifier(row.alias, name), t)
        return typed(self.lookup(row.entity, row.id, name), t)

    def lookup(self, table: str, row_id: sql.Composable, column: str) -> sql.Composable:
        """`(SELECT a.column FROM table AS a WHERE a.id = <row_id>)`: one step along a reference."""
        a = self.new_alias()
        return sql.SQL("(SELECT {} FROM {} AS {} WHERE {} = {})").format(
            sql.Identifier(a, column), sql.Identifier(table), sql.Identifier(a),
            sql.Identifier(a, ID), row_id)

    def _call(self, node: ast.Call, env) -> Value:
        args = ((node.target,) if node.target is not None else ()) + node.args
        t = self.type_of(node)
        if node.name == "duration":
            text = args[0].value
            return S(self.literal("dur", text, F.parse_duration(text), "interval"), t)
        if node.name == "timestamp":
            text = args[0].value
            return S(self.literal("ts", text, F.parse_timestamp(text), "timestamptz"), t)
        if node.name in F.COLLECTION_FUNCTIONS and isinstance(self.type_of(args[0]), T.Collection):
            return self.aggregate(node.name, self.coll_of(self.value(args[0], env)), t)
        fn = F.STRING_SIZE if node.name == "size" else F.SCALAR_FUNCTIONS[node.name]
        sqls = []
        for arg, want in zip(args, fn.params):
            v = self.value(arg, env)
            if fn is F.SCALAR_FUNCTIONS["string"] and self.type_of(arg) == T.DYN:
                return S(self.from_json(self.sql_of(v), T.STRING), t)
            sqls.append(self.sql_of(v, T.STRING if want != "any" else None))
        return S(F.render(fn, sqls), t)
