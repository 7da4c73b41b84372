"""Rule: the values a step sets or passes match what the target declares.

`set` of create/update writes declared fields only: not system fields (the runtime keeps
them) and not a state machine's field (it changes through transitions only). A create sets
every required field that has no default. `with` of enqueue/start passes declared inputs
of the job or workflow, every required one without a default included.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from ..model import Definition, DefinitionError, Field, Step, pointer
from ..walk import step_sites

CODES = {
    "step.unknown_field": "`set` names a field the entity does not have.",
    "step.system_field": "`set` writes a system field (id, created_at, updated_at).",
    "step.state_field": "`set` writes the field of a state machine, which only transitions change.",
    "step.missing_required": "A create step leaves out a required field that has no default.",
    "step.unknown_input": "`with` passes a key that is not an input of the job or workflow.",
    "step.missing_input": "`with` leaves out a required input (without default) of the job or workflow.",
}


def _needed(fields: Mapping[str, Field], given: Mapping[str, object]) -> list[str]:
    return [name for name, f in fields.items()
            if f.required and not f.has_default and not f.system and name not in given]


def _set_errors(d: Definition, step: Step) -> Iterator[DefinitionError]:
    entity = d.entities.get(step.target)
    values = step.args.get("set", {})
    if entity is None:
        return  # step_targets reports it
    state_field = entity.states.field if entity.states else None
    for name in values:
        where = f"{step.path}/set" + pointer(name)
        field = entity.fields.get(name)
        if field is None:
            yield DefinitionError("step.unknown_field", where, f"{entity.name} has no field '{name}'.")
        elif field.system:
            yield DefinitionError("step.system_field", where, f"'{name}' is maintained by the runtime.")
        elif name == state_field:
            names = ", ".join(f"{entity.name}.{t}" for t in entity.states.transitions)
            yield DefinitionError("step.state_field", where,
                                  f"'{name}' changes only through transitions ({names}).")
    if step.kind == "create":
        missing = _needed(entity.fields, values)
        if missing:
            yield DefinitionError("step.missing_required", step.path + pointer(step.kind),
                                  f"Creating {entity.name} needs {', '.join(missing)} (required, no default).")


def _with_errors(d: Definition, step: Step) -> Iterator[DefinitionError]:
    owner = (d.jobs if step.kind == "enqueue" else d.workflows).get(step.target)
    if owner is None:
        return  # step_targets reports it
    given = step.args.get("with", {})
    for name in given:
        if name not in owner.input:
            known = ", ".join(owner.input) or "none"
            yield DefinitionError("step.unknown_input", f"{step.path}/with" + pointer(name),
                                  f"'{step.target}' has no input '{name}' (inputs: {known}).")
    missing = _needed(owner.input, given)
    if missing:
        yield DefinitionError("step.missing_input", step.path + pointer(step.kind),
                              f"'{step.target}' needs input {', '.join(missing)} (required, no default).")


def check(d: Definition) -> Iterator[DefinitionError]:
    for site in step_sites(d):
        if site.step.kind in ("create", "update"):
            yield from _set_errors(d, site.step)
        elif site.step.kind in ("enqueue", "start"):
            yield from _with_errors(d, site.step)
