"""Job and workflow runs through the admin API: listing with filters and cursors, one run
with its step timeline, retrying a dead run, cancelling a live one.

Runs and steps are written straight into `plinth_jobs` (the engine is not what is tested
here). Alice owns `acme`, Bob is its viewer, Dave its developer, Charlie a stranger; Erin
owns `globex`, whose runs must never show through acme's URLs.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection, connections

from runtime.jobs import control
from tenants import services
from tenants.models import AuditEvent, Tenant
from tests.conftest import client_for, make_user

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


# fixtures -------------------------------------------------------------------------------


def insert_run(tenant: Tenant, *, name="send_receipt", kind="job", state="queued", created_at=None, **columns) -> str:
    values = {
        "tenant_id": tenant.id, "kind": kind, "name": name, "state": state, "cause": "Order.paid",
        "created_at": created_at or T0, **columns,
    }
    for column in ("input", "result"):
        if column in values:
            values[column] = json.dumps(values[column])
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO plinth_jobs.runs ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))}) RETURNING id",
            list(values.values()),
        )
        return str(cur.fetchone()[0])


def insert_step(tenant: Tenant, run_id: str, key: str, kind: str, *, state="done", attempt=1, seconds=0.0, **columns):
    values = {"run_id": run_id, "tenant_id": tenant.id, "key": key, "kind": kind, "attempt": attempt, "state": state,
              "started_at": T0, "finished_at": T0 + timedelta(seconds=seconds), **columns}
    for column in ("detail", "result"):
        if column in values:
            values[column] = json.dumps(values[column])
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO plinth_jobs.steps ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})",
            list(values.values()),
        )


def run_row(run_id: str) -> dict:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT state, attempt, error, due_at, finished_at, lease_until, leased_by, now() FROM plinth_jobs.runs"
            " WHERE id = %s",
            [run_id],
        )
        keys = ("state", "attempt", "error", "due_at", "finished_at", "lease_until", "leased_by", "now")
        return dict(zip(keys, cur.fetchone()))


@pytest.fixture
def dave(acme):
    dave = make_user("dave@example.com")
    services.member_set(tenant=acme, email=dave.email, role="developer", actor=services.Actor(None))
    return dave


@pytest.fixture
def globex(db) -> Tenant:
    erin = make_user("erin@example.com")
    tenant, _ = services.tenant_create(owner=erin, name="Globex", slug="globex")
    return tenant


class BrokerQueue:
    """The run ids of the wake-ups sitting in the real broker's queue (no worker consumes
    this test run's queue), counting only those sent after it was made."""

    def __init__(self):
        import redis
        from django.conf import settings

        self.redis = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        self.queue = settings.CELERY_TASK_DEFAULT_QUEUE
        self.before = len(self._all())

    def _all(self) -> list:
        import base64
        import json

        found = []
        for raw in reversed(self.redis.lrange(self.queue, 0, -1)):    # oldest first
            message = json.loads(raw)
            if message.get("headers", {}).get("task") == "plinth.jobs.execute":
                args = json.loads(base64.b64decode(message["body"]))[0]
                found.append(uuid.UUID(args[0]))
        return found

    def sent(self) -> list:
        return self._all()[self.before:]

    def __eq__(self, other) -> bool:
        return self.sent() == list(other)

    def __repr__(self) -> str:
        return repr(self.sent())


@pytest.fixture
def woken() -> BrokerQueue:
    """The run ids workers were told about, read from the broker itself."""
    return BrokerQueue()


def url(run_id: str = "", action: str = "", slug: str = "acme") -> str:
    return f"/api/v1/tenants/{slug}/runs" + (f"/{run_id}" if run_id else "") + (f"/{action}" if action else "")


# listing --------------------------------------------------------------------------------


def test_runs_are_listed_newest_first_without_internals(acme, alice):
    old = insert_run(acme, name="nightly", created_at=T0, input={"n": 1}, started_at=T0,
                     finished_at=T0 + timedelta(seconds=3), state="succeeded", leased_by="w1:1")
    new = insert_run(acme, name="onboarding", kind="workflow", state="waiting", created_at=T0 + timedelta(hours=1),
                     wait_event="Order.paid", next_step="/workflows/onboarding/steps/1")
    response = client_for(alice).get(url())
    assert response.status_code == 200
    body = response.json()
    assert [r["id"] for r in body["runs"]] == [new, old] and body["next"] is None
    first, second = body["runs"]
    assert first["kind"] == "workflow" and first["state"] == "waiting" and first["final"] is False
    assert first["wait_event"] == "Order.paid" and first["next_step"] == "/workflows/onboarding/steps/1"
    assert second["duration_ms"] == 3000 and second["final"] is True
    assert second["created_at"] == "2025-03-01T12:00:00+00:00" and second["cause"] == "Order.paid"
    # the lease holder and the wait snapshot are internals; the list leaves out input too
    assert not {"leased_by", "lease_until", "since", "input", "tenant_id"} & set(second)


@pytest.mark.parametrize(
    "query,expected",
    [
        ("", ["r5", "r4", "r3", "r2", "r1"]),
        ("name=nightly", ["r3", "r1"]),
        ("kind=workflow", ["r4"]),
        ("state=dead", ["r5", "r2"]),
        ("state=dead,succeeded", ["r5", "r3", "r2", "r1"]),
        ("name=nightly&state=dead", []),
        ("since=2025-03-01T13:00:00Z", ["r5", "r4", "r3"]),  # inclusive
        ("until=2025-03-01T13:00:00Z", ["r2", "r1"]),  # exclusive
        ("since=2025-03-01T14:00:00%2B02:00&until=2025-03-01T12:45:00", ["r2", "r1"]),  # an offset; none is UTC
        ("since=2025-03-01T14:30:00+02:00", ["r5", "r4", "r3", "r2"]),  # a + left unencoded arrives as a space
        ("since=2025-03-02", []),  # a date is its midnight
        ("limit=2", ["r5", "r4"]),
    ],
)
def test_filters_narrow_the_list(acme, alice, query, expected):
    made = {}
    for n, (name, kind, state) in enumerate(
        [("nightly", "job", "succeeded"), ("send_receipt", "job", "dead"), ("nightly", "job", "succeeded"),
         ("onboarding", "workflow", "running"), ("send_receipt", "job", "dead")],
        start=1,
    ):
        made[insert_run(acme, name=name, kind=kind, state=state, created_at=T0 + timedelta(minutes=30 * (n - 1)))] = f"r{n}"
    response = client_for(alice).get(f"{url()}?{query}")
    assert response.status_code == 200, response.content
    assert [made[r["id"]] for r in response.json()["runs"]] == expected


def test_pages_follow_the_cursor_without_gaps_or_repeats(acme, alice):
    # 23 runs, several sharing a created_at, so the id breaks ties
    ids = {insert_run(acme, created_at=T0 + timedelta(seconds=n // 3)) for n in range(23)}
    client, seen, query, pages = client_for(alice), [], "limit=5", 0
    while True:
        body = client.get(f"{url()}?{query}").json()
        seen.extend(r["id"] for r in body["runs"])
        pages += 1
        if body["next"] is None:
            break
        query = f"limit=5&before={body['next']}"
    assert pages == 5 and len(seen) == 23 and set(seen) == ids
    created = [r["created_at"] for r in client.get(f"{url()}?limit=200").json()["runs"]]
    assert created == sorted(created, reverse=True)


def test_the_limit_is_capped_at_200(acme, alice):
    for n in range(205):
        insert_run(acme, created_at=T0 + timedelta(seconds=n))
    body = client_for(alice).get(f"{url()}?limit=1000").json()
    assert len(body["runs"]) == 200 and body["next"]


@pytest.mark.parametrize(
    "query,parameter",
    [
        ("since=yesterday", "since"),
        ("until=2025-13-01", "until"),
        ("since=2025-03-01T25:00:00Z", "since"),
        ("kind=cron", "kind"),
        ("state=done", "state"),
        ("state=dead,finished", "state"),
        ("limit=ten", "limit"),
        ("limit=1e3", "limit"),
        ("before=not-a-cursor", "before"),
        ("before=MjAyNS0wMy0wMXxub3Bl", "before"),  # base64 of "2025-03-01|nope"
        ("name=%00", "name"),
    ],
)
def test_invalid_parameters_are_a_400_naming_the_parameter(acme, alice, query, parameter):
    response = client_for(alice).get(f"{url()}?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    assert [e["path"] for e in body["errors"]] == [f"/{parameter}"]


# one run --------------------------------------------------------------------------------


def test_a_run_answers_its_steps_in_order_with_what_each_did(acme, alice):
    run_id = insert_run(acme, name="w", kind="workflow", state="dead", input={"customer": "c1"},
                        error="Step /workflows/w/steps/1/do/0#1 failed", started_at=T0, finished_at=T0 + timedelta(minutes=2))
    insert_step(acme, run_id, "/workflows/w/steps/0", "http", seconds=0.25,
                detail={"method": "POST", "url": "https://crm.example/contacts", "status": 201}, result={"status": 201})
    insert_step(acme, run_id, "/workflows/w/steps/1", "for_each", result=[1, 2])
    insert_step(acme, run_id, "/workflows/w/steps/1/do/0#0", "create", result={"id": "x"})
    insert_step(acme, run_id, "/workflows/w/steps/1/do/0#1", "create", state="failed",
                error="Invariant stock failed: no stock", detail={"status": 409, "code": "P0001"})
    response = client_for(alice).get(url(run_id))
    assert response.status_code == 200
    run = response.json()
    assert run["id"] == run_id and run["input"] == {"customer": "c1"} and run["state"] == "dead"
    assert run["duration_ms"] == 120_000 and run["steps_omitted"] == 0
    assert [(s["key"], s["kind"], s["state"]) for s in run["steps"]] == [
        ("/workflows/w/steps/0", "http", "done"),
        ("/workflows/w/steps/1", "for_each", "done"),
        ("/workflows/w/steps/1/do/0#0", "create", "done"),
        ("/workflows/w/steps/1/do/0#1", "create", "failed"),
    ]
    http, _, _, failed = run["steps"]
    assert http["detail"] == {"method": "POST", "url": "https://crm.example/contacts", "status": 201}
    assert http["duration_ms"] == 250 and http["result"] == {"status": 201}
    assert failed["error"] == "Invariant stock failed: no stock" and failed["attempt"] == 1


@pytest.mark.parametrize("run_id", ["not-a-uuid", "123", str(uuid.uuid4())])
def test_a_malformed_or_unknown_run_id_is_a_404(acme, alice, run_id):
    for method, path in [("get", url(run_id)), ("post", url(run_id, "retry")), ("post", url(run_id, "cancel"))]:
        response = getattr(client_for(alice), method)(path)
        assert response.status_code == 404, (method, path, response.content)
        assert response.json()["code"] == "not_found"


def test_another_tenants_run_is_never_visible_or_steerable(acme, globex, alice):
    theirs = insert_run(globex, state="dead", name="globex_job")
    insert_step(globex, theirs, "/jobs/globex_job/steps/0", "http")
    client = client_for(alice)
    assert client.get(url()).json()["runs"] == []
    assert client.get(f"{url()}?name=globex_job").json()["runs"] == []
    for method, path in [("get", url(theirs)), ("post", url(theirs, "retry")), ("post", url(theirs, "cancel"))]:
        response = getattr(client, method)(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert run_row(theirs)["state"] == "dead"


# who may do what ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,action,expected",
    [
        ("get", None, {"alice": 200, "bob": 200, "dave": 200, "charlie": 404, "anon": 401}),
        ("get", "", {"alice": 200, "bob": 200, "dave": 200, "charlie": 404, "anon": 401}),
        ("post", "retry", {"alice": 200, "bob": 403, "dave": 200, "charlie": 404, "anon": 401}),
        ("post", "cancel", {"alice": 409, "bob": 403, "dave": 409, "charlie": 404, "anon": 401}),
    ],
)
@pytest.mark.parametrize("person", ["alice", "bob", "dave", "charlie", "anon"])
def test_viewers_read_developers_steer_strangers_see_nothing(request, acme, dave, woken, person, method, action, expected):
    run_id = insert_run(acme, state="dead")
    user = None if person == "anon" else request.getfixturevalue(person)
    path = url() if action is None else url(run_id, action)
    response = getattr(client_for(user), method)(path)
    assert response.status_code == expected[person], response.content
    if response.status_code >= 400:
        assert set(response.json()) == {"code", "message", "errors"}
    if response.status_code == 403:
        assert response.json()["code"] == "permission_denied"
        assert run_row(run_id)["state"] == "dead"


# retry ----------------------------------------------------------------------------------


def test_retry_requeues_a_dead_run_from_attempt_0_and_wakes_a_worker_after_commit(
    acme, alice, woken, django_capture_on_commit_callbacks
):
    run_id = insert_run(acme, state="dead", attempt=5, error="boom", next_step="/jobs/send_receipt/steps/1",
                        due_at=T0, started_at=T0, finished_at=T0 + timedelta(seconds=9), leased_by="w:1")
    insert_step(acme, run_id, "/jobs/send_receipt/steps/0", "create")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(alice).post(url(run_id, "retry"))
        assert woken == []  # nothing sent before the commit
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "queued" and body["attempt"] == 0 and body["error"] is None and body["final"] is False
    assert body["next_step"] == "/jobs/send_receipt/steps/1" and len(body["steps"]) == 1  # checkpoints kept
    row = run_row(run_id)
    assert row["state"] == "queued" and row["attempt"] == 0 and row["error"] is None
    assert row["due_at"] == row["now"] and row["finished_at"] is None and row["leased_by"] is None
    for callback in callbacks:
        callback()
    assert woken == [uuid.UUID(run_id)]
    event = AuditEvent.objects.get(tenant=acme, action="run.retry")
    assert event.actor == alice and event.data == {"run_id": run_id, "kind": "job", "name": "send_receipt", "was": "dead"}


@pytest.mark.parametrize("state", ["queued", "running", "retrying", "sleeping", "waiting", "succeeded", "cancelled"])
def test_only_a_dead_run_can_be_retried(acme, alice, woken, state, django_capture_on_commit_callbacks):
    run_id = insert_run(acme, state=state, attempt=2)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(alice).post(url(run_id, "retry"))
    assert response.status_code == 409
    assert response.json()["code"] == "run_not_retryable" and state in response.json()["message"]
    assert run_row(run_id)["state"] == state and run_row(run_id)["attempt"] == 2
    assert woken == [] and not AuditEvent.objects.filter(action="run.retry").exists()


# cancel ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["queued", "running", "retrying", "sleeping", "waiting"])
def test_cancel_stops_a_live_run_and_drops_its_lease(acme, dave, state):
    run_id = insert_run(acme, state=state, lease_until=T0 + timedelta(days=9000), leased_by="w:1")
    response = client_for(dave).post(url(run_id, "cancel"))
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "cancelled" and response.json()["final"] is True
    row = run_row(run_id)
    assert row["state"] == "cancelled" and row["finished_at"] == row["now"]
    assert row["lease_until"] is None and row["leased_by"] is None
    assert AuditEvent.objects.get(action="run.cancel").data["was"] == state


@pytest.mark.parametrize("state", ["succeeded", "dead", "cancelled"])
def test_a_finished_run_cannot_be_cancelled(acme, alice, state):
    run_id = insert_run(acme, state=state, finished_at=T0)
    response = client_for(alice).post(url(run_id, "cancel"))
    assert response.status_code == 409 and response.json()["code"] == "run_already_final"
    assert run_row(run_id)["state"] == state and run_row(run_id)["finished_at"] == T0


def test_two_people_retrying_at_once_requeue_the_run_once(committed_tenants, woken):
    # committed (deleting the tenant afterwards deletes its runs), so both threads see it
    tenant, _ = committed_tenants(make_user("owner@example.com"), "Race", "race")
    run_id = insert_run(tenant, state="dead")
    barrier, outcomes = threading.Barrier(2), []

    def retry():
        try:
            barrier.wait()
            control.retry_run(tenant.id, run_id)
            outcomes.append("retried")
        except services.ServiceError as exc:
            outcomes.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=retry) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["retried", "run_not_retryable"]
    assert woken == [uuid.UUID(run_id)]


# the schema -----------------------------------------------------------------------------


def test_the_openapi_schema_describes_the_run_endpoints(db):
    from rest_framework.test import APIClient

    paths = APIClient().get("/api/v1/schema/?format=json").json()["paths"]
    assert {"get"} <= set(paths["/api/v1/tenants/{slug}/runs"])
    assert {"get"} <= set(paths["/api/v1/tenants/{slug}/runs/{run_id}"])
    assert "post" in paths["/api/v1/tenants/{slug}/runs/{run_id}/retry"]
    assert "post" in paths["/api/v1/tenants/{slug}/runs/{run_id}/cancel"]
