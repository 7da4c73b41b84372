"""Build: a schema-valid raw tree to the typed `Definition` that every later stage reads.

Runs only after the JSON Schema passed, so shapes can be trusted here; references are not
(an unknown entity is the rules' business, not this module's). Normalisation happens once,
here: a single `from` state or `on` event becomes a tuple, durations become seconds,
string fields get their default max_length, every entity gets its system fields, and every
expression becomes an `Expr` carrying its JSON Pointer.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .model import (
    DEFAULT_NOW, Action, Auth, Check, Definition, Entity, Expr, Field, Invariant, Job, Retry,
    StateMachine, Step, Transition, Workflow, pointer,
)

STEP_KINDS = (
    "create", "update", "delete", "transition", "assert", "let", "if", "for_each",
    "enqueue", "start", "emit", "http", "ai", "sleep", "wait",
)
NESTED_STEP_KEYS = ("then", "else", "do", "compensate")
STRING_MAX_LENGTH = 255

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PART = re.compile(r"([0-9]+)([smhd])")


def duration_seconds(text: str) -> float:
    """'1h30m' -> 5400.0 (the schema has already checked the spelling)."""
    return float(sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text)))


def expr(value: Any, path: str) -> Expr:
    """A value from set/with/let/returns/body: a string is CEL source, anything else a literal."""
    if isinstance(value, str):
        return Expr(source=value, path=path)
    return Expr(source=_cel_literal(value), path=path, literal=value, is_literal=True)


def _cel_literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)  # int or float: Python and CEL spell finite numbers alike


def _opt_expr(raw: Mapping[str, Any], key: str, path: str) -> Expr | None:
    return expr(raw[key], f"{path}/{key}") if key in raw else None


def _system_fields(path: str) -> tuple[Field, Field, Field]:
    return (
        Field("id", "uuid", path, required=True, unique=True, system=True),
        Field("created_at", "datetime", path, required=True, has_default=True,
              default=DEFAULT_NOW, system=True),
        Field("updated_at", "datetime", path, required=True, has_default=True,
              default=DEFAULT_NOW, system=True),
    )


def build_field(name: str, raw: Mapping[str, Any], path: str) -> Field:
    kind = raw["type"]
    max_length = raw.get("max_length")
    if max_length is None and kind == "string":
        max_length = STRING_MAX_LENGTH
    return Field(
        name=name, type=kind, path=path,
        required=raw.get("required", False), unique=raw.get("unique", False),
        index=raw.get("index", False), has_default="default" in raw, default=raw.get("default"),
        min=raw.get("min"), max=raw.get("max"),
        min_length=_int(raw.get("min_length")), max_length=_int(max_length),
        pattern=raw.get("pattern"), description=raw.get("description"),
        renamed_from=raw.get("renamed_from"), values=tuple(raw.get("values", ())),
        to=raw.get("to"), on_delete=raw.get("on_delete", _default_on_delete(kind, raw)),
        related_name=raw.get("related_name"),
        precision=_int(raw.get("precision")), scale=_int(raw.get("scale")),
    )


def _default_on_delete(kind: str, raw: Mapping[str, Any]) -> str:
    # A user field follows its end user: a required link takes the row along when the user
    # is deleted, an optional one is cleared. A ref keeps its target from being deleted.
    if kind == "user":
        return "cascade" if raw.get("required") else "set_null"
    return "restrict"


def _int(value: Any) -> int | None:
    # JSON Schema counts 3.0 as an integer; the model promises ints.
    return None if value is None else int(value)


def build_fields(raw: Mapping[str, Any] | None, path: str) -> dict[str, Field]:
    return {name: build_field(name, spec, path + pointer(name)) for name, spec in (raw or {}).items()}


def _entity(name: str, raw: Mapping[str, Any], path: str) -> Entity:
    declared = build_fields(raw.get("fields"), f"{path}/fields")
    ident, created, updated = _system_fields(path)
    fields = {"id": ident, **declared, "created_at": created, "updated_at": updated}
    access = {op: expr(rule, f"{path}/access/{op}") for op, rule in raw.get("access", {}).items()}
    checks = tuple(
        Check(c["name"], expr(c["rule"], f"{path}/checks/{i}/rule"), c.get("message"), f"{path}/checks/{i}")
        for i, c in enumerate(raw.get("checks", ()))
    )
    states = _states(raw["states"], f"{path}/states") if "states" in raw else None
    return Entity(
        name=name, fields=fields, path=path, access=access, checks=checks, states=states,
        search=tuple(raw.get("search", ())),
        indexes=tuple(tuple(ix) for ix in raw.get("indexes", ())),
        unique=tuple(tuple(ix) for ix in raw.get("unique", ())),
        renamed_from=raw.get("renamed_from"), description=raw.get("description"),
    )


def _states(raw: Mapping[str, Any], path: str) -> StateMachine:
    transitions = {}
    for name, spec in raw["transitions"].items():
        tpath = f"{path}/transitions" + pointer(name)
        sources = spec["from"]
        transitions[name] = Transition(
            name=name, from_states=(sources,) if isinstance(sources, str) else tuple(sources),
            to=spec["to"], path=tpath, when=_opt_expr(spec, "when", tpath),
            access=_opt_expr(spec, "access", tpath), steps=build_steps(spec.get("steps", ()), f"{tpath}/steps"),
        )
    return StateMachine(field=raw["field"], transitions=transitions, path=path)


def build_steps(raw: Any, path: str) -> tuple[Step, ...]:
    return tuple(build_step(item, f"{path}/{i}") for i, item in enumerate(raw))


def build_step(raw: Mapping[str, Any], path: str) -> Step:
    kind = next(k for k in STEP_KINDS if k in raw)  # the schema guarantees exactly one is there
    target = _target(kind, raw[kind], path + pointer(kind))
    args: dict[str, Any] = {}
    for key, value in raw.items():
        if key in (kind, "as"):
            continue
        kp = path + pointer(key)
        if key in NESTED_STEP_KEYS:
            args[key] = build_steps(value, kp)
        elif key in ("set", "with"):
            args[key] = {name: expr(v, kp + pointer(name)) for name, v in value.items()}
        elif key in ("id", "where", "key"):
            args[key] = expr(value, kp)
        elif key == "delay":
            args[key] = duration_seconds(value)
        else:  # message
            args[key] = value
    return Step(kind=kind, target=target, args=args, path=path, as_name=raw.get("as"))


def _target(kind: str, value: Any, path: str) -> Any:
    if kind in ("assert", "if", "for_each"):
        return expr(value, path)
    if kind == "let":
        return {name: expr(v, path + pointer(name)) for name, v in value.items()}
    if kind == "sleep":
        return duration_seconds(value)
    if kind == "http":
        call: dict[str, Any] = {"method": value.get("method", "GET"), "url": expr(value["url"], f"{path}/url")}
        call["headers"] = {k: expr(v, f"{path}/headers" + pointer(k)) for k, v in value.get("headers", {}).items()}
        if "body" in value:
            call["body"] = _template(value["body"], f"{path}/body")
        if "timeout" in value:
            call["timeout"] = duration_seconds(value["timeout"])
        return call
    if kind == "ai":
        call = {key: expr(value[key], f"{path}/{key}") for key in ("prompt", "system", "model") if key in value}
        if "output" in value:
            call["output"] = build_fields(value["output"], f"{path}/output")
        return call
    if kind == "wait":
        return {
            "event": value["event"],
            "match": _opt_expr(value, "match", path),
            "timeout": duration_seconds(value["timeout"]) if "timeout" in value else None,
        }
    return value  # create/update/delete/transition/enqueue/start/emit: a name


def _template(value: Any, path: str) -> Any:
    """An http body: an Expr, or a dict of templates (a JSON object built from expressions)."""
    if isinstance(value, dict):
        return {k: _template(v, path + pointer(k)) for k, v in value.items()}
    return expr(value, path)


def _retry(raw: Mapping[str, Any] | None) -> Retry:
    raw = raw or {}
    return Retry(attempts=int(raw.get("attempts", 1)),
                 backoff_seconds=duration_seconds(raw["backoff"]) if "backoff" in raw else 0.0)


def _events(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    return (raw,) if isinstance(raw, str) else tuple(raw)


def _timeout(raw: Mapping[str, Any]) -> float | None:
    return duration_seconds(raw["timeout"]) if "timeout" in raw else None


def build_definition(tree: Mapping[str, Any]) -> Definition:
    """The typed tree of a schema-valid raw definition; `source` keeps the raw tree."""
    auth_raw = tree.get("auth", {})
    auth = Auth(roles=tuple(auth_raw.get("roles", ())), default_role=auth_raw.get("default_role"),
                signup=auth_raw.get("signup", "open"))
    entities = {n: _entity(n, e, "/entities" + pointer(n)) for n, e in tree.get("entities", {}).items()}
    invariants = {}
    for name, raw in tree.get("invariants", {}).items():
        path = "/invariants" + pointer(name)
        invariants[name] = Invariant(name, raw["for"], expr(raw["rule"], f"{path}/rule"), raw.get("message"), path)
    actions = {}
    for name, raw in tree.get("actions", {}).items():
        path = "/actions" + pointer(name)
        actions[name] = Action(
            name=name, input=build_fields(raw.get("input"), f"{path}/input"),
            steps=build_steps(raw["steps"], f"{path}/steps"), path=path,
            access=_opt_expr(raw, "access", path), returns=_opt_expr(raw, "returns", path))
    jobs = {}
    for name, raw in tree.get("jobs", {}).items():
        path = "/jobs" + pointer(name)
        jobs[name] = Job(
            name=name, input=build_fields(raw.get("input"), f"{path}/input"),
            steps=build_steps(raw["steps"], f"{path}/steps"), path=path, on=_events(raw.get("on")),
            schedule=raw.get("schedule"), retry=_retry(raw.get("retry")), timeout_seconds=_timeout(raw))
    workflows = {}
    for name, raw in tree.get("workflows", {}).items():
        path = "/workflows" + pointer(name)
        workflows[name] = Workflow(
            name=name, input=build_fields(raw.get("input"), f"{path}/input"),
            steps=build_steps(raw["steps"], f"{path}/steps"), path=path, on=_events(raw.get("on")),
            retry=_retry(raw.get("retry")), timeout_seconds=_timeout(raw))
    return Definition(
        version=int(tree["version"]), name=tree.get("name"), auth=auth, entities=entities,
        invariants=invariants, actions=actions, jobs=jobs, workflows=workflows,
        secrets=tuple(tree.get("secrets", ())), source=tree,
    )
