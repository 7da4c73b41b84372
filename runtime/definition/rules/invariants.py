"""Rule: an invariant is anchored on a declared entity (`for`)."""

from __future__ import annotations

from typing import Iterator

from ..model import Definition, DefinitionError

CODES = {
    "invariant.unknown_entity": "An invariant's `for` names no declared entity.",
}


def check(d: Definition) -> Iterator[DefinitionError]:
    for invariant in d.invariants.values():
        if invariant.anchor not in d.entities:
            known = ", ".join(d.entities) or "none declared"
            yield DefinitionError("invariant.unknown_entity", f"{invariant.path}/for",
                                  f"'{invariant.anchor}' is not an entity (entities: {known}).")
