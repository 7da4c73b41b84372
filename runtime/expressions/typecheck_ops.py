"""Type rules of the operators (`== < in + && ! ?:`) and of collection aggregates.

A mixin of `typecheck.Checker`: it relies on `check`, `scalar`, `condition`, `fail` and
`text`. The rules are CEL's, with the definition's extra scalars: `decimal` mixes with
`int` and `double` (the wider type wins), `date` compares with `timestamp`, references
compare with uuids and with references to the same entity, `dyn` (json) fits anything and
is converted to the other side's type in SQL.
"""

from __future__ import annotations

from runtime.expressions import ast, types as T

_ARITH = {
    # (left, right) -> result for the non-numeric cases of + and -
    ("+", "timestamp", "duration"): T.TIMESTAMP, ("+", "duration", "timestamp"): T.TIMESTAMP,
    ("+", "date", "duration"): T.TIMESTAMP, ("+", "duration", "date"): T.TIMESTAMP,
    ("+", "duration", "duration"): T.DURATION, ("-", "duration", "duration"): T.DURATION,
    ("-", "timestamp", "duration"): T.TIMESTAMP, ("-", "date", "duration"): T.TIMESTAMP,
    ("-", "timestamp", "timestamp"): T.DURATION,
    ("+", "string", "string"): T.STRING,
}


class OperatorChecks:
    def _unary(self, node: ast.Unary, env) -> T.Type:
        if node.op == "!":
            return self.condition(node.operand, env, "the operand of !")
        t = self.scalar(node.operand, env, "unary -")
        if T.is_nothing(t) and not T.is_scalar(t, "null") or T.is_scalar(t, *T.NUMERIC, "duration"):
            return T.plain(t)
        return self.fail("expr.type_mismatch",
                         f"{self.text(node)}: - needs a number or duration, found {t.describe()}")

    def _cond(self, node: ast.Cond, env) -> T.Type:
        self.condition(node.cond, env, "the condition of ?:")
        a = self.scalar(node.then, env, "a branch of ?:")
        b = self.scalar(node.other, env, "a branch of ?:")
        joined = T.unify(a, b)
        if joined is None:
            return self.fail("expr.type_mismatch", f"{self.text(node)}: both branches of ?: must "
                                                   f"have one type, found {a.describe()} and {b.describe()}")
        return joined

    def _binary(self, node: ast.Binary, env) -> T.Type:
        op = node.op
        if op in ("&&", "||"):
            self.condition(node.left, env, f"the left side of {op}")
            self.condition(node.right, env, f"the right side of {op}")
            return T.BOOL
        if op == "in":
            return self._in(node, env)
        a = self.scalar(node.left, env, f"the left side of {op}")
        b = self.scalar(node.right, env, f"the right side of {op}")
        if isinstance(a, T.ErrorType) or isinstance(b, T.ErrorType):
            return T.BOOL if op in ("==", "!=", "<", "<=", ">", ">=") else T.ERROR
        if op in ("==", "!="):
            if not T.comparable(a, b):
                return self.mismatch(node, a, b)
            self.enum_values(a, node.right)
            self.enum_values(b, node.left)
            return T.BOOL
        if op in ("<", "<=", ">", ">="):
            return T.BOOL if T.orderable(a, b) else self.mismatch(node, a, b)
        return self.arithmetic(node, a, b)

    def mismatch(self, node: ast.Binary, a: T.Type, b: T.Type) -> T.Type:
        return self.fail("expr.type_mismatch",
                         f"{self.text(node)}: cannot apply {node.op} to {a.describe()} "
                         f"({self.text(node.left)}) and {b.describe()} ({self.text(node.right)})")

    def arithmetic(self, node: ast.Binary, a: T.Type, b: T.Type) -> T.Type:
        op, pa, pb = node.op, T.plain(a), T.plain(b)
        if T.is_scalar(pa, "null") or T.is_scalar(pb, "null"):
            return self.mismatch(node, a, b)
        dyn_a, dyn_b = T.is_scalar(pa, "dyn"), T.is_scalar(pb, "dyn")
        if dyn_a and dyn_b:
            return self.fail("expr.type_mismatch", f"{self.text(node)}: both sides are json "
                                                   "values; convert one, e.g. with string()")
        if dyn_a or dyn_b:
            other = pb if dyn_a else pa       # json takes the type of the other side
            if op == "+" and T.is_scalar(other, "string") or T.is_scalar(other, *T.NUMERIC):
                return other if op != "%" or T.is_scalar(other, "int", "decimal") else self.mismatch(node, a, b)
            return self.mismatch(node, a, b)
        if T.is_scalar(pa, *T.NUMERIC) and T.is_scalar(pb, *T.NUMERIC):
            result = T.numeric_result(pa, pb)
            if op == "%" and result == T.DOUBLE:
                return self.fail("expr.type_mismatch", f"{self.text(node)}: % needs integers or "
                                                       "decimals, not doubles")
            return result
        found = _ARITH.get((op, getattr(pa, "name", ""), getattr(pb, "name", "")))
        return found if found is not None else self.mismatch(node, a, b)

    def _in(self, node: ast.Binary, env) -> T.Type:
        a = self.scalar(node.left, env, "the left side of in")
        coll = self.check(node.right, env)
        if isinstance(coll, T.ErrorType) or isinstance(a, T.ErrorType):
            return T.BOOL
        if not isinstance(coll, T.Collection):
            return self.fail("expr.not_collection",
                             f"{self.text(node)}: the right side of in must be a list or a "
                             f"collection, but {self.text(node.right)} is {coll.describe()}")
        if not T.comparable(a, coll.elem):
            return self.fail("expr.type_mismatch",
                             f"{self.text(node)}: cannot look for {a.describe()} in {coll.describe()}")
        if isinstance(node.right, ast.ListLit):
            for item in node.right.items:
                self.enum_values(a, item)
        return T.BOOL

    def enum_values(self, t: T.Type, other: ast.Node) -> None:
        """`record.status == 'shiped'`: a literal compared with an enum must be one of its values."""
        if isinstance(t, T.Scalar) and t.enum and isinstance(other, ast.Lit) \
                and other.kind == "string" and other.value not in t.enum:
            self.fail("expr.unknown_enum_value",
                      f"{self.text(other)} is not one of the values {', '.join(t.enum)}")

    def aggregate(self, node: ast.Call, name: str, coll: T.Collection) -> T.Type:
        if name == "size":
            return T.INT
        elem = T.plain(coll.elem)
        if isinstance(elem, T.ErrorType):
            return T.ERROR
        allowed = T.NUMERIC if name == "sum" else T.ORDERED
        if T.is_scalar(elem, "dyn"):
            return T.DECIMAL if name == "sum" else T.DYN
        if not T.is_scalar(elem, *allowed):
            hint = " (map the rows to a field first, e.g. .map(x, x.total))" \
                if isinstance(elem, T.Row) else ""
            return self.fail("expr.type_mismatch", f"{self.text(node)}: {name}() needs "
                                                   f"{'numbers' if name == 'sum' else 'comparable values'}, "
                                                   f"found {coll.describe()}{hint}")
        return elem
