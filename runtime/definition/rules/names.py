"""Rule: names are unique where the document cannot enforce it by itself.

Mapping keys are unique by construction (the parser rejects duplicate keys) and the shape
of every name is checked by the JSON Schema (`name.invalid`, `name.reserved` there). What
is left: names given as list items (roles, secrets, check names), entity names that differ
only in case (table names and URLs should not depend on case), and `record` as an input of
an event-started job or workflow, where `input.record` is already the event's row.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from ..model import Definition, DefinitionError

CODES = {
    "name.duplicate": "A name appears twice where it must be unique: a role, a secret, a check "
                      "of one entity, or two entity names that differ only in case.",
    # The schema reports the other reserved names under the same code.
    "name.reserved": "`record` as an input of a job or workflow started by events.",
}


def _duplicates(names: Iterable[str], path: str, suffix: str, what: str) -> Iterator[DefinitionError]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            yield DefinitionError("name.duplicate", f"{path}/{i}{suffix}", f"{what} '{name}' appears twice.")
        seen.add(name)


def check(d: Definition) -> Iterator[DefinitionError]:
    yield from _duplicates(d.auth.roles, "/auth/roles", "", "Role")
    yield from _duplicates(d.secrets, "/secrets", "", "Secret")
    for entity in d.entities.values():
        yield from _duplicates((c.name for c in entity.checks), f"{entity.path}/checks", "/name",
                               f"{entity.name} check")
    by_folded: dict[str, str] = {}
    for name, entity in d.entities.items():
        first = by_folded.setdefault(name.lower(), name)
        if first != name:
            yield DefinitionError("name.duplicate", entity.path,
                                  f"Entity '{name}' differs from '{first}' only in case; rename one.")
    for owner in (*d.jobs.values(), *d.workflows.values()):
        if owner.on and "record" in owner.input:
            yield DefinitionError("name.reserved", owner.input["record"].path,
                                  f"'{owner.name}' is started by events, so input.record is the "
                                  "event's row; give this input another name.")
