"""Running job and workflow runs: claim with a lease, replay the checkpoints, run the next
step, checkpoint, continue.

A run is a program (its definition's steps) plus a history (`plinth_jobs.steps`). Every
step has a key: its JSON Pointer in the definition, with `#i` for each enclosing
`for_each` iteration (`/workflows/w/steps/1/do/0#2`). To run, the engine walks the
program from the top: a step whose key has a `done` row is not run again, its recorded
result is bound instead (control steps record their condition or collection too, so the
walk takes the same branches); the first step without one is run and checkpointed.

- Data steps (create, update, delete, transition, assert, let, enqueue, start, emit, and
  the condition of `if` and collection of `for_each`) run in one transaction under the
  tenant's role with a `WriteSession` (checks, state machines, invariants, audit; entity
  access rules are not asked, as in actions), and their checkpoint is written by that
  same transaction: a data effect happens exactly once.
- `http` and `ai` steps compute their values in a short transaction, call out with the
  idempotency key `<run id>:<step key>`, then checkpoint; a crash between the call and the
  checkpoint repeats the call with the same key.
- `sleep` and `wait` park the run (state `sleeping` / `waiting`, `due_at` the end of the
  timer or the wait's timeout) and return the worker. A `wait` is matched by an event
  committed after the run's previous checkpoint (`runs.since`, a snapshot), either when
  it parks (an event that came first) or when the event is delivered (runtime.jobs.delivery).

Every checkpoint is fenced by the claim's lease token: a worker whose lease expired (and
whose run another worker took over) cannot record anything, and its data step rolls back.

Failures: a step that raises fails the attempt. Attempts count per step (a checkpoint
resets the count): before `retry.attempts` the run is `retrying` with exponential
backoff; after, a workflow runs the `compensate` blocks of its completed steps in reverse
order, and the run is `dead`. A claim whose previous holder's lease expired counts as an
attempt, so a run that kills its worker ends dead too.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping

import psycopg
import structlog
from django.conf import settings
from django.db import connection

from runtime.api.errors import ApiError
from runtime.api.integrity import WriteSession
from runtime.api.steps import StepRunner
from runtime.compile import CompiledBackend
from runtime.db import retried, tenant_transaction
from runtime.jobs.alignment import NOT_BEING_PUSHED
from runtime.definition.model import Expr, Step
from runtime.jobs.outbox import jsonable

log = structlog.get_logger(__name__)



def lease_seconds() -> float:
    """A step's lease (calls get their timeout on top): a run whose worker died is taken
    over this long after its last checkpoint (settings.PLINTH_RUN_LEASE_SECONDS)."""
    return settings.PLINTH_RUN_LEASE_SECONDS

DEFAULT_CALL_TIMEOUT = 30.0   # http and ai steps without a timeout of their own
MAX_BACKOFF = 3600.0
DRAIN = 50                    # runs one wake-up may take in a row while more are due
CLAIM_BATCH = 4               # due runs taken by one claim
ERROR_LIMIT = 2000


DATA_KINDS = ("create", "update", "delete", "transition", "assert", "let", "enqueue", "start", "emit")


class Parked(Exception):
    """The run parked (sleep or wait): its state is stored, the worker is free."""


class LeaseLost(Exception):
    """Another worker holds the run now; nothing of this attempt was recorded."""


class StepFailure(Exception):
    def __init__(self, key: str, kind: str, message: str, retryable: bool = True, detail: dict | None = None):
        super().__init__(message)
        self.key, self.kind, self.message, self.retryable, self.detail = key, kind, message, retryable, detail


@dataclass(frozen=True)
class RunCaller:
    """Who a job's writes are by: the run (audited as `run`, with the job and run id)."""

    label: str
    role: str = "service"
    user_id: None = None
    email: None = None
    claims: dict = field(default_factory=dict)
    is_service: bool = True
    auth: None = None

    def db_claims(self) -> dict:
        return {"sub": "", "role": "service", "email": ""}


@dataclass
class Run:
    id: str
    tenant_id: str
    kind: str
    name: str
    input: dict
    attempt: int
    previous_state: str
    error: str | None
    token: str
    version: int | None           # the definition version this claim works under (runs.version)
    fresh: bool = False           # never claimed before: no history to load
    completed: bool = False


# -- claiming -------------------------------------------------------------------------

# Every write of a claimed run holds only while the claim does: this claim's token, running.
_FENCE = "WHERE id = %(id)s AND leased_by = %(token)s AND state = 'running'"

# The live version is read by a VOLATILE function (migration 0009), not a subquery: the
# statement's snapshot predates the push lock tried in `target`, and a push that committed
# between the two would go unseen, the run then claimed under the version it replaced.
_CLAIM = """
WITH target AS ({select})
UPDATE plinth_jobs.runs r SET state = 'running',
    attempt = CASE WHEN target.state IN ('sleeping', 'waiting') THEN r.attempt ELSE r.attempt + 1 END,
    takeovers = r.takeovers + CASE WHEN target.state = 'running' THEN 1 ELSE 0 END,
    lease_until = now() + make_interval(secs => %(lease)s), leased_by = %(token)s || ':' || r.id,
    started_at = coalesce(r.started_at, now()), woken_at = NULL, updated_at = now(),
    version = plinth_jobs.live_version(r.tenant_id)
FROM target WHERE r.id = target.id
RETURNING r.id::text, r.tenant_id, r.kind, r.name, r.input, r.attempt, target.state, r.error, target.fresh, r.version
"""
_DUE = "((state IN ('queued', 'retrying', 'sleeping', 'waiting') AND due_at <= now()) OR (state = 'running' AND lease_until < now()))"
# `fresh`: never claimed before, so it has no step history to load
_TARGET = "SELECT id, state, started_at IS NULL AS fresh FROM plinth_jobs.runs"
# a suspended tenant's runs wait until it is active again
ACTIVE_TENANT = "EXISTS (SELECT 1 FROM tenants_tenant t WHERE t.id = tenant_id AND t.status = 'active')"
# ... and a tenant's runs wait while a push of its definition is under way (alignment.py)
_CLAIMABLE = f"{ACTIVE_TENANT} AND {NOT_BEING_PUSHED}"
_CLAIM_ONE = _CLAIM.format(select=f"{_TARGET} WHERE id = %(id)s AND {_DUE} AND {_CLAIMABLE} FOR UPDATE SKIP LOCKED")
_CLAIM_DUE = _CLAIM.format(select=(
    f"{_TARGET} WHERE state IN ('queued', 'retrying', 'sleeping', 'waiting') "
    f"AND due_at <= now() AND {_CLAIMABLE} ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED"))
_CLAIM_LOST = _CLAIM.format(select=(
    f"{_TARGET} WHERE state = 'running' AND lease_until < now() AND {_CLAIMABLE} "
    "ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED"))


def _claim(query: str, run_id: str | None = None, limit: int = 1) -> list[Run]:
    # host:pid of this process (not of the parent a pool process was forked from); one
    # token per claimed run
    prefix = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cur:
        cur.execute(query, {"id": run_id, "lease": lease_seconds(), "token": prefix, "limit": limit})
        rows = cur.fetchall()
    runs = []
    for row in rows:
        run_input = row[4] if isinstance(row[4], dict) else json.loads(row[4] or "{}")
        runs.append(Run(row[0], row[1], row[2], row[3], run_input, row[5], row[6], row[7], f"{prefix}:{row[0]}",
                        row[9], fresh=row[8]))
    return runs


def work(run_id: str | None = None) -> int:
    """Run `run_id` if it is due and free, then any other due runs (up to DRAIN)."""
    done = 0
    if run_id is not None:
        try:
            uuid.UUID(str(run_id))
        except ValueError:
            return 0
        for run in _claim(_CLAIM_ONE, str(run_id)):
            _execute_guarded(run)
            done += 1
    while done < DRAIN:
        # a few due runs per claim (one round trip and commit for them all), kept small so
        # that their leases do not run out while they wait their turn here
        claimed_at = time.monotonic()
        runs = _claim(_CLAIM_DUE, limit=CLAIM_BATCH) or _claim(_CLAIM_LOST)
        if not runs:
            break
        for run in runs:
            if time.monotonic() - claimed_at > lease_seconds() / 4 and not _renew(run):
                continue          # its lease ran out while it waited its turn: another worker has it
            _execute_guarded(run)
            done += 1
    return done


def _renew(run: Run) -> bool:
    with connection.cursor() as cur:
        cur.execute(f"UPDATE plinth_jobs.runs SET lease_until = now() + make_interval(secs => %(lease)s) {_FENCE}",
                    {"lease": lease_seconds(), "id": run.id, "token": run.token})
        return cur.rowcount == 1


# -- running --------------------------------------------------------------------------


def execute(run: Run) -> None:
    log_ = log.bind(run_id=run.id, tenant_id=run.tenant_id, job=run.name, attempt=run.attempt)
    try:
        backend = _backend(run)
        spec = (backend.jobs if run.kind == "job" else backend.workflows).get(run.name)
        if spec is None:
            return _finish_dead(run, f"The {run.kind} '{run.name}' is no longer in the definition.")
        attempts = max(1, spec.retry.attempts)
        execution = Execution(run, backend, spec)
        if run.error is not None:            # died while compensating: finish that
            execution.replay_only()
            execution.compensate()
            return _finish_dead(run, run.error, compensated=True)
        if run.previous_state == "running" and run.attempt > attempts:
            message = f"The worker running it was lost {attempts} time(s) (its lease expired)."
            execution.replay_only()          # the bindings its compensations need
            return _fail_for_good(run, execution, message)
        execution.go()
        log_.info("jobs.run_succeeded")
    except Parked:
        log_.info("jobs.run_parked")
    except LeaseLost:
        log_.warning("jobs.lease_lost")
    except StepFailure as failure:
        log_.info("jobs.step_failed", step=failure.key, error=failure.message)
        try:
            _failed(run, execution, failure, attempts)
        except LeaseLost:             # cancelled, or taken over, meanwhile: not ours to record
            log_.warning("jobs.lease_lost")
    except _Missing as missing:
        _finish_dead(run, str(missing))


def _execute_guarded(run: Run) -> None:
    """`execute`, and whatever it did not foresee is a failed attempt, not a dead worker
    task that strands the run (and the rest of its claim) until the lease expires. The
    exception's text is not recorded: it may hold a secret."""
    try:
        execute(run)
    except Exception as exc:
        log.exception("jobs.internal_error", run_id=run.id, tenant_id=run.tenant_id, error=type(exc).__name__)
        try:
            with tenant_transaction(run.tenant_id) as conn:
                _fenced(conn, run, "state = 'retrying', lease_until = NULL, leased_by = NULL, "
                        "due_at = now() + interval '5 seconds', error = %(error)s",
                        error=f"An internal error stopped the run ({type(exc).__name__}); it will be tried again.")
        except Exception:
            pass    # the lease expires and the sweeper hands the run on


class _Missing(Exception):
    pass


def _backend(run: Run) -> CompiledBackend:
    from runtime.api.backends import backend_for

    if run.version is None:
        raise _Missing("The tenant has no definition (or no longer exists).")
    return backend_for(run.tenant_id, run.version)


def _failed(run: Run, execution: "Execution", failure: StepFailure, attempts: int) -> None:
    with tenant_transaction(run.tenant_id) as conn:
        _record_step(conn, run, failure.key, failure.kind, "failed", detail=failure.detail,
                     error=failure.message[:ERROR_LIMIT], fenced=True)
        if failure.retryable and run.attempt < attempts:
            backoff = min(MAX_BACKOFF, execution.spec.retry.backoff_seconds * (2 ** (run.attempt - 1)))
            _fenced(conn, run, "state = 'retrying', lease_until = NULL, leased_by = NULL, "
                    "due_at = now() + make_interval(secs => %(backoff)s), error = NULL", backoff=backoff)
            return
    _fail_for_good(run, execution, f"{failure.message} (step {failure.key}, attempt {run.attempt})")


def _fail_for_good(run: Run, execution: "Execution", message: str) -> None:
    if run.kind == "workflow" and execution.has_compensations():
        with tenant_transaction(run.tenant_id) as conn:   # remember the failure: a crash resumes compensating
            _fenced(conn, run, "error = %(error)s", error=message[:ERROR_LIMIT])
        run.error = message
        execution.compensate()
        return _finish_dead(run, message, compensated=True)
    _finish_dead(run, message)


def _finish_dead(run: Run, message: str, compensated: bool = False) -> None:
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE plinth_jobs.runs SET state = 'dead', error = %(error)s, finished_at = now(), lease_until = NULL, "
            f"leased_by = NULL, updated_at = now() {_FENCE}",
            {"error": message[:ERROR_LIMIT], "id": run.id, "token": run.token})
    log.warning("jobs.run_dead", run_id=run.id, tenant_id=run.tenant_id, job=run.name, error=message[:200],
                compensated=compensated)


def _fenced(conn, run: Run, assignments: str, **params) -> None:
    """`UPDATE runs SET <assignments>` of this run, only while this claim holds it."""
    cur = conn.execute(f"UPDATE plinth_jobs.runs SET {assignments}, updated_at = now() {_FENCE}",
                       {"id": run.id, "token": run.token, **params})
    if cur.rowcount != 1:
        raise LeaseLost(run.id)


def _record_step(conn, run: Run, key: str, kind: str, state: str, *, result: Any = None, detail: Any = None,
                 error: str | None = None, fenced: bool = False, next_step: str | None = None,
                 complete: bool = False, outcome: Any = None) -> None:
    """A step row; for `done` rows the run's checkpoint too (fenced by the lease)."""
    params = {"id": run.id, "token": run.token, "key": key, "kind": kind, "attempt": run.attempt, "state": state,
              "detail": _json(detail), "result": _json(result), "error": error, "next": next_step,
              "lease": lease_seconds(), "outcome": _json(outcome)}
    if state == "done":
        run_update = (
            "UPDATE plinth_jobs.runs SET next_step = %(next)s, attempt = 1, "
            "since = pg_current_snapshot(), updated_at = now(), "
            + ("state = 'succeeded', result = %(outcome)s::jsonb, finished_at = now(), lease_until = NULL, leased_by = NULL "
               if complete else "lease_until = now() + make_interval(secs => %(lease)s) ")
            + f"{_FENCE} RETURNING id, tenant_id")
    else:
        run_update = ("SELECT id, tenant_id FROM plinth_jobs.runs WHERE id = %(id)s"
                      + (" AND leased_by = %(token)s AND state = 'running'" if fenced else ""))
    row = conn.execute(
        f"WITH run AS ({run_update}) INSERT INTO plinth_jobs.steps "
        "(run_id, tenant_id, key, kind, attempt, state, detail, result, error) "
        "SELECT run.id, run.tenant_id, %(key)s, %(kind)s, %(attempt)s, %(state)s, %(detail)s::jsonb, %(result)s::jsonb, "
        "%(error)s FROM run RETURNING id", params).fetchone()
    if row is None and (state == "done" or fenced):
        raise LeaseLost(run.id)
    if state == "done":
        run.attempt = 1     # attempts count per step
        run.completed = complete


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(jsonable(value))


# -- the program ----------------------------------------------------------------------


class _Stop(Exception):
    """Replay reached the first step without a checkpoint."""


@dataclass
class Execution:
    run: Run
    backend: CompiledBackend
    spec: Any
    done: dict[str, Any] = field(default_factory=dict)       # key -> recorded result
    parked: dict[str, dict] = field(default_factory=dict)    # key -> detail of its latest park
    order: list[str] = field(default_factory=list)            # done keys in the order they finished
    env: dict[str, Any] = field(default_factory=dict)
    replaying: bool = False
    env_at: dict[str, dict] = field(default_factory=dict)    # key -> the bindings after it (with its loop's)
    _secrets: dict[str, str] | None = None

    def __post_init__(self):
        self.caller = RunCaller(f"{self.run.kind}:{self.run.name}:{self.run.id}")
        self.steps_by_path = _steps_by_path(self.spec.steps)
        if not self.run.fresh:
            self._load_history()

    def _load_history(self) -> None:
        with connection.cursor() as cur:
            cur.execute("SELECT key, state, result, detail FROM plinth_jobs.steps WHERE run_id = %s "
                        "AND state IN ('done', 'parked') ORDER BY id", [self.run.id])
            for key, state, result, detail in cur.fetchall():
                if state == "done":
                    self.done[key] = _loads(result)
                    self.order.append(key)
                else:
                    self.parked[key] = _loads(detail) or {}

    def _mark(self, key: str, recorded: Any) -> None:
        self.done[key] = recorded
        self.order.append(key)

    def checkpoint(self, conn, key: str, kind: str, recorded: dict, env: Mapping[str, Any], *, last: bool,
                   following: str | None, detail: Any = None) -> dict:
        """The step is done: its row and the run's progress (the run's end, if it was the
        last), in the caller's transaction."""
        _record_step(conn, self.run, key, kind, "done", result=recorded, detail=detail, next_step=following,
                     complete=last, outcome=self.outcome(env, recorded) if last else None)
        self._mark(key, recorded)
        return recorded

    # walking ----------------------------------------------------------------------------

    def go(self) -> None:
        env = self.block(self.spec.steps, {}, "", top=True)
        if not self.run.completed:   # its last step was done before this claim (a delivered wait), or was if/for_each
            self.complete(env)

    def replay_only(self) -> None:
        self.replaying = True
        try:
            self.block(self.spec.steps, {}, "", top=True)
        except _Stop:
            pass
        self.replaying = False

    def block(self, steps: tuple[Step, ...], env: dict[str, Any], suffix: str, top: bool = False) -> dict[str, Any]:
        for index, step in enumerate(steps):
            last = top and index == len(steps) - 1
            following = steps[index + 1].path + suffix if index + 1 < len(steps) else None
            env = self.step(step, env, suffix, last=last, following=following)
            self.env = env
        return env

    def step(self, step: Step, env: dict[str, Any], suffix: str, *, last: bool, following: str | None) -> dict[str, Any]:
        key = step.path + suffix
        kind = step.kind
        if key in self.done:
            recorded = self.done[key]
        elif self.replaying:
            raise _Stop()
        else:
            recorded = self.perform(step, key, env, last=last and kind not in ("if", "for_each"),
                                    following=following)
        if kind == "if":
            branch = step.args.get("then", ()) if recorded.get("value") else step.args.get("else", ())
            self.block(branch, dict(env), suffix)
            return env
        if kind == "for_each":
            for i, item in enumerate(recorded.get("value") or ()):
                inner = {**env, step.as_name: item} if step.as_name else dict(env)
                self.block(step.args.get("do", ()), inner, f"{suffix}#{i}")
            return env
        after = {**env, **(recorded.get("bind") or {})} if isinstance(recorded, dict) else env
        self.env_at[key] = after      # what its compensations see
        return after

    @staticmethod
    def outcome(env: Mapping[str, Any], recorded: Any) -> dict:
        """A finished run's result: the names its top-level steps bound."""
        bound = recorded.get("bind") if isinstance(recorded, dict) else None
        return jsonable({**env, **(bound or {})})

    def complete(self, env: Mapping[str, Any]) -> None:
        self.run.completed = True
        with tenant_transaction(self.run.tenant_id) as conn:
            _fenced(conn, self.run, "state = 'succeeded', result = %(outcome)s::jsonb, finished_at = now(), "
                    "lease_until = NULL, leased_by = NULL, next_step = NULL", outcome=_json(env))

    # performing -------------------------------------------------------------------------

    def perform(self, step: Step, key: str, env: dict[str, Any], *, last: bool, following: str | None) -> dict:
        kind = step.kind
        try:
            if kind in DATA_KINDS or kind in ("if", "for_each"):
                # one transaction (the step and its checkpoint), run again if Postgres
                # rolled it back for a deadlock: not a failure of the step
                return retried(partial(self.data_step, step, key, env, last=last, following=following))
            if kind in ("http", "ai"):
                return self.call_step(step, key, env, last=last, following=following)
            if kind == "sleep":
                return self.sleep_step(step, key, env, last=last, following=following)
            if kind == "wait":
                # its match may lose a deadlock (delivery._holds): looked at again, not failed
                return retried(partial(self.wait_step, step, key, env, last=last, following=following))
        except (Parked, LeaseLost, StepFailure):
            raise
        except ApiError as exc:
            raise StepFailure(key, kind, f"{exc.message}" + (f" ({exc.details})" if getattr(exc, "details", None) else ""),
                              detail={"status": exc.status, "code": exc.code}) from exc
        except psycopg.Error as exc:
            from runtime.api.errors import from_postgres

            answer = from_postgres(exc)
            raise StepFailure(key, kind, answer.message, detail={"code": answer.code}) from exc
        except Exception as exc:      # its text may hold a secret: the type only
            log.exception("jobs.step_internal_error", run_id=self.run.id, step=key)
            raise StepFailure(key, kind, f"An internal error stopped the step ({type(exc).__name__}).") from exc
        raise StepFailure(key, kind, f"The step '{kind}' cannot run here.", retryable=False)

    def _runner(self, conn, env: Mapping[str, Any]) -> StepRunner:
        session = WriteSession(conn, self.backend, self.caller, enforce_access=False)
        return StepRunner(conn, self.backend, session, None, self.run.input, secrets=self._secrets)

    def data_step(self, step: Step, key: str, env: dict[str, Any], *, last: bool, following: str | None) -> dict:
        with tenant_transaction(self.run.tenant_id) as conn:
            runner = self._runner(conn, env)
            if step.kind == "if":
                recorded: dict = {"value": bool(runner.value(step.target, env))}
            elif step.kind == "for_each":
                items = jsonable(runner.value(step.target, env) or [])
                from runtime.api.steps import MAX_LOOP

                if len(items) > MAX_LOOP:
                    raise StepFailure(key, "for_each", f"for_each would visit {len(items)} rows (at most {MAX_LOOP}).",
                                      retryable=False)
                recorded = {"value": items}
            else:
                after = runner.step(step, dict(env))
                bind = {k: jsonable(v) for k, v in after.items() if k not in env or after[k] is not env[k]}
                recorded = {"bind": bind} if bind else {}
            runner.session.finish()
            self.checkpoint(conn, key, step.kind, recorded, env, last=last, following=following)
        runner.session.outbox.wake()
        return recorded

    def secrets(self) -> dict[str, str]:
        if self._secrets is None:
            from tenants.secrets import secrets_for

            self._secrets = secrets_for(self.run.tenant_id)
        return self._secrets

    def _timeout(self, step: Step) -> float:
        given = step.target.get("timeout") if isinstance(step.target, Mapping) else None
        return float(given or self.spec.timeout_seconds or DEFAULT_CALL_TIMEOUT)

    def call_step(self, step: Step, key: str, env: dict[str, Any], *, last: bool, following: str | None) -> dict:
        from runtime.jobs import calls

        secrets = self.secrets()
        spec = step.target
        exprs: list[Expr] = []

        def collect(node):
            if isinstance(node, Expr):
                exprs.append(node)
            elif isinstance(node, Mapping):
                for value in node.values():
                    collect(value)

        evaluated = {k: v for k, v in spec.items() if k not in ("method", "timeout", "output")}
        collect(evaluated)
        timeout = self._timeout(step)
        with tenant_transaction(self.run.tenant_id) as conn:
            runner = self._runner(conn, env)
            values = dict(zip((e.path for e in exprs), runner.values(exprs, env)))
            # the lease must outlast the call
            _fenced(conn, self.run, "lease_until = now() + make_interval(secs => %(lease)s), next_step = %(key)s",
                    lease=lease_seconds() + 4 * timeout, key=key)

        def build(node):
            # values as Postgres gave them: http_call sends decimals as JSON numbers
            if isinstance(node, Expr):
                return values[node.path]
            if isinstance(node, Mapping):
                return {k: build(v) for k, v in node.items()}
            return node

        built = {k: build(v) for k, v in evaluated.items()}
        idempotency_key = f"{self.run.id}:{key}"
        used = [v for v in secrets.values() if v]
        try:
            if step.kind == "http":
                result = calls.http_call(method=str(spec.get("method", "GET")), url=str(built.get("url") or ""),
                                         headers=built.get("headers") or {},
                                         body=built.get("body"), timeout=timeout, idempotency_key=idempotency_key,
                                         secrets=used)
                detail = {"method": str(spec.get("method", "GET")), "url": calls.redact(calls.display_url(str(built.get("url") or "")), used),
                          "status": result.get("status")}
            else:
                output, tokens = calls.ai_call(tenant_id=self.run.tenant_id, system=built.get("system"),
                                               prompt=str(built.get("prompt") or ""), model=built.get("model"),
                                               output=spec.get("output"), timeout=timeout,
                                               idempotency_key=idempotency_key)
                result, detail = output, calls.redact({"model": built.get("model"), "tokens": tokens}, used)
        except calls.StepFailed as failed:
            raise StepFailure(key, step.kind, calls.redact(failed.message, used), retryable=failed.retryable,
                              detail=calls.redact(failed.detail, used)) from failed
        result = calls.redact(result, used)
        recorded = {"bind": {step.as_name: result}} if step.as_name else {}
        with tenant_transaction(self.run.tenant_id) as conn:
            return self.checkpoint(conn, key, step.kind, recorded, env, last=last, following=following, detail=detail)

    def _park(self, conn, key: str, kind: str, state: str, due: str, detail: dict, wait_event: str | None = None,
              **params) -> None:
        _fenced(conn, self.run, f"state = '{state}', due_at = {due}, next_step = %(key)s, wait_event = %(event)s, "
                "lease_until = NULL, leased_by = NULL", key=key, event=wait_event, **params)
        _record_step(conn, self.run, key, kind, "parked", detail=detail)

    def sleep_step(self, step: Step, key: str, env: dict[str, Any], *, last: bool, following: str | None) -> dict:
        with tenant_transaction(self.run.tenant_id) as conn:
            now = conn.execute("SELECT now()").fetchone()[0]
            until = self.parked.get(key, {}).get("until")
            until_at = datetime.datetime.fromisoformat(until) if until else now + datetime.timedelta(seconds=float(step.target))
            if until and now >= until_at:
                return self.checkpoint(conn, key, "sleep", {}, env, last=last, following=following,
                                       detail={"until": until})
            self._park(conn, key, "sleep", "sleeping", "%(until)s", {"until": until_at.isoformat()}, until=until_at)
        raise Parked()

    def wait_step(self, step: Step, key: str, env: dict[str, Any], *, last: bool, following: str | None) -> dict:
        from runtime.jobs.delivery import lock_event, matching_event

        spec = step.target
        event_name = str(spec["event"])
        with tenant_transaction(self.run.tenant_id) as conn:
            now = conn.execute("SELECT now()").fetchone()[0]
            lock_event(conn, event_name)
            parked = self.parked.get(key)
            found = matching_event(conn, self.backend, self.run.id, step, env, self.run.input)
            if found is None and parked and parked.get("timeout_at") and now >= datetime.datetime.fromisoformat(parked["timeout_at"]):
                found = ("timeout", None)
            if found is not None:
                value = found[1]
                recorded = {"bind": {step.as_name: value}} if step.as_name else {}
                return self.checkpoint(conn, key, "wait", recorded, env, last=last, following=following,
                                       detail={"event": event_name, "outcome": found[0]})
            if parked:
                timeout_at = parked.get("timeout_at")
            else:
                timeout_at = (now + datetime.timedelta(seconds=float(spec["timeout"]))).isoformat() \
                    if spec.get("timeout") is not None else None
            self._park(conn, key, "wait", "waiting", "%(timeout_at)s::timestamptz",
                       {"event": event_name, "timeout_at": timeout_at, "env": jsonable(env)}, wait_event=event_name,
                       timeout_at=timeout_at)
        raise Parked()

    # compensation -----------------------------------------------------------------------

    def has_compensations(self) -> bool:
        return any(self.steps_by_path.get(k.split("#", 1)[0]) is not None
                   and self.steps_by_path[k.split("#", 1)[0]].args.get("compensate") for k in self.order)

    def compensate(self) -> None:
        """The compensate blocks of completed steps, latest first, each with the bindings
        its step saw (its loop variable and its own `as` included). Their steps are walked
        and checkpointed like any other (a crash resumes here); one that fails is recorded
        and the other blocks still run."""
        for key in reversed(list(self.order)):
            path, _, rest = key.partition("#")
            step = self.steps_by_path.get(path)
            if step is None or not step.args.get("compensate"):
                continue
            suffix = "#" + rest if rest else ""
            try:
                self.block(step.args["compensate"], dict(self.env_at.get(key, self.env)), suffix)
            except StepFailure as failure:
                with tenant_transaction(self.run.tenant_id) as conn:
                    _record_step(conn, self.run, failure.key, failure.kind, "failed", detail=failure.detail,
                                 error=("compensation failed: " + failure.message)[:ERROR_LIMIT], fenced=True)


def _steps_by_path(steps: tuple[Step, ...]) -> dict[str, Step]:
    found: dict[str, Step] = {}

    def walk(items):
        for step in items:
            found[step.path] = step
            for nested in ("then", "else", "do", "compensate"):
                if isinstance(step.args.get(nested), tuple):
                    walk(step.args[nested])

    walk(steps)
    return found


def _loads(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        return json.loads(value)
    return value

