"""The expression language: CEL, type-checked against a definition, compiled to SQL.

Pipeline: `parse` (CEL text to `ast` nodes) -> `typecheck` (types from the definition and
the scope the expression stands in) -> `compile` (one parameterised psycopg `sql`
fragment, a `CompiledExpr`). Semantics, null handling, the SQL of each construct and the
error codes are documented in docs/expressions.md.
"""

from runtime.expressions.api import Checked, check_expression, compile_expression, compile_rule
from runtime.expressions.compiled import CompiledExpr
from runtime.expressions.errors import CODES
from runtime.expressions.scope import (
    Scope, action_scope, entity_scope, run_scope, transition_steps_scope,
)
from runtime.expressions.walk import Site, expression_sites, typecheck_definition

__all__ = [
    "CODES", "Checked", "CompiledExpr", "Scope", "Site", "action_scope", "check_expression",
    "compile_expression", "compile_rule", "entity_scope", "expression_sites", "run_scope",
    "transition_steps_scope", "typecheck_definition",
]
