"""Rule: `renamed_from` describes a rename the migration planner can carry out.

The old name may not be a name in use in the new definition (that would be two things with
one name, or a rename to itself), and one old name can become only one new name.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from ..model import Definition, DefinitionError

CODES = {
    "rename.conflict": "`renamed_from` names an entity or field that still exists under that name.",
    "rename.duplicate": "Two entities (or two fields of one entity) are renamed from the same old name.",
}


def _renames(items: Iterable[tuple[str, str | None, str]], current: set[str], what: str) -> Iterator[DefinitionError]:
    claimed: dict[str, str] = {}
    for name, old, path in items:
        if old is None:
            continue
        where = f"{path}/renamed_from"
        if old in current:
            yield DefinitionError("rename.conflict", where,
                                  f"{what} '{old}' still exists, so '{name}' cannot be renamed from it.")
        elif old in claimed:
            yield DefinitionError("rename.duplicate", where,
                                  f"'{claimed[old]}' is already renamed from '{old}'.")
        else:
            claimed[old] = name


def check(d: Definition) -> Iterator[DefinitionError]:
    yield from _renames(((e.name, e.renamed_from, e.path) for e in d.entities.values()),
                        set(d.entities), "Entity")
    for entity in d.entities.values():
        yield from _renames(((f.name, f.renamed_from, f.path) for f in entity.fields.values()),
                            set(entity.fields), f"{entity.name} field")
