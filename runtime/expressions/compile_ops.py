"""SQL for the operators: comparisons, `in`, arithmetic, logic and the ternary.

A mixin of `compile.Compiler`. Every operator is parenthesised, so the fragment can be
embedded anywhere without precedence surprises. Null handling (docs/expressions.md):
`x == null` is `IS NULL`; any other comparison with a NULL operand is unknown (SQL's
three-valued logic, so `!` of unknown stays unknown); division by zero is unknown rather
than an error, so a rule never aborts a request.
"""

from __future__ import annotations

from psycopg import sql

from runtime.expressions import ast, types as T
from runtime.expressions.values import S, Value, typed

_SQL_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
            "+": "+", "-": "-", "*": "*"}


def _want(mine: T.Type, other: T.Type) -> T.Type | None:
    """The type a json operand converts to: the other side's (references compare as uuids)."""
    if mine != T.DYN or T.is_nothing(other):
        return None
    return T.UUID if T.ref_id_type(other) else T.plain(other)


def _op(template: str, *parts: sql.Composable) -> sql.Composable:
    return sql.SQL(template).format(*parts)


class OperatorCompiler:
    def _unary(self, node: ast.Unary, env) -> Value:
        if node.op == "!":
            return S(_op("(NOT {})", self.condition(node.operand, env)), T.BOOL)
        t = self.type_of(node)
        operand = self.sql_of(self.value(node.operand, env), T.DECIMAL if t == T.DYN else None)
        return S(_op("(- {})", operand), T.DECIMAL if t == T.DYN else t)

    def _cond(self, node: ast.Cond, env) -> Value:
        t = self.type_of(node)
        want = T.UUID if T.ref_id_type(t) else t
        # A simple CASE on the condition: unknown matches neither branch, so the result is
        # unknown, not the `else` branch (which could grant access on a NULL).
        return typed(_op("(CASE {} WHEN true THEN {} WHEN false THEN {} END)",
                         self.condition(node.cond, env),
                         self.sql_of(self.value(node.then, env), want),
                         self.sql_of(self.value(node.other, env), want)), t)

    def _binary(self, node: ast.Binary, env) -> Value:
        op = node.op
        if op in ("&&", "||"):
            word = "AND" if op == "&&" else "OR"
            return S(_op("({} " + word + " {})", self.condition(node.left, env),
                         self.condition(node.right, env)), T.BOOL)
        if op == "in":
            return self.membership(node, env)
        ta, tb = self.type_of(node.left), self.type_of(node.right)
        if op in ("==", "!=") and (ta == T.NULL or tb == T.NULL):
            return self.null_test(node, env)
        a = self.sql_of(self.value(node.left, env), _want(ta, tb))
        b = self.sql_of(self.value(node.right, env), _want(tb, ta))
        t = self.type_of(node)
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return S(_op("({} " + _SQL_OPS[op] + " {})", a, b), T.BOOL)
        return S(self.arithmetic(op, a, b, T.plain(ta), T.plain(tb), t), t)

    def null_test(self, node: ast.Binary, env) -> Value:
        ta = self.type_of(node.left)
        other = node.right if ta == T.NULL else node.left
        test = "IS NULL" if node.op == "==" else "IS NOT NULL"
        if self.type_of(other) == T.NULL:
            return S(sql.Literal(node.op == "=="), T.BOOL)
        v = self.value(other, env)
        # json: a JSON null counts as null too (`#>>` turns it into SQL NULL)
        expr = self.sql_of(v, T.STRING if self.type_of(other) == T.DYN else None)
        return S(_op("({} " + test + ")", expr), T.BOOL)

    def arithmetic(self, op, a, b, ta: T.Type, tb: T.Type, t: T.Type) -> sql.Composable:
        if t == T.STRING:
            return _op("({} || {})", a, b)
        if op in ("+", "-") and (ta == T.DATE or tb == T.DATE) and t == T.TIMESTAMP:
            # date +/- duration: midnight of that date (in the session's zone) +/- the interval
            a = _op("CAST({} AS timestamptz)", a) if ta == T.DATE else a
            b = _op("CAST({} AS timestamptz)", b) if tb == T.DATE else b
        if op == "/":
            return _op("({} / NULLIF({}, 0))", a, b)
        if op == "%":
            return _op("mod({}, NULLIF({}, 0))", a, b)     # never a literal %: psycopg reads it
        return _op("({} " + _SQL_OPS[op] + " {})", a, b)

    def membership(self, node: ast.Binary, env) -> Value:
        ta = self.type_of(node.left)
        right_t = self.type_of(node.right)
        elem_t = right_t.elem if isinstance(right_t, T.Collection) else T.DYN
        needle = self.sql_of(self.value(node.left, env), _want(ta, elem_t))
        if isinstance(node.right, ast.ListLit):
            if not node.right.items:
                return S(sql.SQL("false"), T.BOOL)
            items = [self.sql_of(self.value(i, env), _want(self.type_of(i), ta))
                     for i in node.right.items]
            return S(_op("({} IN ({}))", needle, sql.SQL(", ").join(items)), T.BOOL)
        coll = self.coll_of(self.value(node.right, env))
        elem = self.sql_of(coll.elem, _want(elem_t, ta))
        return S(_op("({} IN ({}))", needle, self.select(coll, elem)), T.BOOL)
