"""Running steps (actions, transitions; jobs and workflows reuse it) inside one transaction.

Every value is computed by Postgres: a step's expressions are compiled once per backend
(`ExpressionCache`, keyed by the expression's JSON Pointer, with the scope the type
checker walked it in) and evaluated with `SELECT <expr>, ...` bound to the caller, the
input and the names earlier steps bound. Rows are passed by id (`as` of a create binds the
new row's id; traversals read the row as it is now). An `update` step's values are
evaluated after its rows are locked, so a value read from those rows (`stock:
input.product.stock - 1`) sees them as a concurrent write left them: no lost updates.

Writes go through the transaction's `WriteSession`, so checks, the state machine and
invariants hold; inside an action, entity access rules are not asked again (the action's
own `access` decided), as documented in docs/definition.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

from psycopg import sql
from psycopg.types.json import Jsonb

from runtime.api.errors import ApiError
from runtime.api.integrity import WriteSession
from runtime.compile import CompiledBackend
from runtime.definition.model import Expr, Step
from runtime.expressions import CompiledExpr, compile_expression, expression_sites
from runtime.jobs.outbox import Outbox, jsonable

MAX_LOOP = 10_000  # rows one for_each may visit: a runaway loop is refused, not run


class ExpressionCache:
    """Every expression of a backend compiled in the scope it stands in, built on first use."""

    _by_backend: dict[int, tuple[CompiledBackend, "ExpressionCache"]] = {}
    _lock = threading.Lock()

    def __init__(self, backend: CompiledBackend):
        self.backend = backend
        self.sites = {site.expr.path: site for site in expression_sites(backend.definition)}
        self.compiled: dict[str, CompiledExpr] = {}

    @classmethod
    def of(cls, backend: CompiledBackend) -> "ExpressionCache":
        key = id(backend)
        with cls._lock:
            found = cls._by_backend.get(key)
            if found is None or found[0] is not backend:
                if len(cls._by_backend) > 256:
                    cls._by_backend.clear()
                found = (backend, cls(backend))
                cls._by_backend[key] = found
            return found[1]

    def get(self, expr: Expr) -> CompiledExpr:
        compiled = self.compiled.get(expr.path)
        if compiled is None:
            site = self.sites[expr.path]
            compiled = compile_expression(
                self.backend.definition, site.expr, site.scope, alias="r" if site.record_alias else None,
                condition=site.role == "condition", expect=site.expect,
            )
            self.compiled[expr.path] = compiled
        return compiled


@dataclass
class StepRunner:
    conn: Any
    backend: CompiledBackend
    session: WriteSession
    auth: dict | None
    input: Mapping[str, Any]
    record: Any = None                      # transition steps: the transitioning row's id
    secrets: Mapping[str, str] | None = None  # jobs and workflows: for http and ai steps

    def __post_init__(self):
        self.exprs = ExpressionCache.of(self.backend)

    @property
    def outbox(self) -> Outbox:
        return self.session.outbox

    # values -----------------------------------------------------------------------------

    def values(self, exprs: list[Expr], env: Mapping[str, Any]) -> list[Any]:
        """Evaluate several expressions in one round trip (none if all are literals)."""
        if all(expr.is_literal for expr in exprs):
            return [expr.literal for expr in exprs]
        parts, params = [], {}
        for expr in exprs:
            if expr.is_literal:
                parts.append(sql.SQL("NULL"))
                continue
            compiled = self.exprs.get(expr)
            parts.append(compiled.sql)
            params.update(compiled.bind(auth=self.auth, input=self.input, bindings=env, record=self.record, secrets=self.secrets))
        row = self.conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(parts)), params).fetchone()
        return [expr.literal if expr.is_literal else value for expr, value in zip(exprs, row)]

    def value(self, expr: Expr, env: Mapping[str, Any]) -> Any:
        return self.values([expr], env)[0]

    def where(self, expr: Expr, env: Mapping[str, Any]):
        compiled = self.exprs.get(expr)
        return compiled.sql, compiled.bind(auth=self.auth, input=self.input, bindings=env, record=self.record, secrets=self.secrets)

    # steps ------------------------------------------------------------------------------

    def run(self, steps: tuple[Step, ...], env: dict[str, Any]) -> dict[str, Any]:
        for step in steps:
            env = self.step(step, env)
        return env

    def step(self, step: Step, env: dict[str, Any]) -> dict[str, Any]:
        kind, args = step.kind, step.args
        bound: Any = None
        if kind == "create":
            setter = args.get("set") or {}
            row = dict(zip(setter, self.values(list(setter.values()), env)))
            written = self.session.insert(step.target, [row])
            bound = written[0].row.id if written else None
        elif kind in ("update", "delete"):
            where = self._target_rows(step, env)
            if kind == "update":
                setter = args.get("set") or {}
                # evaluated once the rows are locked: `stock: input.product.stock - 1`
                # reads the stock a concurrent action may just have committed
                written = self.session.update(
                    step.target, where, lambda: dict(zip(setter, self.values(list(setter.values()), env))))
            else:
                written = self.session.delete(step.target, where)
            bound = [w.row.id for w in written] if "where" in args else (written[0].row.id if written else None)
        elif kind == "transition":
            from runtime.api.transitions import fire

            entity, transition = step.target.split(".", 1)
            row_id = self.value(args["id"], env)
            fire(self, entity, transition, row_id, check_access=False)
            bound = row_id
        elif kind == "assert":
            if not self.value(step.target, env):
                message = args.get("message") or f"assertion failed: {step.target.source}"
                raise ApiError(422, "P0001", str(message), details=step.path)
        elif kind == "let":
            names = list(step.target)
            env = {**env, **dict(zip(names, self.values([step.target[n] for n in names], env)))}
        elif kind == "if":
            branch = args.get("then", ()) if self.value(step.target, env) else args.get("else", ())
            self.run(branch, dict(env))
        elif kind == "for_each":
            items = self.value(step.target, env) or []
            if len(items) > MAX_LOOP:
                raise ApiError(422, "P0001", f"for_each at {step.path} would visit {len(items)} rows (at most {MAX_LOOP}).")
            for item in items:
                self.run(args.get("do", ()), {**env, step.as_name: item} if step.as_name else dict(env))
        elif kind in ("enqueue", "start", "emit"):
            given = args.get("with") or {}
            payload = dict(zip(given, (jsonable(v) for v in self.values(list(given.values()), env))))
            key = self.value(args["key"], env) if args.get("key") is not None else None
            delay = args.get("delay")
            self.outbox.add({"enqueue": "job", "start": "workflow", "emit": "event"}[kind], str(step.target), payload,
                            str(key) if key is not None else None, float(delay) if isinstance(delay, (int, float)) else None,
                            cause=f"{kind} at {step.path}")
        else:
            # http, ai, sleep, wait run only in jobs and workflows (the validator refuses them here)
            raise ApiError(500, "PGRST000", f"The step '{kind}' cannot run in a transaction.")
        if step.as_name and kind not in ("for_each", "let"):
            env = {**env, step.as_name: bound}
        return env

    def _target_rows(self, step: Step, env: Mapping[str, Any]):
        if "id" in step.args:
            row_id = self.value(step.args["id"], env)
            return sql.SQL("r.id = %(_target)s::uuid"), {"_target": str(row_id) if row_id is not None else None}
        return self.where(step.args["where"], env)
