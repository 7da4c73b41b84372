"""Find every expression of a definition, in the scope it stands in, and check them all.

The walk follows the document: entity rules, checks and transitions, invariants, actions,
jobs and workflows. Steps run in order, so a step sees the names bound by earlier `let` and
`as` (a `let` binding's type is the checked type of its expression, which is why checking
happens during the walk). Names bound inside `if`, `for_each` and `compensate` do not leak
out. Each expression becomes a `Site`: the later compile stage compiles sites as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from runtime.definition.model import Definition, DefinitionError, Expr, Step
from runtime.expressions import scope as S, types as T
from runtime.expressions.api import check_expression
from runtime.expressions.scope import Scope


@dataclass(frozen=True)
class Site:
    """One expression, where it stands, and how the runtime will use it."""

    expr: Expr
    scope: Scope
    role: str                    # "condition" | "value"
    what: str                    # "the read rule of Order", for messages
    expect: T.Type | None = None
    record_alias: bool = False   # `record` is a table alias of the runtime's query (rules, update rows)
    type: T.Type = T.ERROR       # the checked type (ERROR if it has errors)


class Walker:
    def __init__(self, definition: Definition):
        self.d = definition
        self.sites: list[Site] = []
        self.errors: list[DefinitionError] = []

    def site(self, expr: Any, scope: Scope, what: str, *, condition: bool = False,
             expect: T.Type | None = None, alias: bool = False) -> T.Type:
        if not isinstance(expr, Expr):
            return T.ERROR
        try:
            checked = check_expression(self.d, expr, scope, condition=condition, expect=expect, what=what)
            errors, result = checked.errors, checked.type
        except Exception as ex:         # a bug here must not take the whole validator down
            errors = [DefinitionError("expr.internal", expr.path, f"{type(ex).__name__}: {ex}")]
            result = T.ERROR
        self.errors.extend(errors)
        self.sites.append(Site(expr, scope, "condition" if condition else "value", what, expect,
                               alias, result))
        return result

    # -- the document ------------------------------------------------------------------
    def walk(self) -> None:
        for name, entity in self.d.entities.items():
            rule_scope = S.entity_scope(name, f"the rules of {name}")
            for op, rule in entity.access.items():
                self.site(rule, rule_scope, f"the {op} rule of {name}", condition=True, alias=True)
            for check in entity.checks:
                self.site(check.rule, rule_scope, f"check {check.name} of {name}", condition=True, alias=True)
            if entity.states is not None:
                for tname, tr in entity.states.transitions.items():
                    label = f"{name}.{tname}"
                    self.site(tr.when, rule_scope, f"the guard of {label}", condition=True, alias=True)
                    self.site(tr.access, rule_scope, f"the access rule of {label}", condition=True, alias=True)
                    self.steps(tr.steps, S.transition_steps_scope(name, tname))
        for name, inv in self.d.invariants.items():
            if inv.anchor in self.d.entities:     # a dangling `for` is the validator's to report
                self.site(inv.rule, S.entity_scope(inv.anchor, f"invariant {name}"),
                          f"invariant {name}", condition=True, alias=True)
        for name, action in self.d.actions.items():
            scope = S.action_scope(self.d, name)
            self.site(action.access, scope, f"the access rule of action {name}", condition=True)
            after = self.steps(action.steps, scope)
            self.site(action.returns, after, f"the result of action {name}")
        for name in self.d.jobs:
            self.steps(self.d.jobs[name].steps, S.run_scope(self.d, "job", name))
        for name in self.d.workflows:
            self.steps(self.d.workflows[name].steps, S.run_scope(self.d, "workflow", name))

    # -- steps -------------------------------------------------------------------------
    def steps(self, steps: Any, scope: Scope) -> Scope:
        for step in steps if isinstance(steps, (list, tuple)) else ():
            if isinstance(step, Step):
                scope = self.step(step, scope)
        return scope

    def step(self, step: Step, scope: Scope) -> Scope:
        kind, target, args = step.kind, step.target, step.args if isinstance(step.args, Mapping) else {}
        label = f"the {kind} step at {step.path}"
        bound: T.Type | None = None
        if kind in ("create", "update", "delete"):
            bound = self.write_step(kind, target, args, scope, label)
        elif kind == "transition":
            entity = target.split(".", 1)[0] if isinstance(target, str) else None
            expect = T.Row(entity) if entity in self.d.entities else None
            self.site(args.get("id"), scope, f"the id of {label}", expect=expect)
        elif kind in ("assert", "if"):
            self.site(target, scope, f"the condition of {label}", condition=True)
            self.steps(args.get("then", ()), scope)
            self.steps(args.get("else", ()), scope)
        elif kind == "let" and isinstance(target, Mapping):
            for name, expr in target.items():
                t = self.site(expr, scope, f"let {name}")
                scope = self.bind(scope, str(name), t, getattr(expr, "path", step.path))
        elif kind == "for_each":
            t = self.site(target, scope, f"the collection of {label}", expect=T.Collection(T.ERROR))
            inner = scope
            if step.as_name:
                elem = t.elem if isinstance(t, T.Collection) else T.ERROR
                inner = self.bind(scope, step.as_name, elem, step.path + "/as")
            self.steps(args.get("do", ()), inner)
        elif kind in ("enqueue", "start"):
            self.run_inputs(kind, target, args, scope, label)
        elif kind == "emit":
            self.values(args.get("with"), scope, label)
        elif kind in ("http", "ai"):
            # method, timeout (http) and output (ai) are plain settings, not expressions
            spec = {k: v for k, v in target.items() if k not in ("method", "timeout", "output")} \
                if isinstance(target, Mapping) else target
            self.values(spec, scope.with_secrets(), label, string=kind == "ai")
            bound = S.http_result_type() if kind == "http" else S.ai_result_type(
                target.get("output") if isinstance(target, Mapping) else None)
        elif kind == "wait":
            spec = target if isinstance(target, Mapping) else {}
            event = spec.get("event")
            self.site(spec.get("match"), scope.with_event(S.event_type(self.d, event)),
                      f"the match of {label}", condition=True)
            entity = S.event_entity(self.d, event)
            bound = T.Row(entity) if entity else T.DYN
        elif kind != "sleep":
            self.values(target, scope, label)
        for key, value in args.items():
            if key not in ("then", "else", "do", "compensate", "id", "set", "where", "with", "key"):
                self.values(value, scope, label)
        if step.as_name and kind != "for_each":
            scope = self.bind(scope, step.as_name, bound or T.DYN, step.path + "/as")
        self.steps(args.get("compensate", ()), scope)
        return scope

    def write_step(self, kind: str, target: Any, args: Mapping, scope: Scope, label: str) -> T.Type:
        entity = target if isinstance(target, str) and target in self.d.entities else None
        fields = self.d.entities[entity].fields if entity else {}
        # `set` values are computed once, in the step's own scope (in transition steps `record`
        # stays the transitioning row); only `where` sees each candidate row as `record`.
        setter = args.get("set")
        for fname, value in (setter.items() if isinstance(setter, Mapping) else ()):
            expect = T.field_type(fields[fname]) if fname in fields else None
            self.site(value, scope, f"set {fname} of {label}", expect=expect)
        row_scope = scope.with_record(entity) if entity else scope
        self.site(args.get("where"), row_scope, f"the where of {label}", condition=True, alias=True)
        self.site(args.get("id"), scope, f"the id of {label}", expect=T.Row(entity) if entity else None)
        self.values(args.get("key"), scope, label)
        if not entity:
            return T.DYN
        return T.Row(entity) if kind == "create" or "id" in args else T.Collection(T.Row(entity))

    def run_inputs(self, kind: str, target: Any, args: Mapping, scope: Scope, label: str) -> None:
        owners = self.d.jobs if kind == "enqueue" else self.d.workflows
        inputs = owners[target].input if isinstance(target, str) and target in owners else {}
        given = args.get("with")
        for name, value in (given.items() if isinstance(given, Mapping) else ()):
            expect = T.field_type(inputs[name]) if name in inputs else None
            self.site(value, scope, f"with {name} of {label}", expect=expect)
        self.values(args.get("key"), scope, label)

    def values(self, value: Any, scope: Scope, label: str, string: bool = False) -> None:
        """Every expression inside a step's other keys (http bodies, headers, emit payloads)."""
        if isinstance(value, Expr):
            self.site(value, scope, f"a value of {label}", expect=T.STRING if string else None)
        elif isinstance(value, Mapping):
            for item in value.values():
                self.values(item, scope, label, string)
        elif isinstance(value, (list, tuple)):
            if value and all(isinstance(v, Step) for v in value):
                self.steps(value, scope)
            else:
                for item in value:
                    self.values(item, scope, label, string)

    def bind(self, scope: Scope, name: str, t: T.Type, path: str) -> Scope:
        if name in S.RESERVED or name in self.d.entities:
            self.errors.append(DefinitionError(
                "expr.shadowed_name", path, f"'{name}' is a reserved name or an entity; "
                                            "bind the result under another name"))
            return scope
        return scope.bind(name, t)


def expression_sites(definition: Definition) -> list[Site]:
    """Every expression in the definition with its scope and role (for the compile stage)."""
    walker = Walker(definition)
    walker.walk()
    return walker.sites


def typecheck_definition(definition: Definition) -> list[DefinitionError]:
    """Every problem of every expression in the definition, in document order."""
    walker = Walker(definition)
    try:
        walker.walk()
    except Exception as ex:      # a malformed tree the validator will report anyway
        walker.errors.append(DefinitionError("expr.internal", "", f"{type(ex).__name__}: {ex}"))
    return walker.errors
