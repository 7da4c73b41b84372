"""Which names an expression may use, and their types, depending on where it stands.

| where                                          | record | input | bindings | event | secrets |
|------------------------------------------------|--------|-------|----------|-------|---------|
| entity access, checks, `when`/`access`, invariants | row | no    | no       | no    | no      |
| action `access`                                | no     | yes   | no       | no    | no      |
| action, job and workflow steps, `returns`      | no     | yes   | earlier `let`/`as` | no | http/ai |
| transition steps                               | row    | no    | earlier `let`/`as` | no | http/ai |
| `update`/`delete` `where`                      | each row it matches (shadows the above) |  |  |  |  |
| `wait` `match`                                 |        |       |          | yes   |         |

`auth`, `now` and entity names (as collections) are available everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from runtime.definition.model import Definition, Field
from runtime.expressions import types as T

_SYSTEM = {"id": "uuid", "created_at": "datetime", "updated_at": "datetime"}
RESERVED = ("record", "auth", "now", "input", "secrets", "event", "null", "true", "false")


@dataclass(frozen=True)
class Scope:
    where: str                                    # for messages: "the read rule of Order"
    record: str | None = None                     # the entity `record` is a row of
    input: Mapping[str, T.Type] | None = None     # None: `input` is not available here
    input_owner: str = ""                         # "action place_order", for messages
    bindings: Mapping[str, T.Type] = field(default_factory=dict)
    event: T.Type | None = None
    secrets: bool = False

    def bind(self, name: str, type_: T.Type) -> "Scope":
        return replace(self, bindings={**self.bindings, name: type_})

    def with_record(self, entity: str | None) -> "Scope":
        return replace(self, record=entity)

    def with_event(self, type_: T.Type) -> "Scope":
        return replace(self, event=type_)

    def with_secrets(self) -> "Scope":
        return replace(self, secrets=True)


def input_types(fields: Mapping[str, Field]) -> dict[str, T.Type]:
    return {name: T.field_type(f) for name, f in fields.items()}


def entity_scope(entity: str, where: str) -> Scope:
    """Entity access rules, checks, transition guards and invariants."""
    return Scope(where=where, record=entity)


def action_scope(definition: Definition, name: str) -> Scope:
    action = definition.actions[name]
    return Scope(where=f"action {name}", input=input_types(action.input),
                 input_owner=f"action {name}")


def event_entity(definition: Definition, event: object) -> str | None:
    """`Order.paid`, `Order.created` -> "Order"; None for custom events and unknown names."""
    if not isinstance(event, str) or "." not in event:
        return None
    entity = event.split(".", 1)[0]
    return entity if entity in definition.entities else None


def run_scope(definition: Definition, kind: str, name: str) -> Scope:
    """A job's or workflow's steps: declared inputs, plus `input.record` for `on:` events."""
    owner = (definition.jobs if kind == "job" else definition.workflows)[name]
    inputs = input_types(owner.input)
    entities = {event_entity(definition, e) for e in owner.on}
    if owner.on and len(entities) == 1 and None not in entities and "record" not in inputs:
        inputs["record"] = T.Row(entities.pop())
    return Scope(where=f"{kind} {name}", input=inputs, input_owner=f"{kind} {name}")


def transition_steps_scope(entity: str, transition: str) -> Scope:
    return Scope(where=f"the steps of {entity}.{transition}", record=entity)


def event_type(definition: Definition, event: object) -> T.Type:
    """The type of `event` in a wait's `match` (and of the wait's result row)."""
    entity = event_entity(definition, event)
    if entity is None:
        return T.Obj(f"event {event}", (("record", T.DYN),))
    return T.Obj(f"event {event}", (("record", T.Row(entity)),))


def http_result_type() -> T.Type:
    return T.Obj("an http result", (("status", T.INT), ("body", T.DYN), ("headers", T.DYN)))


def ai_result_type(output: object) -> T.Type:
    if not isinstance(output, Mapping):
        return T.DYN
    fields = tuple((str(k), T.field_type(f) if isinstance(f, Field) else T.DYN)
                   for k, f in output.items())
    return T.Obj("an ai result", fields)


def names_in(scope: Scope, definition: Definition) -> list[str]:
    """The names usable at the top of an expression here, for 'did you mean' messages."""
    names = ["auth", "now"]
    if scope.record:
        names.append("record")
    if scope.input is not None:
        names.append("input")
    if scope.event is not None:
        names.append("event")
    if scope.secrets:
        names.append("secrets")
    return names + sorted(scope.bindings) + sorted(definition.entities)


def reverse_collections(definition: Definition, entity: str) -> dict[str, tuple[str, str]]:
    """Collections other entities' ref fields add to `entity`: name -> (source entity, field)."""
    found: dict[str, tuple[str, str]] = {}
    for source in sorted(definition.entities):
        for fname, f in definition.entities[source].fields.items():
            if f.type == "ref" and f.to == entity and f.related_name:
                found.setdefault(f.related_name, (source, fname))
    return found


def row_member(definition: Definition, entity: str, name: str):
    """What `<row of entity>.name` is: a Field, a (source entity, ref field) collection, or None."""
    ent = definition.entities.get(entity)
    if ent is None:
        return None
    if name in ent.fields:
        return ent.fields[name]
    if name in _SYSTEM:      # present in every table even if the tree left them out
        return Field(name, _SYSTEM[name], ent.path, system=True)
    return reverse_collections(definition, entity).get(name)
