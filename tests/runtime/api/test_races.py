"""Writes that race a concurrent transaction: a deadlock Postgres breaks by rolling one side
back is run again (data API, actions, an end user's deletion), and an action's update
computes its values from the row as the concurrent write left it, not as it was (no lost
update).

Each test holds a transaction open itself (`tenant_transaction`) as the other side, waits
until the request waits for it, and then makes its move. Postgres looks for a deadlock in
whichever waiter's `deadlock_timeout` (1 s) ends first, and rolls that one back: the
request waits first, so the request is the one rolled back."""

from __future__ import annotations

import uuid

import pytest
from write_support import backend_with, example, in_thread, wait_while_running_until_blocked

from runtime.db import tenant_transaction

COUNTERS = """
version: 1
auth: {roles: [member]}
entities:
  Counter:
    fields:
      n: {type: integer, default: 0}
    access: {read: "true", update: "auth != null"}
actions:
  bump_both:
    input:
      first: {type: ref, to: Counter, required: true}
      second: {type: ref, to: Counter, required: true}
    access: "auth != null"
    steps:
      - update: Counter
        id: input.first.id
        set: {n: "input.first.n + 1"}
      - update: Counter
        id: input.second.id
        set: {n: "input.second.n + 1"}
    returns: input.second
"""


@pytest.fixture
def counters(committed_tenants, alice):
    backend = backend_with(committed_tenants, alice, COUNTERS, "Races")
    backend.user("ann", "member")
    low, high = sorted(str(uuid.uuid4()) for _ in range(2))
    backend.sql('INSERT INTO "Counter" (id) VALUES (%s), (%s)', [low, high])
    backend.low, backend.high = low, high
    return backend


def counts(backend) -> list[int]:
    return [n for (n,) in backend.sql('SELECT n FROM "Counter" ORDER BY id')]


def deadlock_against(backend, request, first: str, second: str):
    """Run `request` (which locks `first`, then `second`) while this test holds `second`,
    then lock `first` here too: a deadlock, which Postgres breaks by rolling the request
    back. Answers what the request answered in the end, and how many times this side's
    rows were bumped (1: ours committed, and the request did not undo it)."""
    with tenant_transaction(backend.tenant.id) as conn:
        conn.execute('UPDATE "Counter" SET n = n + 10 WHERE id = %s', [second])
        thread, answers = in_thread(request)
        wait_while_running_until_blocked(thread)
        assert thread.is_alive(), answers     # it waits for `second`, holding `first`
        conn.execute('UPDATE "Counter" SET n = n + 10 WHERE id = %s', [first])
    thread.join(60)
    assert answers, "the request did not finish"
    return answers[0]


def test_a_data_api_update_that_deadlocks_is_run_again(counters):
    # one PATCH of both rows locks them in id order: low, then high
    ann = counters.as_user("ann")
    answer = deadlock_against(counters, lambda: ann.patch("Counter", "n=gte.0", {"n": 7}, prefer="return=minimal"),
                              counters.low, counters.high)
    assert answer.status_code == 204, answer.body
    assert counts(counters) == [7, 7]       # ours committed first; the retry wrote over it


def test_an_action_that_deadlocks_is_run_again_from_its_first_step(counters):
    ann = counters.as_user("ann")
    answer = deadlock_against(counters, lambda: ann.post("rpc/bump_both", {"first": counters.low, "second": counters.high}),
                              counters.low, counters.high)
    assert answer.status_code == 200, answer.body
    assert answer.body["id"] == counters.high
    # both of ours (+10) and both of the action's (+1), the action's read after ours
    assert counts(counters) == [11, 11]
    assert answer.body["n"] == 11


def test_an_end_users_deletion_that_deadlocks_is_run_again(committed_tenants, alice):
    boards = backend_with(committed_tenants, alice, """
        version: 1
        auth: {roles: [member]}
        entities:
          Note:
            fields:
              author: {type: user, on_delete: set_null}
              text: {type: string, required: true}
            access: {read: "true"}
    """, "Notes")
    bob = boards.user("bob", "member")
    note = str(uuid.uuid4())
    boards.sql('INSERT INTO "Note" (id, author, text) VALUES (%s, %s, %s)', [note, bob, "hi"])
    service = boards.service

    def delete_bob():
        return service.client.delete(f"/t/{boards.slug}/auth/v1/admin/users/{bob}",
                                     headers={"apikey": boards.keys["service"],
                                              "Authorization": f"Bearer {boards.keys['service']}"})

    # the deletion locks the user's row, then the note pointing at them; we hold the note,
    # then ask for the user's row
    with tenant_transaction(boards.tenant.id) as conn:
        conn.execute('UPDATE "Note" SET text = %s WHERE id = %s', ["edited", note])
        thread, answers = in_thread(delete_bob)
        wait_while_running_until_blocked(thread)
        assert thread.is_alive(), answers
        conn.execute("SELECT 1 FROM _users WHERE id = %s FOR UPDATE", [bob])
    thread.join(60)
    assert answers and answers[0].status_code == 200, answers and answers[0].content
    assert boards.sql('SELECT author, text FROM "Note"') == [(None, "edited")]
    assert boards.sql("SELECT count(*) FROM _users WHERE id = %s", [bob]) == [(0,)]


def test_an_actions_update_reads_the_row_as_a_concurrent_write_left_it(committed_tenants, alice):
    """shop.yaml's add_to_order sets `stock: input.product.stock - input.quantity`. Computed
    before the row was locked, it would overwrite a concurrent sale's decrement with a value
    from before it (a lost update): 1000 - 3 instead of 1000 - 5 - 3."""
    shop = backend_with(committed_tenants, alice, example("shop"), "Shop")
    ann = shop.user("ann", "customer")
    customer, product, order = (str(uuid.uuid4()) for _ in range(3))
    shop.sql('INSERT INTO "Customer" (id, account, name, email, credit_limit) VALUES (%s, %s, %s, %s, 100)',
             [customer, ann, "Ann", "ann@c.io"])
    shop.sql('INSERT INTO "Product" (id, sku, title, price, stock) VALUES (%s, %s, %s, 10, 1000)',
             [product, "SKU-1", "Widget"])
    shop.sql('INSERT INTO "Order" (id, customer) VALUES (%s, %s)', [order, customer])
    as_ann = shop.as_user("ann")
    with tenant_transaction(shop.tenant.id) as conn:
        conn.execute('UPDATE "Product" SET stock = stock - 5 WHERE id = %s', [product])     # another sale
        thread, answers = in_thread(
            lambda: as_ann.post("rpc/add_to_order", {"order": order, "product": product, "quantity": 3}))
        wait_while_running_until_blocked(thread)
        assert thread.is_alive(), answers       # it waits for the product's row
    thread.join(60)
    assert answers and answers[0].status_code == 200, answers and answers[0].body
    assert shop.sql('SELECT stock FROM "Product"') == [(992,)]
    assert shop.sql('SELECT total FROM "Order"')[0][0] == 30


def test_a_job_step_that_deadlocks_is_run_again_not_failed(api_tenant):
    """A data step is one transaction (the step and its checkpoint): rolled back for a
    deadlock, it is run again at once, not counted as the step's failure (which, with one
    attempt, would have killed the run)."""
    from runtime.jobs import engine

    api = api_tenant(source=COUNTERS + """
jobs:
  reset_all:
    retry: {attempts: 1}
    steps:
      - update: Counter
        where: "record.n >= 0"
        set: {n: 5}
""")
    low, high = sorted(str(uuid.uuid4()) for _ in range(2))
    api.sql('INSERT INTO "Counter" (id) VALUES (%s), (%s)', [low, high])
    api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES ('job', 'reset_all', '{}')")

    def drain():
        while engine.work():
            pass

    with tenant_transaction(api.tenant.id) as conn:
        conn.execute('UPDATE "Counter" SET n = n + 10 WHERE id = %s', [high])
        thread, answers = in_thread(drain)
        wait_while_running_until_blocked(thread)
        assert thread.is_alive()        # the step holds `low` and waits for `high`
        conn.execute('UPDATE "Counter" SET n = n + 10 WHERE id = %s', [low])
    thread.join(60)
    assert not thread.is_alive()
    assert api.sql("SELECT state, attempt FROM plinth_jobs.runs") == [("succeeded", 1)]
    assert [n for (n,) in api.sql('SELECT n FROM "Counter" ORDER BY id')] == [5, 5]


FOLLOW_UP = """
version: 1
entities:
  Note:
    fields:
      title: {type: string, required: true}
workflows:
  follow_up:
    input: {note: {type: ref, to: Note}}
    steps:
      - wait: {event: Note.created, match: "event.record.title == input.note.title + ' again'", timeout: 1h}
        as: again
"""


def test_an_event_whose_match_loses_a_deadlock_is_still_delivered(api_tenant):
    """Delivery locks the waiting runs, then evaluates each wait's match, which reads the
    tenant's tables. A push altering such a table meanwhile (here: this test's table lock,
    then the run's row) deadlocks with it. The match lost the race; it did not answer "no":
    delivery runs again and the run gets its event (before, the event was marked delivered
    and the run waited for it forever)."""
    from runtime.jobs import engine
    from runtime.jobs.delivery import deliver

    api = api_tenant(source=FOLLOW_UP)
    note = api.sql("INSERT INTO \"Note\" (title) VALUES ('tea') RETURNING id::text")[0][0]
    run = api.sql("INSERT INTO plinth_jobs.runs (kind, name, input) VALUES ('workflow', 'follow_up', %s::jsonb) "
                  "RETURNING id::text", [f'{{"note": "{note}"}}'])[0][0]
    while engine.work():
        pass
    assert api.sql("SELECT state FROM plinth_jobs.runs") == [("waiting",)]
    posted = api.client.post(f"/t/{api.slug}/rest/v1/Note", '{"title": "tea again"}', content_type="application/json",
                             HTTP_APIKEY=api.keys["service"])
    assert posted.status_code == 201, posted.content
    (event,), = api.sql("SELECT id FROM plinth_jobs.events WHERE name = 'Note.created' ORDER BY id DESC LIMIT 1")
    with tenant_transaction(api.tenant.id) as conn:
        conn.execute('LOCK TABLE "Note" IN ACCESS EXCLUSIVE MODE')        # as a push's ALTER TABLE does
        thread, answers = in_thread(lambda: deliver(event))
        wait_while_running_until_blocked(thread)
        assert thread.is_alive()       # it holds the run and waits for the table
        conn.execute("SELECT 1 FROM plinth_jobs.runs WHERE id = %s FOR UPDATE", [run])
    thread.join(60)
    assert answers == [1]
    assert api.sql("SELECT kind, state FROM plinth_jobs.steps WHERE run_id = %s AND state = 'done'", [run]) == [
        ("wait", "done")]
