"""Error codes of the expression stage and the exception that carries one internally.

Every problem becomes a `DefinitionError(code, path, message)` at the expression's JSON
Pointer. Codes are stable (clients match on them); `docs/expressions.md` lists them with
examples. Inside the stage a problem travels as `ExprProblem` until the walker attaches the
path.
"""

from __future__ import annotations

from runtime.definition.model import DefinitionError

CODES = {
    "expr.syntax": "the text is not a CEL expression",
    "expr.too_complex": "the expression is too long or nests too deeply",
    "expr.unsupported": "valid CEL that Plinth does not compile (maps, indexing, bytes, ...)",
    "expr.bad_literal": "a literal that cannot be stored (out of range, NUL in a string, ...)",
    "expr.unknown_name": "a name that is not in scope here",
    "expr.unknown_field": "a field, input, output or collection that does not exist",
    "expr.unknown_function": "a function or method that does not exist",
    "expr.unknown_secret": "secrets.NAME where NAME is not declared in `secrets`",
    "expr.unknown_enum_value": "a string compared with an enum field is not one of its values",
    "expr.bad_arguments": "wrong number or kind of arguments to a function or macro",
    "expr.type_mismatch": "operand or value types that do not fit together",
    "expr.not_boolean": "a rule, check, guard, assert, if or match that is not a boolean",
    "expr.not_collection": "for_each, a macro or `in` over something that is not a collection",
    "expr.collection_as_scalar": "a collection used where one value is needed",
    "expr.input_not_available": "`input` in an entity rule, check, guard or invariant",
    "expr.secret_not_allowed": "`secrets` outside the values of http and ai steps",
    "expr.shadowed_name": "a macro variable or step binding that hides a name in scope",
    "expr.internal": "a bug in the expression stage (the message names it); please report it",
}


class ExprProblem(Exception):
    """One problem found while parsing or checking an expression (path attached later)."""

    def __init__(self, code: str, message: str):
        assert code in CODES, code
        super().__init__(message)
        self.code = code
        self.message = message

    def at(self, path: str) -> DefinitionError:
        return DefinitionError(self.code, path, self.message)
