"""The run engine in this process (`work()` is what a woken worker calls), against the real
database: runs created by committed writes only, checkpoints, retries, timers, waits,
compensation. The same engine under real Celery workers is tested in test_workers.py."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from runtime.jobs import engine
from runtime.jobs.delivery import deliver

DEFINITION = """
version: 1
entities:
  Note:
    fields:
      title: {type: string, required: true}
      done: {type: boolean, default: false}
      touched: {type: integer, default: 0}
    checks:
      - {name: not_too_many, rule: "record.touched <= 3", message: "touched too often"}
actions:
  add_note:
    input: {title: {type: string, required: true}, key: {type: string}}
    access: "true"
    steps:
      - create: Note
        set: {title: input.title}
        as: note
      - enqueue: mark_done
        with: {note: note}
        key: input.key
      - assert: "input.title != 'fail'"
        message: "asked to fail"
jobs:
  mark_done:
    input: {note: {type: ref, to: Note}}
    steps:
      - update: Note
        id: input.note
        set: {done: true, touched: input.note.touched + 1}
  flaky:
    input: {note: {type: ref, to: Note}}
    retry: {attempts: 3}
    steps:
      - update: Note
        id: input.note
        set: {touched: input.note.touched + 1}
      - assert: "input.note.touched >= 99"
        message: "not yet"
workflows:
  nap:
    input: {note: {type: ref, to: Note}}
    steps:
      - sleep: 1s
      - update: Note
        id: input.note
        set: {done: true}
  follow_up:
    input: {note: {type: ref, to: Note}}
    steps:
      - wait: {event: Note.created, match: "event.record.title == input.note.title + ' again'", timeout: 2s}
        as: again
      - if: "again == null"
        then:
          - update: Note
            id: input.note
            set: {title: "'nobody came'"}
        else:
          - update: Note
            id: input.note
            set: {done: true}
  undo:
    input: {title: {type: string}}
    steps:
      - create: Note
        set: {title: input.title}
        as: made
        compensate:
          - delete: Note
            id: made
      - assert: "false"
        message: "the second step always fails"
"""


def runs(api):
    with connection.cursor() as cur:
        cur.execute("SELECT name, state, attempt, error FROM plinth_jobs.runs WHERE tenant_id = %s ORDER BY created_at",
                    [api.tenant.id])
        return cur.fetchall()


def steps(api, name):
    with connection.cursor() as cur:
        cur.execute("SELECT s.key, s.state, s.attempt FROM plinth_jobs.steps s JOIN plinth_jobs.runs r ON r.id = s.run_id "
                    "WHERE r.tenant_id = %s AND r.name = %s ORDER BY s.id", [api.tenant.id, name])
        return cur.fetchall()


def enqueue(api, job, **inputs):
    """A run as an `enqueue` step would make it (through the tenant's own transaction)."""
    import json

    return api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES (%s, %s, %s::jsonb) RETURNING id::text",
                   ("workflow" if job in ("nap", "follow_up", "undo") else "job", job, json.dumps(inputs)))[0][0]


def drain():
    while engine.work():
        pass


@pytest.fixture
def notes(api_tenant):
    return api_tenant(source=DEFINITION)


def test_an_enqueued_job_runs_once_after_its_action_commits(notes):
    response = notes.client.post(f"/t/{notes.slug}/rest/v1/rpc/add_note", '{"title": "Milk"}',
                                 content_type="application/json", HTTP_APIKEY=notes.keys["service"])
    assert response.status_code == 200, response.content
    assert runs(notes) == [("mark_done", "queued", 0, None)]
    drain()
    assert runs(notes) == [("mark_done", "succeeded", 1, None)]
    assert notes.sql('SELECT done, touched FROM "Note"') == [(True, 1)]
    assert steps(notes, "mark_done") == [("/jobs/mark_done/steps/0", "done", 1)]
    drain()   # nothing more to do: the data effect happened once
    assert notes.sql('SELECT touched FROM "Note"') == [(1,)]
    # audited as the run
    assert notes.sql("SELECT actor_kind, actor_id LIKE 'job:mark_done:%%' FROM _audit WHERE operation = 'update'") == [("run", True)]


def test_a_rolled_back_action_starts_nothing_and_a_key_enqueues_once(notes):
    post = lambda body: notes.client.post(f"/t/{notes.slug}/rest/v1/rpc/add_note", body,  # noqa: E731
                                          content_type="application/json", HTTP_APIKEY=notes.keys["service"])
    assert post('{"title": "fail"}').status_code == 422
    assert runs(notes) == []
    assert post('{"title": "B", "key": "k1"}').status_code == 200
    assert post('{"title": "C", "key": "k1"}').status_code == 200
    assert [r[0] for r in runs(notes)] == ["mark_done"]


def test_a_failing_step_is_retried_then_the_run_is_dead(notes):
    note = notes.sql("INSERT INTO \"Note\" (title) VALUES ('x') RETURNING id::text")[0][0]
    enqueue(notes, "flaky", note=note)
    drain()
    (name, state, attempt, error), = runs(notes)
    assert (state, attempt) == ("dead", 3) and "not yet" in error
    # the update step ran once (checkpointed); the assert failed three times
    assert notes.sql('SELECT touched FROM "Note"') == [(1,)]
    assert steps(notes, "flaky") == [("/jobs/flaky/steps/0", "done", 1), ("/jobs/flaky/steps/1", "failed", 1),
                                     ("/jobs/flaky/steps/1", "failed", 2), ("/jobs/flaky/steps/1", "failed", 3)]


def test_a_sleep_parks_the_run_and_fires_once(notes):
    note = notes.sql("INSERT INTO \"Note\" (title) VALUES ('x') RETURNING id::text")[0][0]
    enqueue(notes, "nap", note=note)
    drain()
    assert runs(notes)[0][1] == "sleeping"
    drain()
    assert runs(notes)[0][1] == "sleeping"      # not yet
    time.sleep(1.1)
    drain()
    drain()
    assert runs(notes)[0][1] == "succeeded"
    assert [s[:2] for s in steps(notes, "nap")] == [("/workflows/nap/steps/0", "parked"), ("/workflows/nap/steps/0", "done"),
                                                    ("/workflows/nap/steps/1", "done")]


def test_a_wait_resumes_on_the_matching_event_only(notes):
    note = notes.sql("INSERT INTO \"Note\" (title) VALUES ('tea') RETURNING id::text")[0][0]
    enqueue(notes, "follow_up", note=note)
    drain()
    assert runs(notes)[0][1] == "waiting"
    post = lambda title: notes.client.post(f"/t/{notes.slug}/rest/v1/Note", '{"title": "%s"}' % title,  # noqa: E731
                                           content_type="application/json", HTTP_APIKEY=notes.keys["service"])
    assert post("coffee again").status_code == 201      # does not match
    assert post("tea again").status_code == 201
    events = notes.sql("SELECT id FROM plinth_jobs.events ORDER BY id")
    assert len(events) == 2
    assert deliver(events[0][0]) == 0
    assert deliver(events[1][0]) == 1
    drain()
    assert runs(notes)[0][1] == "succeeded"
    assert notes.sql('SELECT title, done FROM "Note" WHERE id = %s', [note]) == [("tea", True)]
    # the run's result: what its steps bound (the wait bound the matching row)
    result = notes.sql("SELECT result FROM plinth_jobs.runs")[0][0]
    assert result["again"]["title"] == "tea again"


def test_an_event_committed_before_the_run_parks_still_counts(notes):
    note = notes.sql("INSERT INTO \"Note\" (title) VALUES ('jam') RETURNING id::text")[0][0]
    enqueue(notes, "follow_up", note=note)
    notes.client.post(f"/t/{notes.slug}/rest/v1/Note", '{"title": "jam again"}', content_type="application/json",
                      HTTP_APIKEY=notes.keys["service"])
    drain()     # the run parks and finds the event that came first
    assert runs(notes)[0][1] == "succeeded"


def test_a_wait_times_out_to_null(notes):
    note = notes.sql("INSERT INTO \"Note\" (title) VALUES ('x') RETURNING id::text")[0][0]
    enqueue(notes, "follow_up", note=note)
    drain()
    assert runs(notes)[0][1] == "waiting"
    time.sleep(2.1)
    drain()
    assert runs(notes)[0][1] == "succeeded"
    assert notes.sql('SELECT title FROM "Note"') == [("nobody came",)]


def test_a_workflow_that_fails_for_good_runs_its_compensations(notes):
    enqueue(notes, "undo", title="temporary")
    drain()
    (name, state, attempt, error), = runs(notes)
    assert state == "dead" and "always fails" in error
    assert notes.sql('SELECT count(*) FROM "Note"') == [(0,)]       # created, then compensated
    assert [s[:2] for s in steps(notes, "undo")] == [
        ("/workflows/undo/steps/0", "done"), ("/workflows/undo/steps/1", "failed"),
        ("/workflows/undo/steps/0/compensate/0", "done")]


def test_a_retried_dead_run_resumes_at_its_failed_step_without_redoing_data(notes):
    from runtime.jobs import control
    from tenants.services import ServiceError

    note = notes.sql("INSERT INTO \"Note\" (title) VALUES ('x') RETURNING id::text")[0][0]
    run_id = enqueue(notes, "flaky", note=note)
    drain()
    assert runs(notes)[0][1] == "dead"
    notes.sql('UPDATE "Note" SET touched = 99')         # now the assert will hold
    control.retry_run(notes.tenant.id, run_id)
    drain()
    assert runs(notes)[0][1] == "succeeded"
    assert notes.sql('SELECT touched FROM "Note"') == [(99,)]     # step 0 was not run again
    # a workflow whose compensations ran cannot resume
    undo = enqueue(notes, "undo", title="t")
    drain()
    with pytest.raises(ServiceError) as refused:
        control.retry_run(notes.tenant.id, undo)
    assert refused.value.code == "run_compensated"


def test_a_suspended_tenants_runs_wait_until_it_is_active_again(notes):
    from tenants import services

    note = notes.sql("INSERT INTO \"Note\" (title) VALUES ('x') RETURNING id::text")[0][0]
    enqueue(notes, "mark_done", note=note)
    services.tenant_update(tenant=notes.tenant, actor=services.Actor(notes.owner), status="suspended")
    drain()
    assert runs(notes)[0][1] == "queued"
    services.tenant_update(tenant=notes.tenant, actor=services.Actor(notes.owner), status="active")
    drain()
    assert runs(notes)[0][1] == "succeeded"


def test_the_sweeper_wakes_due_and_lost_runs_and_passes_over_runs_another_transaction_holds(notes):
    """Due runs and runs whose worker was lost are woken (`woken_at` set); a run another
    transaction holds (a push settling its tenant's runs, in id order) is left for the next
    tick instead of waited for: waiting, the sweeper held the rows it had taken, in no
    order, and could deadlock with the push (which then failed)."""
    from runtime.db import tenant_transaction
    from runtime.jobs.sweeper import sweep
    from write_support import in_thread

    note = notes.sql("INSERT INTO \"Note\" (title) VALUES ('x') RETURNING id::text")[0][0]
    due, held, lost = (enqueue(notes, "mark_done", note=note) for _ in range(3))
    with connection.cursor() as cur:
        cur.execute("UPDATE plinth_jobs.runs SET due_at = now() - interval '1 minute' WHERE id = ANY(%s::uuid[])",
                    [[due, held]])
        cur.execute("UPDATE plinth_jobs.runs SET state = 'running', lease_until = now() - interval '1 second', "
                    "leased_by = 'gone' WHERE id = %s", [lost])
    with tenant_transaction(notes.tenant.id) as conn:
        conn.execute("SELECT 1 FROM plinth_jobs.runs WHERE id = %s FOR UPDATE", [held])
        thread, answers = in_thread(sweep)
        thread.join(30)
        assert not thread.is_alive(), "the sweeper waited for a run another transaction holds"
    assert answers and answers[0]["runs"] == 2
    with connection.cursor() as cur:
        cur.execute("SELECT id::text FROM plinth_jobs.runs WHERE tenant_id = %s AND woken_at IS NOT NULL",
                    [notes.tenant.id])
        assert sorted(r[0] for r in cur.fetchall()) == sorted([due, lost])
    assert sweep()["runs"] == 1      # the next tick, once it is free


def test_finished_runs_are_forgotten_after_their_retention(notes, settings):
    from runtime.jobs.sweeper import sweep

    note = notes.sql("INSERT INTO \"Note\" (title) VALUES ('x') RETURNING id::text")[0][0]
    old, recent = enqueue(notes, "mark_done", note=note), enqueue(notes, "mark_done", note=note)
    drain()
    with connection.cursor() as cur:
        cur.execute("UPDATE plinth_jobs.runs SET finished_at = now() - interval '31 days' WHERE id = %s", [old])
    settings.PLINTH_RUN_RETENTION_DAYS = 30
    sweep()
    with connection.cursor() as cur:
        cur.execute("SELECT id::text FROM plinth_jobs.runs WHERE tenant_id = %s", [notes.tenant.id])
        assert [r[0] for r in cur.fetchall()] == [recent]
        cur.execute("SELECT count(*) FROM plinth_jobs.steps WHERE run_id = %s", [old])
        assert cur.fetchone()[0] == 0
