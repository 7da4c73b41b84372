"""Validate: a raw tree to a `Definition`, or DefinitionInvalid with every problem found.

Stages, each gating the next so that one mistake is reported once instead of cascading:
the JSON Schema (shape); then building the typed tree and every semantic rule (names,
references, state machines, steps, ...), all of them, errors collected; then, once the
structure is sound, the expression type checker of `runtime.expressions` if it is there.
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


def validate_definition(tree: Any, *, typecheck: bool = True) -> Definition:
    """The typed Definition of a raw tree; raises DefinitionInvalid with all errors found.

    `typecheck=False` skips the expression type checker (the other stages always run).
    """
    errors = schema_errors(tree)
    if errors:
        raise DefinitionInvalid(errors)
    definition = build_definition(tree)
    errors = semantic_errors(definition)
    if errors:
        raise DefinitionInvalid(errors)
    checker = _typechecker() if typecheck else None
    if checker is not None:
        errors = list(checker(definition))
        if errors:
            raise DefinitionInvalid(errors)
    return definition
