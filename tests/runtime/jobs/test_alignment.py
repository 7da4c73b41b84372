"""A push never puts runs in progress out of step with their history: a change to a step a
run has done, is parked at or is running is refused (409, nothing changed), dry run
included; steps no run has reached may change, steps may be added after, and once the
runs have ended (or are cancelled) the same push goes through. A resumed run then does
exactly the steps it had not done."""

from __future__ import annotations

import json
import time

import pytest

from runtime.jobs import control, engine
from runtime.jobs.alignment import CODE
from tenants.definitions import definition_push, live_version
from tenants.services import Actor

BASE = """
version: 1
entities:
  Note:
    fields:
      title: {type: string, required: true}
      log: {type: string, default: ""}
workflows:
  greet:
    input: {note: {type: ref, to: Note}}
    steps:
"""
STEP_A = """      - update: Note
        id: input.note
        set: {log: "input.note.log + 'a'"}
"""
SLEEP = """      - sleep: 1s
"""
STEP_B = """      - update: Note
        id: input.note
        set: {log: "input.note.log + 'b'"}
"""
STEP_C = """      - update: Note
        id: input.note
        set: {log: "input.note.log + 'c'"}
"""


def drain():
    while engine.work():
        pass


@pytest.fixture
def greeting(api_tenant):
    """A run of `greet` that has done its first step and sleeps at its second."""
    api = api_tenant(source=BASE + STEP_A + SLEEP + STEP_B)
    api.note = api.sql("INSERT INTO \"Note\" (title) VALUES ('hi') RETURNING id::text")[0][0]
    api.run = api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES ('workflow', 'greet', %s::jsonb) "
                      "RETURNING id::text", [json.dumps({"note": api.note})])[0][0]
    drain()
    assert api.sql("SELECT state FROM plinth_jobs.runs") == [("sleeping",)]
    return api


def push(api, source: str, **kw):
    return definition_push(tenant=api.tenant, source=source, content_type="application/yaml",
                           actor=Actor(api.owner), **kw)


def wake_and_finish(api) -> None:
    time.sleep(1.1)       # the sleep's end (runs wait for a worker's claim: none here but drain's)
    drain()


@pytest.mark.parametrize("changed", [
    pytest.param(STEP_C + STEP_A + SLEEP + STEP_B, id="a step inserted before the done one"),
    pytest.param(SLEEP + STEP_A + STEP_B, id="the done step moved"),
    pytest.param(STEP_C + SLEEP + STEP_B, id="the done step changed"),
    pytest.param(STEP_A + "      - sleep: 2s\n" + STEP_B, id="the step it is parked at changed"),
])
def test_a_push_changing_a_step_a_run_has_reached_is_refused_and_changes_nothing(greeting, changed):
    before = live_version(greeting.tenant).number
    for dry_run in (True, False):
        result = push(greeting, BASE + changed, dry_run=dry_run)
        assert result.status == "failed" and result.http_status == 409, result.as_dict()
        (error,) = result.errors
        assert error["code"] == CODE and error["path"].startswith("/workflows/greet/steps/")
        assert greeting.run in error["message"] and "greet" in error["message"]
    assert live_version(greeting.tenant).number == before
    wake_and_finish(greeting)       # the run goes on as it was defined
    assert greeting.sql('SELECT log FROM "Note"') == [("ab",)]


def test_steps_not_reached_may_change_and_steps_may_be_added_after(greeting):
    result = push(greeting, BASE + STEP_A + SLEEP + STEP_C + STEP_B)
    assert result.status == "applied", result.as_dict()
    wake_and_finish(greeting)       # a done, then the new c and b: nothing skipped, nothing twice
    assert greeting.sql('SELECT log FROM "Note"') == [("acb",)]
    assert greeting.sql("SELECT state FROM plinth_jobs.runs") == [("succeeded",)]


def test_once_the_runs_have_ended_the_push_goes_through(greeting):
    control.cancel_run(greeting.tenant.id, greeting.run)
    result = push(greeting, BASE + STEP_C + STEP_A + SLEEP + STEP_B)
    assert result.status == "applied", result.as_dict()


def test_a_push_removing_the_workflow_is_not_held_up_by_its_runs(greeting):
    result = push(greeting, BASE.split("workflows:")[0])
    assert result.status == "applied", result.as_dict()
