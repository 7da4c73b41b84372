"""SQL for collections: entities, reverse collections, list literals, macros, aggregates.

A collection stays a set of query parts (`Coll`: source, conditions, element) while macros
extend it (`filter` adds a condition, `map` replaces the element), and becomes SQL only at
the end: `EXISTS (...)`, `(SELECT count(*) ...)`, `x IN (SELECT ...)`, or an `ARRAY(...)`
when a step needs the values themselves. Each source gets a fresh alias `_x<n>`, so nested
macros refer to outer variables by alias (correlated subqueries).

Macros are two-valued: `exists` counts only elements where the predicate is true, `all`
fails on any element where it is not true (false or unknown), `sum` of nothing is 0.
"""

from __future__ import annotations

from psycopg import sql

from runtime.expressions import ast, types as T
from runtime.expressions.values import Coll, Path, RowAlias, S, Value, typed

_ORDER = ("created_at", "id")


class CollectionCompiler:
    def entity_coll(self, entity: str) -> Coll:
        a = self.new_alias()
        return Coll(sql.SQL("{} AS {}").format(sql.Identifier(entity), sql.Identifier(a)), (),
                    RowAlias(a, entity), tuple(sql.Identifier(a, c) for c in _ORDER))

    def reverse_coll(self, source: str, ref_field: str, parent_id: sql.Composable) -> Coll:
        """`record.orders`: the rows of `source` whose `ref_field` points at the parent."""
        coll = self.entity_coll(source)
        cond = sql.SQL("{} = {}").format(sql.Identifier(coll.elem.alias, ref_field), parent_id)
        return Coll(coll.source, (cond,), coll.elem, coll.order)

    def array_coll(self, array: sql.Composable, elem: T.Type) -> Coll:
        """Values from an SQL array (a list literal, a list bound by `let`), in array order."""
        if isinstance(elem, T.Row):
            coll = self.entity_coll(elem.entity)
            cond = sql.SQL("{} = ANY({})").format(sql.Identifier(coll.elem.alias, "id"), array)
            return Coll(coll.source, (cond,), coll.elem, coll.order)
        a = self.new_alias()
        source = sql.SQL("unnest({}) WITH ORDINALITY AS {}(v, n)").format(array, sql.Identifier(a))
        return Coll(source, (), typed(sql.Identifier(a, "v"), elem), (sql.Identifier(a, "n"),))

    def coll_of(self, v: Value) -> Coll:
        if isinstance(v, Coll):
            return v
        if isinstance(v, Path) and isinstance(v.type, T.Collection):
            return self.array_coll(self.sql_of(v), v.type.elem)
        raise AssertionError(f"not a collection: {v!r}")    # the checker rules this out

    def _listlit(self, node: ast.ListLit, env) -> Value:
        elem = self.type_of(node).elem
        want = T.UUID if T.ref_id_type(elem) else (T.STRING if elem == T.NULL else T.plain(elem))
        items = [self.sql_of(self.value(i, env), want) for i in node.items]
        array = sql.SQL("CAST(ARRAY[{}] AS {}[])").format(sql.SQL(", ").join(items),
                                                         sql.SQL(T.SQL_TYPES[want.name]))
        return self.array_coll(array, elem if isinstance(elem, T.Row) else want)

    # -- SQL from query parts ----------------------------------------------------------
    def select(self, coll: Coll, what: sql.Composable, extra: tuple = (),
               ordered: bool = False) -> sql.Composable:
        conds = coll.where + extra
        query = sql.SQL("SELECT {} FROM {}").format(what, coll.source)
        if conds:
            query = sql.SQL("{} WHERE {}").format(query, sql.SQL(" AND ").join(conds))
        if ordered and coll.order:
            query = sql.SQL("{} ORDER BY {}").format(query, sql.SQL(", ").join(coll.order))
        return query

    def materialise(self, coll: Coll) -> sql.Composable:
        """The collection's elements as an array (rows as their ids), in a stable order."""
        return sql.SQL("ARRAY({})").format(self.select(coll, self.sql_of(coll.elem), ordered=True))

    def _macro(self, node: ast.Macro, env) -> Value:
        coll = self.coll_of(self.value(node.target, env))
        inner = {**env, node.var: coll.elem}
        if node.guard is not None:
            coll = Coll(coll.source, coll.where + (self.condition(node.guard, inner),),
                        coll.elem, coll.order)
        if node.name == "map":
            return Coll(coll.source, coll.where, self.value(node.body, inner), coll.order)
        pred = self.condition(node.body, inner)
        if node.name == "filter":
            return Coll(coll.source, coll.where + (pred,), coll.elem, coll.order)
        one = sql.SQL("1")
        if node.name == "exists":
            return S(sql.SQL("EXISTS ({})").format(self.select(coll, one, (pred,))), T.BOOL)
        if node.name == "all":
            failing = sql.SQL("({}) IS NOT TRUE").format(pred)
            return S(sql.SQL("(NOT EXISTS ({}))").format(self.select(coll, one, (failing,))), T.BOOL)
        count = self.select(coll, sql.SQL("count(*)"), (pred,))
        return S(sql.SQL("(({}) = 1)").format(count), T.BOOL)          # exists_one

    def aggregate(self, name: str, coll: Coll, t: T.Type) -> Value:
        if name == "size":
            return S(sql.SQL("({})").format(self.select(coll, sql.SQL("count(*)"))), T.INT)
        elem = self.sql_of(coll.elem, None if t == T.DYN else t)   # json elements become numbers
        if name == "sum":
            total = sql.SQL("COALESCE(sum({}), 0)").format(elem)
            if t == T.INT:       # sum(bigint) is numeric in Postgres; CEL says int
                total = sql.SQL("CAST({} AS bigint)").format(total)
            return S(sql.SQL("({})").format(self.select(coll, total)), t)
        what = sql.SQL(name + "({})").format(elem)
        return S(sql.SQL("({})").format(self.select(coll, what)), t)
