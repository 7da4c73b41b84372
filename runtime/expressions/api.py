"""Entry points for one expression: check it, compile it.

`check_expression` never raises for a bad expression: it returns the problems as
`DefinitionError`s at the expression's path. `compile_expression` and `compile_rule`
check first and raise `DefinitionInvalid` if there is anything to report, so the SQL they
return is always for a well-typed expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from psycopg import sql

from runtime.definition.model import Definition, DefinitionError, DefinitionInvalid, Expr
from runtime.expressions import ast, types as T
from runtime.expressions.compile import Compiler
from runtime.expressions.compiled import CompiledExpr
from runtime.expressions.errors import ExprProblem
from runtime.expressions.parse import INT64, parse
from runtime.expressions.scope import Scope, entity_scope
from runtime.expressions.typecheck import Checker

_RESERVED_ALIAS = re.compile(r"_x\d+")


@dataclass(frozen=True)
class Checked:
    node: ast.Node | None
    types: dict[int, T.Type]
    type: T.Type
    errors: list[DefinitionError]


def _literal_node(expr: Expr) -> ast.Node:
    """YAML numbers, booleans and null in `set`/`with`/`let` are literals, not CEL text."""
    value, span = expr.literal, (0, len(expr.source or ""))
    if value is None:
        return ast.Lit(span, None, "null")
    if isinstance(value, bool):
        return ast.Lit(span, value, "bool")
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise ExprProblem("expr.bad_literal", f"{value}: integers must fit in 64 bits")
        return ast.Lit(span, value, "int")
    if isinstance(value, (float, Decimal)):
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if not number.is_finite() or abs(number.adjusted()) > 300:
            raise ExprProblem("expr.bad_literal", f"{value}: number out of range")
        return ast.Lit(span, number, "double")
    if isinstance(value, str):
        if "\x00" in value:
            raise ExprProblem("expr.bad_literal", "strings may not contain NUL characters")
        return ast.Lit(span, value, "string")
    raise ExprProblem("expr.unsupported", f"{value!r}: only numbers, booleans and null are "
                                          "literal values; write anything else as an expression")


def check_expression(definition: Definition, expr: Expr, scope: Scope, *, condition: bool = False,
                     expect: T.Type | None = None, what: str | None = None) -> Checked:
    """Type-check one expression where `scope` says it stands; never raises for bad input."""
    what = what or f"an expression in {scope.where}"
    source = expr.source if isinstance(expr.source, str) else ""
    checker = Checker(definition, scope, source)
    try:
        node = _literal_node(expr) if expr.is_literal else parse(source)
        if condition:
            result = checker.condition(node, {}, what)
        else:
            result = checker.check(node, {})
            _check_value(checker, node, result, expect, what)
    except ExprProblem as problem:
        return Checked(None, {}, T.ERROR, [problem.at(expr.path)])
    except RecursionError:
        return Checked(None, {}, T.ERROR, [DefinitionError(
            "expr.too_complex", expr.path, "expression nests too deeply")])
    errors = [p.at(expr.path) for p in checker.problems]
    return Checked(node, checker.types, T.ERROR if errors else result, errors)


def _check_value(checker: Checker, node: ast.Node, t: T.Type, expect: T.Type | None, what: str) -> None:
    if isinstance(t, T.Namespace):
        checker.fail("expr.type_mismatch", f"{what} needs a value, found {t.describe()}")
        return
    if expect is None:
        return
    if isinstance(t, T.Collection) and not isinstance(expect, T.Collection):
        checker.fail("expr.collection_as_scalar",
                     f"{what} needs {expect.describe()}, but {checker.text(node)} is {t.describe()}")
    elif isinstance(expect, T.Collection):
        if not isinstance(t, (T.Collection, T.ErrorType)):
            checker.fail("expr.not_collection", f"{what} needs a collection, but "
                                                f"{checker.text(node)} is {t.describe()}")
    elif not T.assignable(t, expect):
        checker.fail("expr.type_mismatch", f"{what} needs {expect.describe()}, but "
                                           f"{checker.text(node)} is {t.describe()}")
    else:
        checker.enum_values(expect, node)


def compile_expression(definition: Definition, expr: Expr, scope: Scope, *, alias: str | None = None,
                       condition: bool = False, expect: T.Type | None = None) -> CompiledExpr:
    """Compile one expression to SQL, or raise `DefinitionInvalid` with its problems.

    `alias`: the table alias under which the runtime's query exposes `record` (rules,
    `update ... where`); without it `record` is the row whose id is the `record.id` parameter.
    `condition`: the expression decides something (a rule, assert, if, match); the result is
    then `COALESCE(<expr>, false)`, so unknown never counts as true.
    """
    if alias is not None and (not isinstance(alias, str) or not alias or _RESERVED_ALIAS.fullmatch(alias)):
        raise ValueError(f"alias {alias!r} is empty or reserved for the compiler's subqueries")
    if scope.record is not None and scope.record not in definition.entities:
        raise ValueError(f"no entity {scope.record!r} in the definition")
    checked = check_expression(definition, expr, scope, condition=condition, expect=expect)
    if checked.errors:
        raise DefinitionInvalid(checked.errors)
    if any(isinstance(t, T.ErrorType) for t in checked.types.values()):
        # only a definition the validator would refuse (a ref to a missing entity) gets here
        raise ValueError(f"{expr.path}: the expression reaches a dangling reference")
    compiler = Compiler(definition, scope, checked.types, alias)
    try:
        value = compiler.value(checked.node, {})
        if condition:
            fragment = sql.SQL("COALESCE({}, false)").format(compiler.sql_of(value, T.BOOL))
        else:
            fragment = compiler.sql_of(value, expect if checked.type == T.DYN else None)
    except RecursionError:      # only on a caller's already deep stack: the parser bounds nesting
        raise DefinitionInvalid([DefinitionError("expr.too_complex", expr.path,
                                                 "expression nests too deeply")]) from None
    return CompiledExpr(sql=fragment, params=dict(sorted(compiler.params.items())),
                        needs=frozenset(compiler.needs), type=checked.type, source=expr.source,
                        path=expr.path, dyn_needs=frozenset(compiler.dyn_needs))


def compile_rule(definition: Definition, entity_name: str, expr: Expr, alias: str) -> CompiledExpr:
    """An entity-scoped boolean (access rule, check, transition guard, invariant) over `alias`."""
    scope = entity_scope(entity_name, f"a rule of {entity_name}")
    return compile_expression(definition, expr, scope, alias=alias, condition=True)
