"""A push never puts runs in progress out of step with their history: a change to a step a
run has done, is parked at or is running is refused (409, nothing changed), dry run
included; steps no run has reached may change, steps may be added after, and once the
runs have ended (or are cancelled) the same push goes through. A resumed run then does
exactly the steps it had not done."""

from __future__ import annotations

import json
import time

import pytest

from runtime.db import tenant_transaction
from runtime.jobs import control, engine
from runtime.jobs.alignment import CODE, hold_runs_for_push
from tenants.definitions import definition_push, live_version
from tenants.services import Actor
from write_support import in_thread, wait_while_running_until_blocked

NOTES = """
version: 1
entities:
  Note:
    fields:
      title: {type: string, required: true}
      log: {type: string, default: ""}
workflows:
"""
BASE = NOTES + """  greet:
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


def test_a_push_removing_the_workflow_ends_its_runs_then_and_there(greeting):
    result = push(greeting, NOTES.replace("workflows:\n", ""))
    assert result.status == "applied", result.as_dict()
    assert greeting.sql("SELECT state, error FROM plinth_jobs.runs") == [("dead", "The workflow 'greet' is no longer in the definition (a push removed it).")]
    # so a later push bringing back a workflow of that name, other steps, has nothing to misalign
    assert push(greeting, BASE + STEP_C + SLEEP + STEP_B).status == "applied"


def test_a_push_that_changes_no_steps_leaves_the_runs_alone(greeting):
    result = push(greeting, BASE.replace("title: {type: string, required: true}",
                                         "title: {type: string, required: true}\n      body: {type: text}")
                  + STEP_A + SLEEP + STEP_B)
    assert result.status == "applied", result.as_dict()
    assert greeting.sql("SELECT state FROM plinth_jobs.runs") == [("sleeping",)]


def test_a_run_a_worker_is_running_is_taken_back_and_resumes_on_the_new_steps(api_tenant):
    """The worker follows the definition it claimed the run under: left alone, it would
    finish the old steps (a, b) and the run would never do c. The push takes the run back;
    the worker's step is rolled back at its checkpoint, and the run resumes on a, b, c."""
    api = api_tenant(source=BASE + STEP_A + STEP_B)
    note = api.sql("INSERT INTO \"Note\" (title) VALUES ('hi') RETURNING id::text")[0][0]
    api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES ('workflow', 'greet', %s::jsonb)",
            [json.dumps({"note": note})])
    with tenant_transaction(api.tenant.id) as conn:
        conn.execute('SELECT 1 FROM "Note" WHERE id = %s FOR UPDATE', [note])
        thread, _ = in_thread(drain)
        wait_while_running_until_blocked(thread)    # step a waits for the note
        assert api.sql("SELECT state FROM plinth_jobs.runs") == [("running",)]
        result = push(api, BASE + STEP_A + STEP_B + STEP_C)
        assert result.status == "applied", result.as_dict()
        assert api.sql("SELECT state, attempt FROM plinth_jobs.runs") == [("queued", 0)]
    thread.join(60)
    drain()
    assert api.sql('SELECT log FROM "Note"') == [("abc",)]
    assert api.sql("SELECT state FROM plinth_jobs.runs") == [("succeeded",)]


def test_a_run_whose_worker_died_is_left_to_the_takeover_that_counts_the_death(api_tenant):
    """A run whose lease is out (its worker died mid-step) is not taken back by a push: the
    claim that takes it over counts the death as an attempt, so a run that kills its
    workers still ends dead once its attempts are spent, push or no push. (Taken back, it
    was queued and its step run once more.) Its worker loses it at the push all the same:
    alive after all, it would go on under the old steps."""
    api = api_tenant(source=BASE + STEP_A + STEP_B)
    note = api.sql("INSERT INTO \"Note\" (title) VALUES ('hi') RETURNING id::text")[0][0]
    api.sql("INSERT INTO plinth_jobs.runs (kind, name, input, state, attempt, next_step, started_at, "
            "lease_until, leased_by) VALUES ('workflow', 'greet', %s::jsonb, 'running', 1, "
            "'/workflows/greet/steps/0', now(), now() - interval '1 second', 'gone:1')", [json.dumps({"note": note})])
    assert push(api, BASE + STEP_A + STEP_B + STEP_C).status == "applied"
    assert api.sql("SELECT state, attempt FROM plinth_jobs.runs") == [("running", 1)]
    # its worker, were it alive after all (slow), has lost it: its next checkpoint fails
    run_id = api.sql("SELECT id::text FROM plinth_jobs.runs")[0][0]
    old_claim = engine.Run(run_id, api.tenant.id, "workflow", "greet", {}, 1, "queued", None, "gone:1", 1)
    with pytest.raises(engine.LeaseLost), tenant_transaction(api.tenant.id) as conn:
        engine._fenced(conn, old_claim, "lease_until = now() + interval '1 minute'")
    drain()
    state, error = api.sql("SELECT state, error FROM plinth_jobs.runs")[0]
    assert state == "dead" and "lost 1 time(s)" in error, error
    assert api.sql('SELECT log FROM "Note"') == [("",)]      # its step did not run again


LOOP = NOTES + """  each:
    input: {note: {type: ref, to: Note}}
    steps:
      - for_each: "[1, 2]"
        as: n
        do:
          - update: Note
            id: input.note
            set: {log: "input.note.log + 'x'"}
      - sleep: 1s
"""


@pytest.mark.parametrize("edit", [
    pytest.param(("set: {log: \"input.note.log + 'x'\"}", "set: {log: \"input.note.log + 'y'\"}"),
                 id="a step inside the loop, done in its iterations"),
    pytest.param(('for_each: "[1, 2]"', 'for_each: "[1, 2, 3]"'), id="the loop itself"),
])
def test_steps_nested_in_a_loop_count_at_their_own_places(api_tenant, edit):
    api = api_tenant(source=LOOP)
    note = api.sql("INSERT INTO \"Note\" (title) VALUES ('hi') RETURNING id::text")[0][0]
    api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES ('workflow', 'each', %s::jsonb)",
            [json.dumps({"note": note})])
    drain()
    assert api.sql("SELECT state FROM plinth_jobs.runs") == [("sleeping",)]
    result = push(api, LOOP.replace(*edit))
    assert result.status == "failed", result.as_dict()
    assert result.errors[0]["path"] in ("/workflows/each/steps/0", "/workflows/each/steps/0/do/0")
    assert push(api, LOOP + "      - sleep: 1s\n").status == "applied"      # added after: fine


def test_a_dead_run_is_not_retried_after_a_push_changed_a_step_it_had_done(api_tenant):
    from tenants.services import ServiceError

    api = api_tenant(source=BASE + STEP_A + "      - assert: \"false\"\n")
    note = api.sql("INSERT INTO \"Note\" (title) VALUES ('hi') RETURNING id::text")[0][0]
    run = api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES ('workflow', 'greet', %s::jsonb) "
                  "RETURNING id::text", [json.dumps({"note": note})])[0][0]
    drain()
    assert api.sql("SELECT state FROM plinth_jobs.runs") == [("dead",)]
    # a push changing only the step it died at: the retry resumes there, on the new step
    assert push(api, BASE + STEP_A + STEP_B).status == "applied"
    control.retry_run(api.tenant.id, run)
    drain()
    assert api.sql('SELECT log FROM "Note"') == [("ab",)]
    # once dead again, a push changing the step it had done: not retried
    api.sql("UPDATE plinth_jobs.runs SET state = 'dead'")
    assert push(api, BASE + STEP_C + STEP_B).status == "applied"
    with pytest.raises(ServiceError) as refused:
        control.retry_run(api.tenant.id, run)
    assert refused.value.code == "run_out_of_step" and "/workflows/greet/steps/0" in refused.value.message


def test_no_run_is_claimed_while_a_push_of_its_tenant_is_under_way(api_tenant):
    """A push holds its tenant's runs from just before its migration until it commits: a
    run claimed meanwhile would be worked on under the old steps after the push."""
    api = api_tenant(source=BASE + STEP_A)
    note = api.sql("INSERT INTO \"Note\" (title) VALUES ('hi') RETURNING id::text")[0][0]
    api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES ('workflow', 'greet', %s::jsonb)",
            [json.dumps({"note": note})])
    with tenant_transaction(api.tenant.id) as conn:
        hold_runs_for_push(conn.cursor(), api.tenant.id)     # as definition_push does
        assert engine.work() == 0
        assert api.sql("SELECT state FROM plinth_jobs.runs") == [("queued",)]
    drain()
    assert api.sql("SELECT state FROM plinth_jobs.runs") == [("succeeded",)]


@pytest.mark.parametrize("skew", ["-1 hour", "1 hour"])
def test_a_retry_goes_by_the_version_the_run_was_claimed_under_whatever_the_clocks(api_tenant, skew):
    """The version a dead run's history belongs to is recorded when a worker claims it, not
    inferred from timestamps taken by two clocks (Postgres's for steps, the control plane's
    for versions). With the control plane's clock an hour behind, the new version looked
    older than the run's last step; an hour ahead, no version looked old enough: either
    way the retry went through and resumed out of step."""
    from django.db import connection

    from tenants.services import ServiceError

    api = api_tenant(source=BASE + STEP_A + "      - assert: \"false\"\n")
    note = api.sql("INSERT INTO \"Note\" (title) VALUES ('hi') RETURNING id::text")[0][0]
    run = api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES ('workflow', 'greet', %s::jsonb) "
                  "RETURNING id::text", [json.dumps({"note": note})])[0][0]
    drain()
    assert control.get_run(api.tenant.id, run)["version"] == live_version(api.tenant).number
    assert push(api, BASE + STEP_C + "      - assert: \"false\"\n").status == "applied"
    with connection.cursor() as cur:
        cur.execute("UPDATE tenants_definitionversion SET created_at = created_at + %s::interval WHERE tenant_id = %s",
                    [skew, api.tenant.id])
    with pytest.raises(ServiceError) as refused:
        control.retry_run(api.tenant.id, run)
    assert refused.value.code == "run_out_of_step" and "/workflows/greet/steps/0" in refused.value.message
    assert api.sql("SELECT state FROM plinth_jobs.runs") == [("dead",)]


def test_a_claim_begun_before_a_push_committed_works_under_the_pushed_version(api_tenant):
    """A claim's statement takes its snapshot, then tries its tenant's push lock. A push
    that commits in between has released the lock by then, so the claim goes through; the
    version it records must be the pushed one. Read from the statement's snapshot, it was
    the version the push replaced, and the worker ran the old steps (here: a, not a and b)
    after the push had settled the runs for the new ones. A gate (an advisory lock the test
    holds) stops the claim between its snapshot and its lock try, while the push commits."""
    from django.db import connection

    from runtime.jobs.alignment import PUSH_LOCK

    gate = 0x4741
    api = api_tenant(source=BASE + STEP_A)
    note = api.sql("INSERT INTO \"Note\" (title) VALUES ('hi') RETURNING id::text")[0][0]
    run_id = api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES ('workflow', 'greet', %s::jsonb) "
                     "RETURNING id::text", [json.dumps({"note": note})])[0][0]
    # the engine's own claim of one run, with the gate first among its conditions (the
    # cheapest: Postgres orders a scan's conditions by cost)
    gated = engine._CLAIM.format(select=(
        f"{engine._TARGET} WHERE id = %(id)s AND pg_temp.gate() AND {engine._DUE} AND {engine._CLAIMABLE} "
        "FOR UPDATE SKIP LOCKED"))
    assert gated.replace("pg_temp.gate() AND ", "") == engine._CLAIM_ONE

    def claim():
        with connection.cursor() as cur:
            cur.execute("CREATE FUNCTION pg_temp.gate() RETURNS boolean LANGUAGE plpgsql VOLATILE COST 0.0001 AS "
                        f"$$ BEGIN PERFORM pg_advisory_xact_lock_shared({gate}); RETURN true; END $$")
            cur.execute("SELECT pg_backend_pid()")
            pids.append(cur.fetchone()[0])
        return engine._claim(gated, run_id)

    pids: list[int] = []
    with tenant_transaction(api.tenant.id) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", [gate])
        thread, claimed = in_thread(claim)
        deadline = time.monotonic() + 30
        while not (pids and api.sql("SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory'"
                                    " AND objid = %s AND NOT granted", [pids[0], gate]) == [(1,)]):
            assert thread.is_alive() and time.monotonic() < deadline, "the claim never reached the gate"
            time.sleep(0.05)
        # stopped at the gate, before its lock try: the push does not wait for it
        assert api.sql("SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND classid = %s",
                       [pids[0], PUSH_LOCK]) == [(0,)]
        assert push(api, BASE + STEP_A + STEP_B).status == "applied"
    thread.join(60)
    [run] = claimed[0]
    assert run.version == live_version(api.tenant).number
    engine._execute_guarded(run)
    assert api.sql('SELECT log FROM "Note"') == [("ab",)]
    assert api.sql("SELECT state, version FROM plinth_jobs.runs") == [("succeeded", run.version)]
