"""Rule: each step kind appears only where the language allows it.

Actions and transitions run inside one database transaction, so they cannot call out
(`http`, `ai`) or park (`sleep`, `wait`). Jobs may call out but not park; only workflows
checkpoint, so only they can sleep, wait and compensate. A compensation cannot itself be
compensated, and does not park: it runs when the workflow has already failed for good.
"""

from __future__ import annotations

from typing import Iterator

from ..model import Definition, DefinitionError, pointer
from ..walk import step_sites

CODES = {
    "step.not_allowed_here": "A step kind used where it cannot run: http and ai outside jobs and "
                             "workflows; sleep, wait and compensate outside workflows; compensate, "
                             "sleep or wait inside a compensation.",
}

ALLOWED_IN = {
    "http": ("job", "workflow"),
    "ai": ("job", "workflow"),
    "sleep": ("workflow",),
    "wait": ("workflow",),
}
_OWNER_WORDS = {"action": "an action", "transition": "a transition", "job": "a job", "workflow": "a workflow"}


def check(d: Definition) -> Iterator[DefinitionError]:
    for site in step_sites(d):
        step, owner = site.step, _OWNER_WORDS[site.owner_kind]
        allowed = ALLOWED_IN.get(step.kind)
        if allowed and site.owner_kind not in allowed:
            places = " and ".join(f"{kind}s" for kind in allowed)
            yield DefinitionError("step.not_allowed_here", step.path + pointer(step.kind),
                                  f"'{step.kind}' steps run only in {places}; '{site.owner}' is {owner}.")
        if site.in_compensate and step.kind in ("sleep", "wait"):
            yield DefinitionError("step.not_allowed_here", step.path + pointer(step.kind),
                                  f"A compensation cannot '{step.kind}': it runs after the workflow failed for good.")
        if "compensate" in step.args:
            if site.owner_kind != "workflow":
                yield DefinitionError("step.not_allowed_here", f"{step.path}/compensate",
                                      f"Only workflows compensate; '{site.owner}' is {owner}.")
            elif site.in_compensate:
                yield DefinitionError("step.not_allowed_here", f"{step.path}/compensate",
                                      "A compensation step cannot have its own compensate.")
