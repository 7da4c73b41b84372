"""Jobs and workflows on real processes: Celery workers, beat and gunicorn started here,
real Redis (one of the test's own where it is killed and flushed), a recording HTTP
receiver for `http` steps. Nothing of ours is mocked; the assertions count rows in the
tenant's tables and requests at the receiver."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from django.db import connection

from runtime.api.backends import backend_for
from runtime.api.context import issue_access_token, resolve_tenant
from runtime.db import tenant_transaction
from runtime.jobs.outbox import Outbox
from tenants import secrets as tenant_secrets
from tenants.services import Actor
from tests.fakes.receiver import Receiver

from jobs_platform import Platform

pytestmark = pytest.mark.worker

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

DEFINITION = """
version: 1
secrets: [RX_KEY]
entities:
  Effect:
    fields:
      n: {type: integer, required: true}
  Ticket:
    fields:
      subject: {type: string, required: true}
      answered: {type: boolean, default: false}
  Reply:
    fields:
      ticket: {type: ref, to: Ticket, required: true, related_name: replies}
      body: {type: text}
jobs:
  chaos:
    input: {n: {type: integer, required: true}}
    retry: {attempts: 20, backoff: 1s}
    timeout: 5s
    steps:
      - create: Effect
        set: {n: input.n}
      - http: {method: POST, url: "'{RX}/effects'", headers: {Authorization: "'Bearer ' + secrets.RX_KEY"},
               body: {n: input.n}}
  poison_fail:
    retry: {attempts: 2, backoff: 1s}
    steps:
      - http: {method: POST, url: "'{RX}/fail'"}
  poison_kill:
    retry: {attempts: 2}
    timeout: 4s
    steps:
      - http: {method: POST, url: "'{RX}/hang'"}
  tick:
    schedule: "* * * * *"
    steps:
      - create: Effect
        set: {n: 7000}
workflows:
  follow:
    on: [Ticket.created]
    steps:
      - wait: {event: Reply.created, match: "event.record.ticket == input.record.id", timeout: 1h}
        as: reply
      - update: Ticket
        id: input.record.id
        set: {answered: "reply != null"}
  nap:
    on: [Ticket.created]
    steps:
      - sleep: 2s
      - create: Effect
        set: {n: -1}
"""


@pytest.fixture
def receiver():
    rx = Receiver().start()
    yield rx
    rx.stop()


@pytest.fixture
def tenant(api_tenant, receiver):
    api = api_tenant(source=DEFINITION.replace("{RX}", receiver.url.rstrip("/")))
    tenant_secrets.secret_set(tenant=api.tenant, name="RX_KEY", value="rx-secret-value-123", actor=Actor(api.owner))
    return api


def runs(api, name=None) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute("SELECT name, state, attempt, error, id::text FROM plinth_jobs.runs WHERE tenant_id = %s "
                    "AND (%s::text IS NULL OR name = %s) ORDER BY created_at", [api.tenant.id, name, name])
        return cur.fetchall()


def wait_until(predicate, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def enqueue(api, platform: Platform, job: str, inputs: list[dict]) -> list[str]:
    """Runs written by a committed transaction, as the outbox writes them; then the wake-ups."""
    backend = backend_for(api.tenant.id, 1)
    outbox = Outbox()
    with tenant_transaction(api.tenant.id) as conn:
        for given in inputs:
            outbox.run("job", job, given, cause="test")
        outbox.flush(conn, backend)
    ids = list(outbox.due_run_ids)
    platform.wake(ids)
    return ids


def test_nothing_is_lost_while_workers_are_killed_and_redis_restarts_and_is_flushed(tenant, receiver, tmp_path):
    platform = Platform(tmp_path, own_redis=True, lease=3.0, sweep=0.5)
    with platform:
        platform.worker("worker-1", concurrency=2)
        platform.worker("worker-2", concurrency=2)
        platform.beat("beat")
        killed: list[int] = []
        stop = threading.Event()

        def chaos():
            round_ = 0
            while not stop.wait(0.7):
                round_ += 1
                pid = platform.kill_child(random.choice(["worker-1", "worker-2"]))
                if pid:
                    killed.append(pid)
                if round_ == 6:
                    platform.restart_redis()
                if round_ == 12:
                    platform.flush_redis()

        chaos_thread = threading.Thread(target=chaos)
        chaos_thread.start()
        started = time.monotonic()
        try:
            for batch in range(10):      # 500 runs over the chaos
                enqueue(tenant, platform, "chaos", [{"n": batch * 50 + i} for i in range(50)])
                time.sleep(1.0)
            time.sleep(3.0)
        finally:
            stop.set()
            chaos_thread.join()
        chaos_ended = time.monotonic()

        def all_final():
            states = [r[1] for r in runs(tenant, "chaos")]
            return len(states) == 500 and all(s in ("succeeded", "dead") for s in states)

        wait_until(all_final, 180, "every run to finish")
        recovered = time.monotonic()
    states = [r[1] for r in runs(tenant, "chaos")]
    assert states.count("succeeded") == 500, {s: states.count(s) for s in set(states)}
    # every data effect exactly once
    counts = dict(tenant.sql('SELECT n, count(*) FROM "Effect" WHERE n < 500 GROUP BY n'))
    twice = [n for n, c in counts.items() if c > 1]
    if twice:
        audit = tenant.sql("SELECT actor_id, after->>'n', at FROM _audit WHERE entity = 'Effect' AND (after->>'n')::int = ANY(%s) "
                           "ORDER BY at", [twice[:3]])
        with connection.cursor() as cur:
            cur.execute("SELECT r.input->>'n', s.key, s.state, s.attempt, s.error, s.finished_at FROM plinth_jobs.steps s "
                        "JOIN plinth_jobs.runs r ON r.id = s.run_id WHERE (r.input->>'n')::int = ANY(%s) ORDER BY s.id",
                        [twice[:3]])
            history = cur.fetchall()
        raise AssertionError(f"{len(twice)} effects twice: audit {audit} history {history}")
    assert sorted(counts) == list(range(500)) and set(counts.values()) == {1}
    # every http side effect received, under one idempotency key per run and step
    run_ids = {r[4] for r in runs(tenant, "chaos")}
    by_key = receiver.counts()
    expected = {f"{run_id}:/jobs/chaos/steps/1" for run_id in run_ids}
    assert expected <= set(by_key), len(expected - set(by_key))
    bodies = {json.loads(r.body)["n"] for r in receiver.requests if r.path == "/effects"}
    assert bodies == set(range(500))
    assert all(r.headers.get("authorization") == "Bearer rx-secret-value-123" for r in receiver.requests)
    duplicates = sum(n - 1 for key, n in by_key.items() if key in expected)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(sum(takeovers), 0) FROM plinth_jobs.runs WHERE tenant_id = %s "
                    "AND name = 'chaos' AND takeovers > 0", [tenant.tenant.id])
        retried, takeovers = cur.fetchone()
    print(f"\nchaos: {len(killed)} pool processes killed, redis restarted once and flushed once; "
          f"{duplicates} duplicate http deliveries (same idempotency key), {retried} runs taken over "
          f"({takeovers} takeovers) after a lost worker; all 500 done {recovered - chaos_ended:.1f}s after the chaos ended "
          f"({recovered - started:.1f}s in all)")
    assert len(killed) >= 5


def test_a_poison_job_ends_dead_without_starving_the_others(tenant, receiver, tmp_path):
    receiver.on(path="/fail", status=500)
    receiver.on(path="/hang", delay=30)
    with Platform(tmp_path, lease=2.0, sweep=0.5) as platform:
        platform.worker("worker-1", concurrency=2)
        platform.beat("beat")
        enqueue(tenant, platform, "poison_fail", [{}])
        enqueue(tenant, platform, "poison_kill", [{}])
        enqueue(tenant, platform, "chaos", [{"n": i} for i in range(20)])
        killed = []

        def poison_done():
            # the job that kills its worker: whenever it runs, its worker process dies
            for name, state, attempt, error, run_id in runs(tenant, "poison_kill"):
                if state == "running":
                    with connection.cursor() as cur:
                        cur.execute("SELECT leased_by FROM plinth_jobs.runs WHERE id = %s", [run_id])
                        leased_by = cur.fetchone()[0]
                    if leased_by:
                        pid = int(leased_by.split(":")[1])
                        if pid not in killed:
                            import os
                            import signal

                            try:
                                os.kill(pid, signal.SIGKILL)
                                killed.append(pid)
                            except ProcessLookupError:
                                pass
            states = {name: state for name, state, *_ in runs(tenant, "poison_fail") + runs(tenant, "poison_kill")}
            return states.get("poison_fail") == "dead" and states.get("poison_kill") == "dead"

        wait_until(poison_done, 90, "both poison jobs to end dead", step=0.1)
        wait_until(lambda: all(r[1] == "succeeded" for r in runs(tenant, "chaos")), 60, "the other runs")
    (_, _, attempts, error, _), = runs(tenant, "poison_fail")
    assert attempts == 2 and "500" in error, error
    (_, _, _, error, _), = runs(tenant, "poison_kill")
    assert "lost" in error and len(killed) >= 2, (error, killed)
    assert tenant.sql('SELECT count(*) FROM "Effect" WHERE n < 500') == [(20,)]


def post(url: str, api, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/t/{api.slug}/rest/v1/{path}", json=body, timeout=30,
                      headers={"apikey": api.keys["service"], "Prefer": "return=representation"})


def test_a_waiting_workflow_survives_a_full_restart_and_a_sleep_fires_once(tenant, tmp_path):
    with Platform(tmp_path, lease=3.0, sweep=0.5) as platform:
        def start_all():
            platform.worker("worker-1", concurrency=2)
            platform.beat("beat")
            return platform.web("web")

        web = start_all()
        ticket = post(web, tenant, "Ticket", {"subject": "Printer on fire"}).json()[0]["id"]
        other = post(web, tenant, "Ticket", {"subject": "Other"}).json()[0]["id"]
        wait_until(lambda: [r[1] for r in runs(tenant, "follow")] == ["waiting", "waiting"], 30, "the waits to park")
        for name in ("web", "beat", "worker-1"):
            platform.stop(name)
        time.sleep(1.0)
        web = start_all()
        # the sleep (2 s) ends during or after the restart: it fires once per ticket
        wait_until(lambda: [r[1] for r in runs(tenant, "nap")] == ["succeeded", "succeeded"], 30, "the naps")
        assert tenant.sql('SELECT count(*) FROM "Effect" WHERE n = -1') == [(2,)]
        assert post(web, tenant, "Reply", {"ticket": ticket, "body": "Extinguished"}).status_code == 201
        wait_until(lambda: tenant.sql('SELECT answered FROM "Ticket" WHERE id = %s', [ticket]) == [(True,)], 30,
                   "the matching reply to resume the wait")
        time.sleep(1.5)
        assert tenant.sql('SELECT answered FROM "Ticket" WHERE id = %s', [other]) == [(False,)]
        states = {r[4]: r[1] for r in runs(tenant, "follow")}
        assert sorted(states.values()) == ["succeeded", "waiting"]


def test_two_beats_run_each_schedule_slot_once(tenant, tmp_path):
    with Platform(tmp_path, lease=3.0, sweep=0.3) as platform:
        platform.worker("worker-1", concurrency=2)
        platform.worker("worker-2", concurrency=2)
        # everything was down for three minutes: the missed slots run once, on recovery
        with connection.cursor() as cur:
            cur.execute("UPDATE plinth_jobs.schedules SET next_slot = date_trunc('minute', now()) - interval '3 minutes' "
                        "WHERE tenant_id = %s", [tenant.tenant.id])
        platform.beat("beat-1")
        platform.beat("beat-2")
        wait_until(lambda: len(runs(tenant, "tick")) == 1, 20, "the missed slot's run")
        # and the next slot, once, with both beats ticking every 0.3 s
        with connection.cursor() as cur:
            cur.execute("SELECT extract(epoch FROM next_slot - now()) FROM plinth_jobs.schedules WHERE tenant_id = %s",
                        [tenant.tenant.id])
            until_next = float(cur.fetchone()[0])
        time.sleep(max(0.0, until_next) + 4.0)
        wait_until(lambda: len(runs(tenant, "tick")) >= 2, 20, "the next slot's run")
        time.sleep(1.0)
    ticks = runs(tenant, "tick")
    assert len(ticks) == 2 and all(r[1] == "succeeded" for r in ticks)
    with connection.cursor() as cur:
        cur.execute("SELECT key FROM plinth_jobs.runs WHERE tenant_id = %s AND name = 'tick'", [tenant.tenant.id])
        keys = [k for (k,) in cur.fetchall()]
    assert len(set(keys)) == 2 and all(k.startswith("schedule:") for k in keys)
    assert tenant.sql('SELECT count(*) FROM "Effect" WHERE n = 7000') == [(2,)]


def test_shop_paying_an_order_sends_one_receipt_and_stale_drafts_are_cancelled(api_tenant, receiver, tmp_path):
    source = (EXAMPLES / "shop.yaml").read_text().replace("https://mail.example", receiver.url.rstrip("/"))
    shop = api_tenant(source=source)
    tenant_secrets.secret_set(tenant=shop.tenant, name="MAIL_KEY", value="mail-key-456", actor=Actor(shop.owner))
    info = resolve_tenant(shop.slug)
    ann, sam = str(uuid.uuid4()), str(uuid.uuid4())
    shop.sql("INSERT INTO _users (id, email, role) VALUES (%s, 'ann@shop.io', 'customer'), (%s, 'sam@shop.io', 'staff')",
             [ann, sam])
    token = {who: issue_access_token(info, user_id=uid, email=f"{who}@shop.io", role=role)[0]
             for who, uid, role in (("ann", ann, "customer"), ("sam", sam, "staff"))}
    customer, product, order, stale = (str(uuid.uuid4()) for _ in range(4))
    shop.sql('INSERT INTO "Customer" (id, account, name, email, credit_limit) VALUES (%s, %s, %s, %s, 100)',
             [customer, ann, "Ann", "ann@customer.io"])
    shop.sql('INSERT INTO "Product" (id, sku, title, price, stock) VALUES (%s, %s, %s, 10, 100)', [product, "S1", "Widget"])
    shop.sql('INSERT INTO "Order" (id, customer) VALUES (%s, %s)', [order, customer])
    shop.sql("INSERT INTO \"Order\" (id, customer, created_at) VALUES (%s, %s, now() - interval '25 hours')",
             [stale, customer])

    def rpc(who, name, body):
        response = shop.client.post(f"/t/{shop.slug}/rest/v1/rpc/{name}", json.dumps(body), content_type="application/json",
                                    HTTP_APIKEY=shop.keys["anon"], HTTP_AUTHORIZATION=f"Bearer {token[who]}")
        assert response.status_code == 200, response.content
        return response.json()

    with Platform(tmp_path, lease=3.0, sweep=0.5) as platform:
        platform.worker("worker-1", concurrency=2)
        platform.beat("beat")
        rpc("ann", "add_to_order", {"order": order, "product": product, "quantity": 2})
        rpc("ann", "Order.place", {"id": order})
        rpc("sam", "Order.pay", {"id": order})
        wait_until(lambda: shop.sql('SELECT receipt_sent FROM "Order" WHERE id = %s', [order]) == [(True,)], 30,
                   "the receipt")
        # the hourly schedule's slot comes (moved to now, as if an hour had passed)
        with connection.cursor() as cur:
            cur.execute("UPDATE plinth_jobs.schedules SET next_slot = now() - interval '1 second' WHERE tenant_id = %s",
                        [shop.tenant.id])
        wait_until(lambda: shop.sql('SELECT status FROM "Order" WHERE id = %s', [stale]) == [("cancelled",)], 30,
                   "the stale draft to be cancelled")
        time.sleep(1.0)
    sent = [r for r in receiver.requests if r.path == "/send"]
    assert len(sent) == 1
    assert sent[0].headers.get("authorization") == "Bearer mail-key-456"
    assert json.loads(sent[0].body) == {"to": "ann@customer.io", "subject": "Your receipt", "total": 20}
    assert shop.sql('SELECT status FROM "Order" WHERE id = %s', [order]) == [("paid",)]
    # the run history never shows the secret
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM plinth_jobs.steps WHERE tenant_id = %s AND "
                    "(coalesce(detail::text, '') || coalesce(result::text, '') || coalesce(error, '')) LIKE '%%mail-key-456%%'",
                    [shop.tenant.id])
        assert cur.fetchone()[0] == 0
