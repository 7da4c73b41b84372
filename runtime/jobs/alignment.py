"""Whether a push would put runs in progress out of step with their own history.

A run's history is kept by step: each checkpoint's key is the step's JSON Pointer in the
definition (`/workflows/onboard/steps/1`, `#<i>` appended inside a `for_each`), and a run
that resumes walks the live definition, taking every step whose key is done as done. So
a push that changes, moves or removes a step a run in progress has done, is parked at, or
is running would make that run skip a step it never ran, or run one again (a second
email, a second charge). `runs_out_of_step` finds those runs, for `definition_push` to
refuse (409, nothing changed). Steps a run has not reached may change freely, and steps
may be added after the ones it has done; runs of a job or workflow the push removes end
`dead` when next claimed, as documented.

Steps are compared shallowly: an `if`, `for_each` or a step with `compensate` is the same
step if everything but its nested steps is the same; nested steps a run reached are
compared at their own keys.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

from runtime.definition.model import Definition
from runtime.jobs.schema import ACTIVE_STATES

CODE = "push.runs_out_of_step"
NESTED = ("then", "else", "do", "compensate")
_MISSING = object()
_SECTIONS = {"job": "jobs", "workflow": "workflows"}


def runs_out_of_step(cursor, tenant_id: str, old: Definition | None, new: Definition, *,
                     lock: bool) -> list[dict]:
    """Errors (`{"code", "path", "message"}`, one per job or workflow and step) naming the
    runs in progress that `new` would put out of step; [] if none. `lock`: the runs in
    progress are locked first (FOR UPDATE), so none checkpoints a step until the caller's
    transaction ends (a push's; run it after the migration's DDL, which may wait for a
    worker's step, so that the push never holds a run a worker waits for while it waits)."""
    if old is None:
        return []
    active = list(ACTIVE_STATES)
    if lock:
        cursor.execute("SELECT id FROM plinth_jobs.runs WHERE tenant_id = %s AND state = ANY(%s) ORDER BY id "
                       "FOR UPDATE", [str(tenant_id), active])
    cursor.execute(
        "SELECT r.id::text, r.kind, r.name, r.state, r.next_step,"
        "       coalesce(array_agg(DISTINCT s.key) FILTER (WHERE s.state IN ('done', 'parked')), '{}')"
        " FROM plinth_jobs.runs r LEFT JOIN plinth_jobs.steps s ON s.run_id = r.id"
        " WHERE r.tenant_id = %s AND r.state = ANY(%s) GROUP BY r.id ORDER BY r.id",
        [str(tenant_id), active])
    out_of_step: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for run_id, kind, name, state, next_step, keys in cursor.fetchall():
        section = _SECTIONS.get(kind)
        if section is None or name not in (new.source.get(section) or {}):
            continue        # removed by this push: the run ends dead when next claimed
        reached = {key.split("#", 1)[0] for key in keys}
        if state == "running":      # the step a worker runs now checkpoints after this push
            reached.add(next_step.split("#", 1)[0] if next_step else f"/{section}/{name}/steps/0")
        for path in sorted(reached):
            before = _at(old.source, path)
            if before is not _MISSING and _shallow(before) != _shallow(_at(new.source, path)):
                out_of_step[kind, name, path].append(run_id)
                break
    return [_error(kind, name, path, runs) for (kind, name, path), runs in sorted(out_of_step.items())]


def _error(kind: str, name: str, path: str, runs: list[str]) -> dict:
    shown = ", ".join(runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
    return {
        "code": CODE,
        "path": path,
        "message": (f"{len(runs)} run(s) of the {kind} '{name}' in progress ({shown}) have done, are parked at or "
                    f"are running the step at {path}, which this push changes, moves or removes: they would "
                    "resume out of step (skipping a step or running one again). Let them finish, or cancel them "
                    "(POST /api/v1/tenants/<slug>/runs/<id>/cancel), then push again; steps they have not "
                    "reached may change, and steps may be added after theirs."),
    }


def _at(tree: Any, pointer: str) -> Any:
    node = tree
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _shallow(step: Any) -> Any:
    if isinstance(step, Mapping):
        return {key: value for key, value in step.items() if key not in NESTED}
    return step
