"""Edge cases of the engine found in review, each once a real bug: a delivered wait as the
last step, a run cancelled while its step fails, compensations after a lost worker and
inside loops and branches, runs of a workflow a push removed, a match that cannot read an
event, a sleep as the last step, an answer holding NUL characters."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection

from runtime.jobs import control, engine
from runtime.jobs.delivery import deliver
from tests.fakes.receiver import Receiver

BASE = """
version: 1
entities:
  Note:
    fields:
      title: {type: string, required: true}
      n: {type: integer, default: 0}
"""


@pytest.fixture
def receiver():
    rx = Receiver().start()
    yield rx
    rx.stop()


def runs(api):
    with connection.cursor() as cur:
        cur.execute("SELECT name, state, attempt, error, result FROM plinth_jobs.runs WHERE tenant_id = %s "
                    "ORDER BY created_at", [api.tenant.id])
        return [(*row[:4], json.loads(row[4]) if isinstance(row[4], str) else row[4]) for row in cur.fetchall()]


def start(api, kind, name, **inputs):
    return api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES (%s, %s, %s::jsonb) RETURNING id::text",
                   (kind, name, json.dumps(inputs)))[0][0]


def drain():
    while engine.work():
        pass


def post_note(api, **note):
    response = api.client.post(f"/t/{api.slug}/rest/v1/Note", json.dumps(note), content_type="application/json",
                               HTTP_APIKEY=api.keys["service"])
    assert response.status_code == 201, response.content


def test_a_delivered_wait_as_the_last_step_completes_the_run(api_tenant):
    api = api_tenant(source=BASE + """
workflows:
  last_wait:
    steps:
      - wait: {event: Note.created}
        as: got
""")
    start(api, "workflow", "last_wait")
    drain()
    post_note(api, title="hello")
    (event_id,), = api.sql("SELECT id FROM plinth_jobs.events")
    assert deliver(event_id) == 1
    drain()
    (_, state, _, _, result), = runs(api)
    assert state == "succeeded" and result["got"]["title"] == "hello"


def test_a_run_cancelled_while_its_step_fails_does_not_strand_the_others(api_tenant, receiver):
    api = api_tenant(source=BASE + """
jobs:
  fails:
    steps:
      - http: {method: GET, url: "'%s/slow'"}
  other:
    steps:
      - create: Note
        set: {title: "'other ran'"}
""" % receiver.url.rstrip("/"))
    receiver.on(path="/slow", status=503, delay=1.0)
    run_id = start(api, "job", "fails")
    time.sleep(0.01)
    start(api, "job", "other")
    cancel = threading.Timer(0.4, lambda: control.cancel_run(api.tenant.id, run_id))
    cancel.start()
    try:
        drain()              # claims both; the first fails after it was cancelled
    finally:
        cancel.join()
        connection.close()
    assert sorted(r[:2] for r in runs(api)) == [("fails", "cancelled"), ("other", "succeeded")]


def test_a_workflow_whose_worker_was_lost_compensates_with_its_bindings(api_tenant):
    api = api_tenant(source=BASE + """
workflows:
  undo:
    steps:
      - create: Note
        set: {title: "'temporary'"}
        as: made
        compensate:
          - delete: Note
            id: made
      - sleep: 1s
      - create: Note
        set: {title: "'after'"}
""")
    start(api, "workflow", "undo")
    drain()
    assert api.sql('SELECT count(*) FROM "Note"') == [(1,)]
    time.sleep(1.1)
    assert len(engine._claim(engine._CLAIM_DUE)) == 1        # a worker takes it ... and dies
    with connection.cursor() as cur:                          # its lease runs out
        cur.execute("UPDATE plinth_jobs.runs SET lease_until = now() - interval '1 second' WHERE tenant_id = %s",
                    [api.tenant.id])
    drain()
    (_, state, _, error, _), = runs(api)
    assert state == "dead" and "lost" in error
    assert api.sql('SELECT count(*) FROM "Note"') == [(0,)]   # the compensation deleted what step 0 made


def test_compensations_inside_loops_and_branches_see_their_own_bindings(api_tenant):
    api = api_tenant(source=BASE + """
workflows:
  loop_undo:
    steps:
      - for_each: "[1, 2]"
        as: i
        do:
          - create: Note
            set: {title: "'made'", n: i}
            as: made
            compensate:
              - if: "i > 0"
                then:
                  - delete: Note
                    id: made
      - assert: "false"
        message: "fails for good"
""")
    start(api, "workflow", "loop_undo")
    drain()
    assert runs(api)[0][1] == "dead"
    assert api.sql('SELECT count(*) FROM "Note"') == [(0,)]


def test_runs_of_a_workflow_a_push_removed_end_dead_and_a_wait_without_timeout_lists(api_tenant):
    api = api_tenant(source=BASE + """
workflows:
  waits:
    steps:
      - wait: {event: Note.created}
      - create: Note
        set: {title: "'after'"}
""")
    run_id = start(api, "workflow", "waits")
    drain()
    assert runs(api)[0][1] == "waiting"
    listed, _ = control.list_runs(api.tenant.id)          # never due: no 500 on the way out
    assert [(r["state"], r["due_at"]) for r in listed] == [("waiting", None)]
    assert control.get_run(api.tenant.id, run_id)["state"] == "waiting"
    api.push(BASE + "\njobs:\n  j:\n    steps:\n      - create: Note\n        set: {title: \"'j'\"}\n")
    drain()
    (_, state, _, error, _), = runs(api)
    assert state == "dead" and "no longer in the definition" in error


def test_a_match_that_cannot_read_the_event_does_not_block_the_others(api_tenant):
    api = api_tenant(source=BASE + """
workflows:
  picky:
    input: {d: {type: integer}}
    steps:
      - wait: {event: Note.created, match: "event.record.n / input.d >= 0"}
        as: got
""")
    start(api, "workflow", "picky", d=0)     # its match divides by zero
    start(api, "workflow", "picky", d=1)
    drain()
    post_note(api, title="hello", n=1)
    (event_id,), = api.sql("SELECT id FROM plinth_jobs.events")
    assert deliver(event_id) == 1
    drain()
    assert sorted(r[1] for r in runs(api)) == ["succeeded", "waiting"]
    assert api.sql("SELECT count(*) FROM plinth_jobs.events WHERE delivered_at IS NULL") == [(0,)]


def test_a_sleep_as_the_last_step_records_the_result(api_tenant):
    api = api_tenant(source=BASE + """
workflows:
  nap:
    steps:
      - let: {x: 1}
      - sleep: 1s
""")
    start(api, "workflow", "nap")
    drain()
    time.sleep(1.1)
    drain()
    (_, state, _, _, result), = runs(api)
    assert state == "succeeded" and result == {"x": 1}


def test_an_answer_with_nul_characters_is_recorded_once(api_tenant, receiver):
    api = api_tenant(source=BASE + """
jobs:
  fetch:
    retry: {attempts: 3}
    steps:
      - http: {method: GET, url: "'%s/file'"}
        as: got
""" % receiver.url.rstrip("/"))
    receiver.on(path="/file", body="PK\x00\x03 binary", headers={"Content-Type": "application/octet-stream"})
    start(api, "job", "fetch")
    drain()
    (_, state, _, error, _), = runs(api)
    assert state == "succeeded", error
    assert len(receiver.requests) == 1
