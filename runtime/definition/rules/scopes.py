"""Rule: names bound by steps (`as`, `let`) are unique in their scope and shadow nothing.

A binding is visible to the steps after it in the same list and to everything nested in
them; a step's own `compensate` sees its `as`. Bindings made inside `then`, `else`, `do` or
`compensate` stay inside that block, so sibling blocks may reuse a name. A `for_each`
variable is visible in its `do` only. Rebinding a visible name is refused rather than
shadowed, and the names the runtime provides (input, auth, record, now, secrets, event)
cannot be bound at all.
"""

from __future__ import annotations

from typing import Iterator

from ..model import Definition, DefinitionError, Step, pointer
from ..walk import step_lists

CODES = {
    "scope.duplicate_name": "An `as` or `let` name is already bound in the same scope.",
    "scope.reserved_name": "An `as` or `let` name is one the runtime provides: input, auth, record, now, secrets, event.",
}

RESERVED = ("input", "auth", "record", "now", "secrets", "event")


def _bind(name: str, where: str, scope: dict[str, str]) -> Iterator[DefinitionError]:
    if name in RESERVED:
        yield DefinitionError("scope.reserved_name", where,
                              f"'{name}' is provided by the runtime; choose another name.")
    elif name in scope:
        yield DefinitionError("scope.duplicate_name", where,
                              f"'{name}' is already bound at {scope[name]}; choose another name.")
    else:
        scope[name] = where


def _walk(steps: tuple[Step, ...], outer: dict[str, str]) -> Iterator[DefinitionError]:
    scope = dict(outer)  # bindings made in this list do not leak out of it
    for step in steps:
        if step.kind == "for_each":
            inner = dict(scope)
            if step.as_name:
                yield from _bind(step.as_name, f"{step.path}/as", inner)
            yield from _walk(step.args.get("do", ()), inner)
            continue
        for key in ("then", "else"):
            yield from _walk(step.args.get(key, ()), scope)
        if step.kind == "let":
            for name in step.target:
                yield from _bind(name, f"{step.path}/let" + pointer(name), scope)
        elif step.as_name:
            yield from _bind(step.as_name, f"{step.path}/as", scope)
        yield from _walk(step.args.get("compensate", ()), scope)


def check(d: Definition) -> Iterator[DefinitionError]:
    for step_list in step_lists(d):
        yield from _walk(step_list.steps, {})
