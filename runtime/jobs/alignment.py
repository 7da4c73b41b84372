"""What a push means for the runs in progress of the jobs and workflows it changes.

A run's history is kept by step: each checkpoint's key is the step's JSON Pointer in the
definition (`/workflows/onboard/steps/1`, `#<i>` appended inside a `for_each`), and a run
that resumes walks the live definition, taking every step whose key is done as done. So
a push that changes, moves or removes a step a run in progress has done or is parked at
would make that run skip a step it never ran, or run one again (a second email, a second
charge): `settle_runs` finds those runs, for `definition_push` to refuse (409, nothing
changed). Steps a run has not reached may change freely, and steps may be added after
the ones it has done. A push that goes through ends the runs of the jobs and workflows
it removes, and takes back from their workers the runs of changed ones that are running
(see `settle_runs`), so no worker goes on under the old steps.

Steps are compared shallowly: an `if`, `for_each` or a step with `compensate` is the same
step if everything but its nested steps is the same; nested steps a run reached are
compared at their own keys.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping

from runtime.definition.build import NESTED_STEP_KEYS
from runtime.definition.model import Definition
from runtime.definition.walk import raw_at
from runtime.jobs.schema import ACTIVE_STATES

CODE = "push.runs_out_of_step"

# A push holds this advisory lock, (PUSH_LOCK, hashtext(tenant id)), exclusively from just
# before its migration until it commits (`hold_runs_for_push`). Claims try it shared and
# skip the tenant's runs while a push holds it (`NOT_BEING_PUSHED`, in the engine's
# claims), and a retry waits for it: a run claimed under the old version after the push
# settled the runs, and worked on by its worker after the push committed, would record old
# steps under places that mean other steps now.
PUSH_LOCK = 0x504C
NOT_BEING_PUSHED = f"pg_try_advisory_xact_lock_shared({PUSH_LOCK}, hashtext(tenant_id))"


def hold_runs_for_push(cursor, tenant_id: str) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [PUSH_LOCK, str(tenant_id)])


def wait_for_push(cursor, tenant_id: str) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, hashtext(%s))", [PUSH_LOCK, str(tenant_id)])


_SECTIONS = {"job": "jobs", "workflow": "workflows"}
# the keys of the steps a run has done or is parked at, from `plinth_jobs.steps` as `s`
_REACHED = "coalesce(array_agg(DISTINCT s.key) FILTER (WHERE s.state IN ('done', 'parked')), '{}')"


@dataclass
class Settled:
    errors: list[dict] = field(default_factory=list)   # the push is refused if any
    resumed: list[str] = field(default_factory=list)    # running runs taken back from their workers


def settle_runs(cursor, tenant_id: str, old: Definition | None, new: Definition, *, lock: bool) -> Settled:
    """What a push from `old` to `new` means for the tenant's runs in progress, for
    `definition_push`: `errors` (`{"code", "path", "message"}`, one per job or workflow and
    step) name the runs `new` would put out of step; the push must then be refused.

    Only runs of jobs and workflows whose steps the push changes or removes are looked at.
    With `lock` (a real push, not a dry run) they are locked (FOR UPDATE: none checkpoints
    a step until the push's transaction ends; call this after the migration's DDL, which
    may wait for a worker's step, so that the push never holds a run a worker waits for
    while it waits for that worker), and, if nothing is refused:
    - runs of a removed job or workflow end `dead`, as their worker would have ended them;
    - runs a worker is running now (its lease not out) are taken back (`resumed`: due
      again, not counted as an attempt; the caller wakes them after commit): their
      worker follows the definition it claimed them under and would record later steps
      under places that mean other steps now; its next checkpoint finds the run no longer
      its own and stops, its step's writes rolled back (an http or ai call it made is made
      again, with the same idempotency key), and the run resumes on the new definition;
    - runs whose lease is out (their worker died) are left to a claim to take over, as
      any such run, their worker's hold on them dropped."""
    settled = Settled()
    if old is None:
        return settled
    removed, changed = [], []
    for kind, section in _SECTIONS.items():
        before, after = old.source.get(section) or {}, new.source.get(section) or {}
        for name, spec in before.items():
            if name not in after:
                removed.append((kind, name))
            elif (spec or {}).get("steps") != (after[name] or {}).get("steps"):
                changed.append((kind, name))
    if not removed and not changed:
        return settled
    touched = removed + changed
    kinds, names = [k for k, _ in touched], [n for _, n in touched]
    chosen = ("r.tenant_id = %s AND r.state = ANY(%s) "
              "AND (r.kind, r.name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))")
    args = [str(tenant_id), list(ACTIVE_STATES), kinds, names]
    if lock:
        cursor.execute(f"SELECT r.id FROM plinth_jobs.runs r WHERE {chosen} ORDER BY r.id FOR UPDATE", args)
    cursor.execute(
        f"SELECT r.id::text, r.kind, r.name, r.state, r.next_step, {_REACHED}"
        f" FROM plinth_jobs.runs r LEFT JOIN plinth_jobs.steps s ON s.run_id = r.id WHERE {chosen}"
        " GROUP BY r.id ORDER BY r.id", args)
    out_of_step: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    ended: list[str] = []           # runs of removed jobs and workflows
    running: list[str] = []
    calling: list[str] = []         # of those, runs whose worker may be in an http or ai call
    for run_id, kind, name, state, next_step, keys in cursor.fetchall():
        if (kind, name) in removed:
            ended.append(run_id)
            continue
        path = first_changed(old.source, new.source, keys)
        if path is not None:
            out_of_step[kind, name, path].append(run_id)
        elif state == "running":
            running.append(run_id)
            step = raw_at(old.source, next_step.split("#", 1)[0]) if next_step else None
            if isinstance(step, dict) and ("http" in step or "ai" in step):
                calling.append(run_id)
    settled.errors = [_error(kind, name, path, runs) for (kind, name, path), runs in sorted(out_of_step.items())]
    if settled.errors or not lock:
        return settled
    if ended:
        cursor.execute("UPDATE plinth_jobs.runs SET state = 'dead', "
                       "error = format('The %%s ''%%s'' is no longer in the definition (a push removed it).', kind, name), "
                       "finished_at = now(), lease_until = NULL, leased_by = NULL, updated_at = now() "
                       "WHERE id = ANY(%s::uuid[])", [ended])
    if running:
        # `queued` one attempt back (the claim counts it again, so the step keeps its
        # count), due at once; a run whose worker may still be waiting for an http or ai
        # answer only once that worker's lease is out, so the call is not made twice at
        # once. A run whose lease is out already (its worker died, maybe during this push:
        # the clock, not the push's start) stays as it is, for a claim to take over as
        # any other: that counts the death as an attempt, and ends the run once its
        # attempts are spent (so a push cannot give a run that kills its workers another go).
        cursor.execute("UPDATE plinth_jobs.runs SET state = 'queued', attempt = greatest(attempt - 1, 0), "
                       "due_at = CASE WHEN id = ANY(%s::uuid[]) THEN greatest(now(), lease_until) ELSE now() END, "
                       "lease_until = NULL, leased_by = NULL, updated_at = now() "
                       "WHERE id = ANY(%s::uuid[]) AND lease_until >= clock_timestamp() RETURNING id::text",
                       [calling, running])
        settled.resumed = [run_id for (run_id,) in cursor.fetchall()]
        # ... but its worker, should it be alive after all (slow, not dead), loses the run
        # now, not at the takeover: its next checkpoint fails, so it records no step of the
        # old definition once this push has committed
        cursor.execute("UPDATE plinth_jobs.runs SET leased_by = NULL, updated_at = now() "
                       "WHERE id = ANY(%s::uuid[]) AND state = 'running' AND lease_until < clock_timestamp()",
                       [running])
    return settled


def first_changed(old: Mapping[str, Any], new: Mapping[str, Any], keys) -> str | None:
    """The first step (in walk order) of a run's history `keys` that is not the same step
    in the definition tree `new` as in `old`, or None."""
    for path in sorted({key.split("#", 1)[0] for key in keys}, key=_walk_order):
        before = raw_at(old, path)     # None: no such step
        if before is None or _shallow(before) != _shallow(raw_at(new, path)):
            return path
    return None


def changed_since_history(cursor, tenant_id: str, run_id, kind: str, name: str) -> str | None:
    """For a run that is not in progress (a dead one about to be retried): the first step of
    its history that a push since its last claim changed, or None. Its history holds for
    the version its worker last claimed it under (`runs.version`; pushes while it was in
    progress kept the steps it had reached), which is compared with the live one."""
    cursor.execute(
        f"SELECT {_REACHED},"
        " (SELECT v.definition FROM tenants_definitionversion v WHERE v.tenant_id = r.tenant_id AND v.number = r.version),"
        " (SELECT v.definition FROM tenants_definitionversion v WHERE v.tenant_id = r.tenant_id"
        "  ORDER BY v.number DESC LIMIT 1)"
        " FROM plinth_jobs.runs r LEFT JOIN plinth_jobs.steps s ON s.run_id = r.id"
        " WHERE r.id = %s AND r.tenant_id = %s GROUP BY r.id", [run_id, str(tenant_id)])
    found = cursor.fetchone()
    if found is None or not found[0]:
        return None
    keys, then, now = found[0], _tree(found[1]), _tree(found[2])
    if not then or not now or name not in (now.get(_SECTIONS[kind]) or {}):
        return None     # no definition then, or the job is gone (the run ends dead again)
    return first_changed(then, now, keys)


def _tree(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _walk_order(path: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.split("/")]


def _error(kind: str, name: str, path: str, runs: list[str]) -> dict:
    shown = ", ".join(runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
    return {
        "code": CODE,
        "path": path,
        "message": (f"{len(runs)} run(s) of the {kind} '{name}' in progress ({shown}) have done or are parked at "
                    f"the step at {path}, which this push changes, moves or removes: they would "
                    "resume out of step (skipping a step or running one again). Let them finish, or cancel them "
                    "(POST /api/v1/tenants/<slug>/runs/<id>/cancel), then push again; steps they have not "
                    "reached may change, and steps may be added after theirs."),
    }


def _shallow(step: Any) -> Any:
    if isinstance(step, Mapping):
        return {key: value for key, value in step.items() if key not in NESTED_STEP_KEYS}
    return step
