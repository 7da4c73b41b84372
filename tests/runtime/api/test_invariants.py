"""Invariants: evaluated for every affected anchor row before commit (409 naming the
invariant), for old and new values of a write, across the steps of one transaction, and
under concurrency (the anchor row is locked before the rule reads anything)."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection as django_connection
from psycopg import sql

from runtime.api.backends import backend_for
from runtime.api.context import Caller, resolve_tenant
from runtime.api.errors import ApiError
from runtime.api.integrity import WriteSession
from runtime.db import tenant_transaction
from tenants.provisioning import schema_name
from write_support import CHARGES, backend_with, example, wait_while_running_until_blocked


@pytest.fixture
def shop(committed_tenants, alice):
    b = backend_with(committed_tenants, alice, example("shop"), "Shop invariants")
    b.user("ann", "customer")
    b.user("staff", "staff")
    for name, limit in (("ann", 100), ("bob", 50)):
        r = b.service.post("Customer", {"name": name, "email": f"{name}@shop.io", "credit_limit": limit,
                                        **({"account": b.users["ann"]} if name == "ann" else {})},
                           prefer="return=representation")
        b.users[f"c_{name}"] = r.body[0]["id"]
    # Orders are placed through a transition (not served yet): set the state up in SQL.
    b.sql('INSERT INTO "Order" (id, customer, total, status) VALUES (gen_random_uuid(), %s, 0, %s)',
          [b.users["c_ann"], "placed"])
    return b


def session_for(b, caller=Caller("service")):
    backend = backend_for(b.tenant.id, resolve_tenant(b.slug).version)
    return backend, caller


def test_lowering_a_credit_limit_below_the_open_orders_is_a_409_naming_the_invariant(shop):
    shop.sql('UPDATE "Order" SET total = 80')   # SQL: outside the API, no invariant runs
    staff = shop.as_user("staff")
    r = staff.patch("Customer", f"id=eq.{shop.users['c_ann']}", {"credit_limit": 70})
    assert r.status_code == 409, r.body
    assert r.body["code"] == "P0001" and "within_credit_limit" in r.body["message"]
    assert "Open orders would exceed" in r.body["message"]
    assert staff.patch("Customer", f"id=eq.{shop.users['c_ann']}", {"credit_limit": 80}).status_code == 204
    assert shop.sql('SELECT credit_limit FROM "Customer" WHERE id = %s', [shop.users["c_ann"]]) == [(80,)]


def test_an_order_total_must_match_its_lines(shop):
    service = shop.service
    r = service.post("Order", {"customer": shop.users["c_ann"], "total": 10})
    assert r.status_code == 409 and "order_total_matches_lines" in r.body["message"], r.body
    order = service.post("Order", {"customer": shop.users["c_ann"]}, prefer="return=representation").body[0]["id"]
    product = service.post("Product", {"sku": "p", "title": "P", "price": 5}, prefer="return=representation")
    line = {"order": order, "product": product.body[0]["id"], "quantity": 2, "unit_price": 5}
    r = service.post("OrderLine", line)
    assert r.status_code == 409 and "order_total_matches_lines" in r.body["message"]
    assert shop.sql('SELECT count(*) FROM "OrderLine"') == [(0,)]
    # An action's steps share one transaction: the line and the new total together hold.
    backend, caller = session_for(shop)
    with tenant_transaction(shop.tenant.id) as conn:
        session = WriteSession(conn, backend, caller)
        session.insert("OrderLine", [{**line}])
        session.update("Order", (sql.SQL("r.id = %(o)s::uuid"), {"o": order}), {"total": Decimal(10)})
        session.finish()
    assert shop.sql('SELECT total FROM "Order" WHERE id = %s', [order]) == [(10,)]
    with pytest.raises(ApiError) as raised, tenant_transaction(shop.tenant.id) as conn:
        session = WriteSession(conn, backend, caller)
        session.update("OrderLine", (sql.SQL("r.order = %(o)s::uuid"), {"o": order}), {"quantity": 3})
        session.finish()
    assert raised.value.status == 409 and "order_total_matches_lines" in raised.value.message


def test_moving_an_order_to_another_customer_rechecks_both_customers(shop):
    order = shop.sql('SELECT id::text FROM "Order"')[0][0]
    shop.sql('UPDATE "Order" SET total = 60 WHERE id = %s', [order])
    product = shop.sql('INSERT INTO "Product" (sku, title, price) VALUES (%s, %s, 30) RETURNING id', ["p", "P"])[0][0]
    shop.sql('INSERT INTO "OrderLine" ("order", product, quantity, unit_price) VALUES (%s, %s, 2, 30)',
             [order, product])   # the order's own invariant holds: 2 x 30 = 60
    backend, caller = session_for(shop)
    with pytest.raises(ApiError) as raised, tenant_transaction(shop.tenant.id) as conn:   # bob's limit is 50
        session = WriteSession(conn, backend, caller)
        session.update("Order", (sql.SQL("r.id = %(o)s::uuid"), {"o": order}), {"customer": shop.users["c_bob"]})
        assert session._pending["within_credit_limit"] == {shop.users["c_ann"], shop.users["c_bob"]}
        session.finish()
    assert "within_credit_limit" in raised.value.message
    r = shop.service.patch("Order", f"id=eq.{order}", {"customer": shop.users["c_bob"]})
    assert r.status_code == 409 and "within_credit_limit" in r.body["message"]
    assert shop.sql('SELECT customer::text FROM "Order"') == [(shop.users["c_ann"],)]
    # deleting affects the old customer only, and can only help
    assert shop.service.delete("Order", f"id=eq.{order}").status_code == 204


def test_forty_concurrent_charges_never_exceed_the_credit_limit(committed_tenants, alice):
    b = backend_with(committed_tenants, alice, CHARGES, "Charges")
    b.user("ann", "member")
    ann = b.as_user("ann")
    account = ann.post("Account", {"credit_limit": 100}, prefer="return=representation").body[0]["id"]
    results: list[tuple[int, dict | None]] = []
    lock = threading.Lock()
    start = threading.Barrier(40)

    def charge():
        try:
            api = b.as_user("ann")
            start.wait()
            r = api.post("Charge", {"account": account, "amount": 10})
            with lock:
                results.append((r.status_code, r.body))
        finally:
            django_connection.close()   # each thread had its own connection

    threads = [threading.Thread(target=charge) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = Counter(status for status, _ in results)
    assert sum(statuses.values()) == 40 and set(statuses) <= {201, 409}, statuses
    assert statuses[201] == 10, statuses            # 10 x 10 = the limit, exactly
    assert all("within_credit_limit" in body["message"] for status, body in results if status == 409)
    assert b.sql('SELECT sum(amount) FROM "Charge"') == [(100,)]
    # raising charges concurrently holds too
    charges = [cid for (cid,) in b.sql('SELECT id::text FROM "Charge"')]
    raised: list[int] = []
    start2 = threading.Barrier(len(charges))

    def bump(cid):
        try:
            api = b.as_user("ann")
            start2.wait()
            r = api.patch("Charge", f"id=eq.{cid}", {"amount": 11})
            with lock:
                raised.append(r.status_code)
        finally:
            django_connection.close()

    threads = [threading.Thread(target=bump, args=(cid,)) for cid in charges]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(raised) == {409: 10}                # any single raise breaks the limit
    assert b.sql('SELECT sum(amount) FROM "Charge"') == [(100,)]


SEATS = """
version: 1
auth: {roles: [member]}
entities:
  Seat:
    fields:
      holder: {type: user, required: true}
    access: {read: "true"}
  Ticket:
    fields:
      holder: {type: user, required: true, default: auth.id}
    access: {read: "record.holder == auth.id", create: "record.holder == auth.id"}
invariants:
  tickets_need_a_seat:
    for: Ticket
    rule: "Seat.exists(s, s.holder == record.holder)"
    message: "A ticket needs a seat"
"""


def test_an_anchor_inserted_while_a_whole_entity_invariant_is_evaluated_waits_and_is_evaluated_after(
        committed_tenants, alice):
    """An invariant reading a whole entity (every Seat) is evaluated at every anchor when a
    Seat is written. A Ticket inserted meanwhile must not be evaluated against the Seat
    about to go: its insert waits for the Seat's deletion to commit, then is refused."""
    b = backend_with(committed_tenants, alice, SEATS, "Seats")
    ann = b.user("ann", "member")
    b.sql("INSERT INTO \"Seat\" (holder) VALUES (%s)", [ann])
    assert b.as_user("ann").post("Ticket", {}).status_code == 201      # a seat: allowed
    b.sql('DELETE FROM "Ticket"')
    backend, service = session_for(b)
    answers: list = []

    def insert_ticket():
        try:
            answers.append(b.as_user("ann").post("Ticket", {}))
        finally:
            django_connection.close()

    inserting = threading.Thread(target=insert_ticket)
    with tenant_transaction(b.tenant.id) as conn:
        session = WriteSession(conn, backend, service)
        session.delete("Seat", (sql.SQL("r.holder = %(h)s::uuid"), {"h": ann}))
        session.finish()                    # no ticket yet: holds
        inserting.start()
        # until the insert waits for this transaction (or, without the table lock, is done)
        wait_while_running_until_blocked(inserting, f'"{schema_name(b.tenant.id)}"."Ticket"')
        assert inserting.is_alive(), f"the insert did not wait: {answers[0].status_code}"
    inserting.join(60)
    r = answers[0]
    assert r.status_code == 409 and "tickets_need_a_seat" in r.body["message"], r.body
    assert b.sql('SELECT count(*) FROM "Ticket"') == [(0,)]
    assert b.sql('SELECT count(*) FROM "Seat"') == [(0,)]
