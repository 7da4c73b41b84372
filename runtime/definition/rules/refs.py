"""Rule: references point at real entities, and reverse collections do not collide.

A `ref` field (of an entity, an input, or an ai step's output) must name a declared entity.
Its `related_name` becomes a collection on the target (`record.orders`), so it must be
unique per target and may not shadow one of the target's fields. A required reference
cannot be cleared when its target is deleted, so `on_delete: set_null` contradicts it.
"""

from __future__ import annotations

from typing import Iterator

from ..model import Definition, DefinitionError
from ..walk import all_fields

CODES = {
    "ref.unknown_entity": "A `ref` field's `to` names no declared entity.",
    "ref.related_name_duplicate": "Two references to the same entity use the same `related_name`.",
    "ref.related_name_clash": "A `related_name` equals a field of the target entity (system fields included).",
    "ref.required_set_null": "A required reference (ref or user) cannot have `on_delete: set_null`.",
}


def check(d: Definition) -> Iterator[DefinitionError]:
    for field, _where in all_fields(d):
        if field.type == "ref" and field.to is not None and field.to not in d.entities:
            known = ", ".join(d.entities) or "none declared"
            yield DefinitionError("ref.unknown_entity", f"{field.path}/to",
                                  f"'{field.to}' is not an entity (entities: {known}).")
    reverse: dict[tuple[str, str], str] = {}   # (target, related_name) -> "Entity.field" that took it
    for entity in d.entities.values():
        for field in entity.fields.values():
            if field.is_reference and field.on_delete == "set_null" and field.required:
                target = field.to if field.type == "ref" else "user"
                yield DefinitionError("ref.required_set_null", f"{field.path}/on_delete",
                                      f"'{field.name}' is required, so deleting the {target} it "
                                      "points to cannot set it to null; use restrict or cascade, or "
                                      "make it optional.")
            if field.type != "ref" or not field.related_name or field.to not in d.entities:
                continue
            target = d.entities[field.to]
            where = f"{field.path}/related_name"
            if field.related_name in target.fields:
                yield DefinitionError("ref.related_name_clash", where,
                                      f"{target.name} already has a field '{field.related_name}'; "
                                      "choose another related_name.")
                continue
            taken = reverse.setdefault((target.name, field.related_name), f"{entity.name}.{field.name}")
            if taken != f"{entity.name}.{field.name}":
                yield DefinitionError("ref.related_name_duplicate", where,
                                      f"{taken} already uses related_name '{field.related_name}' on "
                                      f"{target.name}; choose another.")
