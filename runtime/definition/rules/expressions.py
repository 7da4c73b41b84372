"""Rule: every expression is syntactically valid CEL.

Only syntax: types, fields and functions are checked by `runtime.expressions` once the
definition's structure is sound.
"""

from __future__ import annotations

from typing import Iterator

from ..cel import syntax_error
from ..model import Definition, DefinitionError
from ..walk import all_exprs

CODES = {
    "expr.syntax": "An expression is not valid CEL; the message says where it stops making sense.",
}


def check(d: Definition) -> Iterator[DefinitionError]:
    for expression, _site in all_exprs(d):
        if not expression.is_literal:
            problem = syntax_error(expression.source)
            if problem:
                yield DefinitionError("expr.syntax", expression.path, problem)
