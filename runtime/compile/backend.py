"""`compile_definition`: a valid `Definition` in, a `CompiledBackend` out: everything the
runtime reads to serve a tenant, so that nothing is parsed or compiled per request.

- tables: the Postgres shape (runtime.migrations.tables), for column lists and types;
- per entity: the SQL of each access rule, check and transition guard/access, over the
  table alias `r` (the runtime's queries name the entity's row `r`);
- invariants: their SQL over the anchor row `r`, and the triggers saying which writes
  must re-check which anchors (events.py);
- the event graph: which events start which jobs and workflows, and wake which waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from runtime.compile.events import Trigger, event_starts, event_waits, invariant_triggers
from runtime.definition.model import Definition, Expr, Step
from runtime.expressions import CompiledExpr, compile_rule
from runtime.migrations.tables import Table, tables_of

ROW_ALIAS = "r"


@dataclass(frozen=True)
class Rule:
    source: str
    path: str
    sql: CompiledExpr


@dataclass(frozen=True)
class CompiledCheck:
    name: str
    message: str | None
    rule: Rule


@dataclass(frozen=True)
class CompiledTransition:
    entity: str
    name: str
    field: str
    from_states: tuple[str, ...]
    to: str
    guard: Rule | None
    access: Rule | None
    steps: tuple[Step, ...]

    @property
    def event(self) -> str:
        return f"{self.entity}.{self.name}"


@dataclass(frozen=True)
class CompiledEntity:
    name: str
    table: Table
    access: Mapping[str, Rule]                      # operation -> rule; absent: service key only
    checks: tuple[CompiledCheck, ...]
    transitions: Mapping[str, CompiledTransition]
    state_field: str | None
    search: tuple[str, ...]


@dataclass(frozen=True)
class CompiledInvariant:
    name: str
    anchor: str
    message: str | None
    rule: Rule
    triggers: tuple[Trigger, ...]


@dataclass(frozen=True)
class EventGraph:
    starts: Mapping[str, tuple[tuple[str, str], ...]]       # event -> ((kind, name), ...)
    waits: Mapping[str, tuple[str, ...]]                    # event -> workflows waiting on it
    invariants_by_entity: Mapping[str, tuple[Trigger, ...]]  # written entity -> triggers
    listened: frozenset[str] = frozenset()  # events something starts on or waits for: all the outbox keeps


@dataclass(frozen=True)
class CompiledBackend:
    definition: Definition
    entities: Mapping[str, CompiledEntity]
    invariants: Mapping[str, CompiledInvariant]
    events: EventGraph
    tables: Mapping[str, Table] = field(repr=False, default_factory=dict)

    @property
    def actions(self):
        return self.definition.actions

    @property
    def jobs(self):
        return self.definition.jobs

    @property
    def workflows(self):
        return self.definition.workflows


def _rule(definition: Definition, entity: str, expr: Expr | None) -> Rule | None:
    if expr is None:
        return None
    return Rule(expr.source, expr.path, compile_rule(definition, entity, expr, ROW_ALIAS))


def _entity(definition: Definition, name: str, table: Table) -> CompiledEntity:
    entity = definition.entities[name]
    transitions = {}
    if entity.states:
        for t in entity.states.transitions.values():
            transitions[t.name] = CompiledTransition(
                entity=name, name=t.name, field=entity.states.field, from_states=t.from_states, to=t.to,
                guard=_rule(definition, name, t.when), access=_rule(definition, name, t.access), steps=t.steps,
            )
    return CompiledEntity(
        name=name,
        table=table,
        access={op: _rule(definition, name, expr) for op, expr in entity.access.items()},
        checks=tuple(CompiledCheck(c.name, c.message, _rule(definition, name, c.rule)) for c in entity.checks),
        transitions=transitions,
        state_field=entity.states.field if entity.states else None,
        search=entity.search,
    )


def compile_definition(definition: Definition) -> CompiledBackend:
    tables = tables_of(definition)
    triggers = invariant_triggers(definition)
    invariants = {
        name: CompiledInvariant(
            name=name, anchor=inv.anchor, message=inv.message, rule=_rule(definition, inv.anchor, inv.rule),
            triggers=tuple(t for t in triggers if t.invariant == name),
        )
        for name, inv in definition.invariants.items()
    }
    starts, waits = event_starts(definition), event_waits(definition)
    by_entity: dict[str, list[Trigger]] = {}
    for trigger in triggers:
        by_entity.setdefault(trigger.written, []).append(trigger)
    return CompiledBackend(
        definition=definition,
        entities={name: _entity(definition, name, tables[name]) for name in definition.entities},
        invariants=invariants,
        events=EventGraph(
            starts=starts,
            waits=waits,
            invariants_by_entity={k: tuple(v) for k, v in sorted(by_entity.items())},
            listened=frozenset(starts) | frozenset(waits),
        ),
        tables=tables,
    )
