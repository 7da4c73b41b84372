"""The semantic rules, one per module, run in this order on a schema-valid definition.

Each module has a docstring saying what it checks and why, a `CODES` dict (code -> meaning,
the source of the Errors section of docs/definition.md) and a `check(definition)` that
yields DefinitionErrors. A rule never raises on a definition that passed the schema, and
never reports what another rule reports (each unknown reference is one error, not one per
rule that follows it). To add a rule: write the module, add it to RULES, add fixtures.
"""

from __future__ import annotations

from types import ModuleType

from . import (
    auth, cycles, defaults, entity_keys, events, expressions, field_options, invariants, names,
    refs, renames, schedules, scopes, secrets, states, step_placement, step_targets, step_values,
)

RULES: tuple[ModuleType, ...] = (
    names,
    auth,
    refs,
    field_options,
    defaults,
    entity_keys,
    states,
    invariants,
    step_placement,
    step_targets,
    step_values,
    scopes,
    events,
    schedules,
    secrets,
    renames,
    cycles,
    expressions,
)
