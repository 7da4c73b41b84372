"""Rule: what a step names exists, and update/delete say which rows.

`create`, `update` and `delete` name an entity; `transition` names `<Entity>.<transition>`
of a declared state machine; `enqueue` a job; `start` a workflow. An update or delete
picks rows by exactly one of `id` (one row) or `where` (every matching row): neither would
mean "all rows", which is too easy to write by accident.
"""

from __future__ import annotations

from typing import Iterator

from ..model import Definition, DefinitionError, pointer
from ..walk import step_sites

CODES = {
    "step.unknown_entity": "A create, update or delete step names no declared entity.",
    "step.unknown_transition": "A transition step's target is not `<Entity>.<transition>` of a declared state machine.",
    "step.unknown_job": "An enqueue step names no declared job.",
    "step.unknown_workflow": "A start step names no declared workflow.",
    "step.id_or_where": "An update or delete step has both or neither of `id` and `where`.",
}


def _transition_problem(d: Definition, target: str) -> str | None:
    entity_name, dot, name = target.partition(".")
    if not dot:
        return f"'{target}' is not of the form <Entity>.<transition>."
    entity = d.entities.get(entity_name)
    if entity is None:
        return f"'{entity_name}' is not an entity."
    if entity.states is None:
        return f"{entity_name} has no state machine."
    if name not in entity.states.transitions:
        known = ", ".join(entity.states.transitions)
        return f"{entity_name} has no transition '{name}' (transitions: {known})."
    return None


def check(d: Definition) -> Iterator[DefinitionError]:
    for site in step_sites(d):
        step = site.step
        where = step.path + pointer(step.kind)
        if step.kind in ("create", "update", "delete") and step.target not in d.entities:
            known = ", ".join(d.entities) or "none declared"
            yield DefinitionError("step.unknown_entity", where,
                                  f"'{step.target}' is not an entity (entities: {known}).")
        elif step.kind == "transition":
            problem = _transition_problem(d, step.target)
            if problem:
                yield DefinitionError("step.unknown_transition", where, problem)
        elif step.kind == "enqueue" and step.target not in d.jobs:
            known = ", ".join(d.jobs) or "none declared"
            yield DefinitionError("step.unknown_job", where, f"'{step.target}' is not a job (jobs: {known}).")
        elif step.kind == "start" and step.target not in d.workflows:
            known = ", ".join(d.workflows) or "none declared"
            yield DefinitionError("step.unknown_workflow", where,
                                  f"'{step.target}' is not a workflow (workflows: {known}).")
        if step.kind in ("update", "delete") and ("id" in step.args) == ("where" in step.args):
            both = "both" if "id" in step.args else "neither"
            yield DefinitionError("step.id_or_where", where,
                                  f"An {step.kind} step needs exactly one of id (one row) or where "
                                  f"(matching rows); this one has {both}.")
