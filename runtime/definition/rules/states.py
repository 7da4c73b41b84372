"""Rule: a state machine runs over an enum field of its entity, between that enum's values.

Every transition emits `<Entity>.<transition>` and entering a state emits
`<Entity>.<state>`, so state names, transition names and the write events (created,
updated, deleted) must differ. The state field needs a `default`: it is the initial state, and since the field can then
only change through transitions, nothing else could give a new row its state. `required`
is allowed but adds nothing (a field with a default is never null).
"""

from __future__ import annotations

from typing import Iterator

from ..model import Definition, DefinitionError
from ..walk import raw_at

CODES = {
    "state.unknown_field": "`states.field` names no field of the entity.",
    "state.not_enum": "`states.field` names a field that is not an enum.",
    "state.unknown_state": "A transition's `from` or `to` is not a value of the state field.",
    "state.no_default": "The state field has no `default`, so new rows would have no initial state.",
    "state.event_clash": "A state is named like a transition or a write event (created, updated, "
                         "deleted), so `<Entity>.<name>` would name two different events.",
}

WRITE_EVENTS = ("created", "updated", "deleted")


def check(d: Definition) -> Iterator[DefinitionError]:
    for entity in d.entities.values():
        machine = entity.states
        if machine is None:
            continue
        field = entity.fields.get(machine.field)
        if field is None:
            yield DefinitionError("state.unknown_field", f"{machine.path}/field",
                                  f"{entity.name} has no field '{machine.field}'.")
            continue
        if field.type != "enum":
            yield DefinitionError("state.not_enum", f"{machine.path}/field",
                                  f"'{field.name}' is a {field.type} field; a state machine needs an enum field.")
            continue
        if not field.has_default or field.default is None:
            yield DefinitionError("state.no_default", field.path,
                                  f"'{field.name}' drives a state machine, so it needs a default: the state new rows start in.")
        values = ", ".join(field.values)
        for i, state in enumerate(field.values):
            if state in WRITE_EVENTS or state in machine.transitions:
                clash = "every write's event" if state in WRITE_EVENTS else f"the transition '{state}'"
                yield DefinitionError("state.event_clash", f"{field.path}/values/{i}",
                                      f"Entering state '{state}' emits {entity.name}.{state}, which is "
                                      f"already {clash}; rename the state or the transition.")
        for transition in machine.transitions.values():
            raw_from = raw_at(d.source, f"{transition.path}/from")
            for i, state in enumerate(transition.from_states):
                if state not in field.values:
                    where = f"{transition.path}/from" + ("" if isinstance(raw_from, str) else f"/{i}")
                    yield DefinitionError("state.unknown_state", where,
                                          f"'{state}' is not a value of {field.name} ({values}).")
            if transition.to not in field.values:
                yield DefinitionError("state.unknown_state", f"{transition.path}/to",
                                      f"'{transition.to}' is not a value of {field.name} ({values}).")
