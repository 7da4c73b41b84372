"""Walking a `Definition`: every step list, every step (nested ones too), every expression
and every field, each with where it stands. The semantic rules share these so that none of
them forgets a place where steps, expressions or fields can occur.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .build import NESTED_STEP_KEYS
from .model import Definition, Expr, Field, Step


@dataclass(frozen=True)
class StepList:
    """A top-level list of steps and its owner."""

    owner_kind: str          # "action", "transition", "job" or "workflow"
    owner: str               # the action/job/workflow name, or "Entity.transition"
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class StepSite:
    """One step, nested or not, with the kind of its owner."""

    step: Step
    owner_kind: str
    owner: str
    in_compensate: bool      # inside some step's `compensate` list


def step_lists(d: Definition) -> Iterator[StepList]:
    for entity in d.entities.values():
        if entity.states:
            for transition in entity.states.transitions.values():
                yield StepList("transition", f"{entity.name}.{transition.name}", transition.steps)
    for action in d.actions.values():
        yield StepList("action", action.name, action.steps)
    for job in d.jobs.values():
        yield StepList("job", job.name, job.steps)
    for workflow in d.workflows.values():
        yield StepList("workflow", workflow.name, workflow.steps)


def blocks(step: Step) -> Iterator[tuple[str, tuple[Step, ...]]]:
    """The nested step lists of a step: then, else, do, compensate (those present)."""
    for key in NESTED_STEP_KEYS:
        if key in step.args:
            yield key, step.args[key]


def walk_steps(steps: tuple[Step, ...], in_compensate: bool = False) -> Iterator[tuple[Step, bool]]:
    """Steps in document order, each followed by its nested ones; flags those in compensate."""
    for step in steps:
        yield step, in_compensate
        for key, nested in blocks(step):
            yield from walk_steps(nested, in_compensate or key == "compensate")


def step_sites(d: Definition) -> Iterator[StepSite]:
    for step_list in step_lists(d):
        for step, in_compensate in walk_steps(step_list.steps):
            yield StepSite(step, step_list.owner_kind, step_list.owner, in_compensate)


def exprs_in(value: Any) -> Iterator[Expr]:
    """Expressions inside a step target or argument; nested steps and fields are not entered."""
    if isinstance(value, Expr):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from exprs_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            if not isinstance(item, Step):
                yield from exprs_in(item)


def step_exprs(step: Step) -> Iterator[Expr]:
    yield from exprs_in(step.target)
    for key, value in step.args.items():
        if key not in NESTED_STEP_KEYS:
            yield from exprs_in(value)


def all_exprs(d: Definition) -> Iterator[tuple[Expr, StepSite | None]]:
    """Every expression of the definition, with the step it belongs to (None outside steps)."""
    for entity in d.entities.values():
        yield from ((e, None) for e in entity.access.values())
        yield from ((c.rule, None) for c in entity.checks)
        if entity.states:
            for transition in entity.states.transitions.values():
                yield from ((e, None) for e in (transition.when, transition.access) if e)
    for invariant in d.invariants.values():
        yield invariant.rule, None
    for action in d.actions.values():
        yield from ((e, None) for e in (action.access, action.returns) if e)
    for site in step_sites(d):
        yield from ((e, site) for e in step_exprs(site.step))


def all_fields(d: Definition) -> Iterator[tuple[Field, str]]:
    """Every declared field: ("entity", entity fields), ("input", inputs), ("output", ai outputs)."""
    for entity in d.entities.values():
        yield from ((f, "entity") for f in entity.fields.values() if not f.system)
    for owner in (*d.actions.values(), *d.jobs.values(), *d.workflows.values()):
        yield from ((f, "input") for f in owner.input.values())
    for site in step_sites(d):
        if site.step.kind == "ai":
            yield from ((f, "output") for f in site.step.target.get("output", {}).values())


_MISSING = object()


def raw_at(tree: Any, path: str) -> Any:
    """The node of the raw tree at a JSON Pointer, or None if there is none."""
    node = tree
    for part in path.split("/")[1:] if path else ():
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(key, _MISSING)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
        if node is _MISSING:
            return None
    return node
