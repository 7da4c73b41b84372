"""Validate: a raw tree to a `Definition`, or DefinitionInvalid with every problem found.

First the JSON Schema (shape): its errors are reported alone, because the later stages
need a well-formed tree and would only repeat them. Then the typed tree is built, and every
semantic rule (names, references, state machines, steps, ...) and the expression type
checker of `runtime.expressions` (when it is installed) run, all their errors together.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from .build import build_definition
from .model import Definition, DefinitionError, DefinitionInvalid
from .rules import RULES
from .schema import schema_errors

TypeChecker = Callable[[Definition], list[DefinitionError]]


def _typechecker() -> TypeChecker | None:
    # Imported late: runtime.expressions imports this package, and may not exist yet.
    try:
        module = importlib.import_module("runtime.expressions")
    except ModuleNotFoundError as exc:
        if exc.name in ("runtime.expressions", "runtime"):
            return None
        raise
    return getattr(module, "typecheck_definition", None)


def semantic_errors(definition: Definition) -> list[DefinitionError]:
    """Every rule's errors, one per (code, path)."""
    seen: dict[tuple[str, str], DefinitionError] = {}
    for rule in RULES:
        for error in rule.check(definition):
            seen.setdefault((error.code, error.path), error)
    return list(seen.values())


def _expression_errors(found: list[DefinitionError], structural: list[DefinitionError]) -> list[DefinitionError]:
    # One problem, one error: where a rule already reported a place (an unknown secret, a
    # syntax error), the type checker's view of the same place adds nothing; and its
    # internal errors on a structurally broken definition are consequences, not news.
    taken = {e.path for e in structural}
    return [e for e in found if e.path not in taken and not (structural and e.code == "expr.internal")]


def validate_definition(tree: Any, *, typecheck: bool = True) -> Definition:
    """The typed Definition of a raw tree; raises DefinitionInvalid with all errors found.

    `typecheck=False` skips the expression type checker (the other stages always run).
    """
    errors = schema_errors(tree)
    if errors:
        raise DefinitionInvalid(errors)
    definition = build_definition(tree)
    errors = semantic_errors(definition)
    checker = _typechecker() if typecheck else None
    if checker is not None:
        errors += _expression_errors(list(checker(definition)), errors)
    if errors:
        raise DefinitionInvalid(errors)
    return definition
