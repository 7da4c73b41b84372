"""Rule: events a job or workflow listens to, or a wait step waits for, can happen.

An entity event is `<Entity>.created`, `.updated` or `.deleted` (every write),
`<Entity>.<transition>` (that transition fired) or `<Entity>.<state>` (a row entered that
state of the entity's state machine, by whichever transition: `Order.paid`). Any other
event is custom and must be published by some `emit` step.
"""

from __future__ import annotations

from typing import Iterator

from ..model import Definition, DefinitionError, Entity
from ..walk import raw_at, step_sites

CODES = {
    "event.unknown": "An `on` entry or a wait step's event is neither an event of a declared "
                     "entity nor a custom event some emit step publishes.",
}

WRITE_EVENTS = ("created", "updated", "deleted")


def _machine_events(entity: Entity) -> tuple[str, ...]:
    if entity.states is None:
        return ()
    field = entity.fields.get(entity.states.field)
    states = field.values if field is not None else ()
    return (*entity.states.transitions, *(s for s in states if s not in entity.states.transitions))


def _problem(d: Definition, event: str, emitted: set[str]) -> str | None:
    head, dot, tail = event.partition(".")
    if head[:1].isupper():
        entity = d.entities.get(head)
        if entity is None:
            return f"'{head}' is not an entity."
        events = (*WRITE_EVENTS, *_machine_events(entity))
        if not dot or tail not in events:
            return f"{head} has no event '{tail}' (events: {', '.join(events)})."
        return None
    if event not in emitted:
        return f"No emit step publishes '{event}'."
    return None


def check(d: Definition) -> Iterator[DefinitionError]:
    emitted = {site.step.target for site in step_sites(d) if site.step.kind == "emit"}
    for owner in (*d.jobs.values(), *d.workflows.values()):
        single = isinstance(raw_at(d.source, f"{owner.path}/on"), str)
        for i, event in enumerate(owner.on):
            problem = _problem(d, event, emitted)
            if problem:
                where = f"{owner.path}/on" + ("" if single else f"/{i}")
                yield DefinitionError("event.unknown", where, problem)
    for site in step_sites(d):
        if site.step.kind == "wait":
            problem = _problem(d, site.step.target["event"], emitted)
            if problem:
                yield DefinitionError("event.unknown", f"{site.step.path}/wait/event", problem)
