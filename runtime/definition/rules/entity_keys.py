"""Rule: `search`, `indexes` and `unique` name fields the entity has.

System fields count (an index on created_at is common). Full-text search needs text, so
search fields must be string or text.
"""

from __future__ import annotations

from typing import Iterator

from ..model import Definition, DefinitionError, Entity

CODES = {
    "search.unknown_field": "A `search` entry names no field of the entity.",
    "search.not_text": "A `search` entry names a field that is not string or text.",
    "index.unknown_field": "An `indexes` or `unique` entry names no field of the entity.",
    "index.repeated_field": "An index or unique key lists the same field twice.",
}

SEARCHABLE = ("string", "text")


def _keys(entity: Entity, option: str, keys: tuple[tuple[str, ...], ...]) -> Iterator[DefinitionError]:
    for i, names in enumerate(keys):
        seen: set[str] = set()
        for j, name in enumerate(names):
            where = f"{entity.path}/{option}/{i}/{j}"
            if name not in entity.fields:
                yield DefinitionError("index.unknown_field", where, f"{entity.name} has no field '{name}'.")
            elif name in seen:
                yield DefinitionError("index.repeated_field", where, f"'{name}' appears twice in this key.")
            seen.add(name)


def check(d: Definition) -> Iterator[DefinitionError]:
    for entity in d.entities.values():
        for i, name in enumerate(entity.search):
            where = f"{entity.path}/search/{i}"
            field = entity.fields.get(name)
            if field is None:
                yield DefinitionError("search.unknown_field", where, f"{entity.name} has no field '{name}'.")
            elif field.type not in SEARCHABLE:
                yield DefinitionError("search.not_text", where,
                                      f"'{name}' is a {field.type} field; only string and text fields are searchable.")
        yield from _keys(entity, "indexes", entity.indexes)
        yield from _keys(entity, "unique", entity.unique)
