"""The event graph: which writes start which jobs and workflows, which events wake waiting
workflows, and which writes can affect which invariant anchors.

For invariants, the rule's expression is walked to find every entity it reads and the
path by which it reaches it from the anchor (through references forward, or reverse
collections backward). Inverting that path gives, for a written row, the anchor rows to
re-check: a `Trigger` is that inverted path as hops the runtime turns into SQL.

    within_credit_limit, for Customer: record.orders.filter(...).map(o, o.total).sum() <= record.credit_limit
      reads Customer (the anchor itself)            -> Trigger(Customer, ())
      reads Order through Customer <-Order.customer -> Trigger(Order, (Hop("up", "customer"),))

A whole-entity collection (`Membership.exists(...)`) is not reached from the anchor: any
write to it may affect every anchor (`all_anchors`).
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.definition.model import Definition
from runtime.expressions import ast
from runtime.expressions.parse import parse
from runtime.expressions.scope import reverse_collections

COLLECTION_MACROS = ("exists", "all", "filter", "map", "exists_one")


@dataclass(frozen=True)
class Hop:
    """One step from written rows towards the anchor.

    "up": the next ids are the values of `field` of the current `entity` rows (they point
          at the next entity; for the first hop, read from the written row itself);
    "down": the next ids are the ids of `entity` rows whose `field` is one of the current ids.
    """

    direction: str
    field: str
    entity: str | None = None


@dataclass(frozen=True)
class Trigger:
    invariant: str
    written: str                     # the entity whose writes matter
    hops: tuple[Hop, ...] = ()       # from a written row to anchor ids; () = the row is the anchor
    all_anchors: bool = False


def _reads(definition: Definition, anchor: str, node) -> set[tuple[str, tuple, bool]]:
    """(entity, path from the anchor as (direction, field, entity) steps, reached_from_anchor)."""
    found: set[tuple[str, tuple, bool]] = {(anchor, (), True)}

    def visit(n, env: dict[str, tuple[str, tuple, bool]]):
        # Returns what `n` denotes when it is a row or collection of rows: (entity, path, anchored)
        if isinstance(n, ast.Ident):
            if n.name == "record":
                return (anchor, (), True)
            if n.name in env:
                return env[n.name]
            if n.name in definition.entities:
                found.add((n.name, (), False))
                return (n.name, (), False)
            return None
        if isinstance(n, ast.Select):
            base = visit(n.operand, env)
            if base is None:
                return None
            # Selecting a member reads the base rows. A reference's value alone (comparing
            # `s.team == record.id`) does not read the rows it points at: only selecting
            # through it does, which this same line records on the next level up.
            found.add(base)
            entity, path, anchored = base
            fields = definition.entities[entity].fields
            if n.name in fields and fields[n.name].type == "ref":
                return (fields[n.name].to, path + (("forward", n.name, fields[n.name].to),), anchored)
            reverse = reverse_collections(definition, entity)
            if n.name in reverse:  # a collection is read as soon as it is named
                source, fk = reverse[n.name]
                target = (source, path + (("reverse", fk, source),), anchored)
                found.add(target)
                return target
            return None
        if isinstance(n, ast.Macro):
            base = visit(n.target, env)
            if base is not None:
                found.add(base)
            inner = dict(env)
            if base is not None:
                inner[n.var] = base
            visit(n.body, inner)
            if n.guard is not None:
                visit(n.guard, inner)
            return base if n.name == "filter" else None
        if isinstance(n, ast.Call):
            if n.target is not None:
                visit(n.target, env)
            for arg in n.args:
                visit(arg, env)
            return None
        for child in _children(n):
            visit(child, env)
        return None

    visit(node, {})
    return found


def _children(n):
    if isinstance(n, ast.Unary):
        return (n.operand,)
    if isinstance(n, ast.Binary):
        return (n.left, n.right)
    if isinstance(n, ast.Cond):
        return (n.cond, n.then, n.other)
    if isinstance(n, ast.ListLit):
        return n.items
    if isinstance(n, ast.Index):
        return (n.operand, n.index)
    if isinstance(n, ast.MapLit):
        return tuple(x for pair in n.entries for x in pair)
    return ()


def invariant_triggers(definition: Definition) -> list[Trigger]:
    triggers: dict[tuple, Trigger] = {}
    for name, invariant in definition.invariants.items():
        node = parse(invariant.rule.source)
        for entity, path, anchored in _reads(definition, invariant.anchor, node):
            if not anchored:
                trigger = Trigger(name, entity, all_anchors=True)
            else:
                hops = []
                # walk the path backwards: from the written entity to the anchor
                for index in range(len(path) - 1, -1, -1):
                    direction, fk, _to = path[index]
                    source = path[index - 1][2] if index else invariant.anchor
                    if direction == "reverse":   # source <- fk of the written side
                        hops.append(Hop("up", fk, _to))
                    else:                        # source.fk -> written side
                        hops.append(Hop("down", fk, source))
                trigger = Trigger(name, entity, tuple(hops))
            triggers.setdefault((trigger.invariant, trigger.written, trigger.hops, trigger.all_anchors), trigger)
    return sorted(triggers.values(), key=lambda t: (t.invariant, t.written, len(t.hops)))


def event_starts(definition: Definition) -> dict[str, tuple[tuple[str, str], ...]]:
    """Event name (`Order.paid`, `Ticket.created`, a custom event) -> (kind, name) it starts."""
    starts: dict[str, list[tuple[str, str]]] = {}
    for kind, runs in (("job", definition.jobs), ("workflow", definition.workflows)):
        for name, run in runs.items():
            for event in run.on:
                starts.setdefault(event, []).append((kind, name))
    return {event: tuple(sorted(found)) for event, found in sorted(starts.items())}


def event_waits(definition: Definition) -> dict[str, tuple[str, ...]]:
    """Event name -> workflows with a `wait` step on it (to wake when it happens)."""
    waits: dict[str, set[str]] = {}

    def walk(steps, workflow):
        for step in steps:
            if step.kind == "wait" and isinstance(step.target, dict) and step.target.get("event"):
                waits.setdefault(str(step.target["event"]), set()).add(workflow)
            elif step.kind == "wait" and isinstance(step.args.get("event"), str):
                waits.setdefault(step.args["event"], set()).add(workflow)
            for nested in ("then", "else", "do", "compensate"):
                if isinstance(step.args.get(nested), tuple):
                    walk(step.args[nested], workflow)

    for name, workflow in definition.workflows.items():
        walk(workflow.steps, name)
    return {event: tuple(sorted(names)) for event, names in sorted(waits.items())}
