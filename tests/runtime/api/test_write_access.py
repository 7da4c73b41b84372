"""Who may write what, through `/t/<slug>/rest/v1/<Entity>`: tables of (caller, request)
-> outcome for the todo and shop examples. Ann and Bob are end users, Staff has the staff
role, `anon` has no user, `service` is the service key (skips access rules only)."""

from __future__ import annotations

import pytest

from write_support import backend_with, example


@pytest.fixture
def todo(committed_tenants, alice):
    b = backend_with(committed_tenants, alice, example("todo"), "Todo writes")
    for name in ("ann", "bob"):
        b.user(name, "member")
    return b


@pytest.fixture
def shop(committed_tenants, alice):
    b = backend_with(committed_tenants, alice, example("shop"), "Shop writes")
    b.user("ann", "customer")
    b.user("bob", "customer")
    b.user("staff", "staff")
    for name, limit in (("ann", 100), ("bob", 50)):
        r = b.service.post("Customer", {"account": b.users[name], "name": name, "email": f"{name}@shop.io",
                                        "credit_limit": limit}, prefer="return=representation")
        assert r.status_code == 201, r.body
        b.users[f"c_{name}"] = r.body[0]["id"]
    return b


def caller(b, who):
    return {"anon": lambda: b.anon, "service": lambda: b.service}.get(who, lambda: b.as_user(who))()


def test_todo_callers_write_only_their_own_todos(todo):
    ann = todo.as_user("ann")
    mine = ann.post("Todo", {"title": "mine"}, prefer="return=representation")
    assert mine.status_code == 201 and mine.body[0]["owner"] == todo.users["ann"]  # auth.id default applied
    todo_id = mine.body[0]["id"]
    me = f"id=eq.{todo_id}"
    # (caller, method, query, body) -> (status, error code or rows changed)
    table = [
        ("ann", "POST", "", {"title": "for bob", "owner": todo.users["bob"]}, 403, "access.create of Todo"),
        ("bob", "POST", "", {"title": "bob's"}, 201, None),
        ("anon", "POST", "", {"title": "nobody's"}, 400, "Todo.owner is required."),
        ("service", "POST", "", {"title": "given", "owner": todo.users["bob"]}, 201, None),
        ("service", "POST", "", {"title": "ownerless"}, 400, "Todo.owner is required."),
        ("bob", "PATCH", me, {"done": True}, 200, 0),      # not his: filtered out, nothing changes
        ("anon", "PATCH", me, {"done": True}, 200, 0),
        ("ann", "PATCH", me, {"owner": todo.users["bob"]}, 403, "access.update of Todo"),  # after must hold
        ("ann", "PATCH", me, {"done": True}, 200, 1),
        ("bob", "DELETE", me, None, 200, 0),
        ("ann", "DELETE", me, None, 200, 1),
    ]
    for who, method, query, body, status, expect in table:
        r = caller(todo, who).call(method, "Todo", query, body, prefer="return=representation")
        assert r.status_code == status, (who, method, body, r.status_code, r.body)
        if isinstance(expect, str):
            assert expect in r.body["message"] + (r.body.get("details") or ""), (who, method, r.body)
        elif isinstance(expect, int):
            assert len(r.body) == expect, (who, method, r.body)
    assert todo.sql("SELECT count(*) FROM \"Todo\" WHERE id = %s", [todo_id]) == [(0,)]


def test_shop_rules_hold_per_operation_and_caller(shop):
    u = shop.users
    orders = shop.as_user("ann").post("Order", {"customer": u["c_ann"]}, prefer="return=representation")
    assert orders.status_code == 201, orders.body
    order = f"id=eq.{orders.body[0]['id']}"
    customer_ann = f"id=eq.{u['c_ann']}"
    table = [
        ("ann", "POST", "Customer", "", {"name": "x", "email": "x@x.io"}, 403, "access.create of Customer"),
        ("anon", "POST", "Customer", "", {"name": "x", "email": "x@x.io"}, 403, "access.create of Customer"),
        ("staff", "POST", "Customer", "", {"name": "Zed", "email": "zed@x.io"}, 201, None),
        ("ann", "POST", "Order", "", {"customer": u["c_bob"]}, 403, "access.create of Order"),
        ("bob", "POST", "Order", "", {"customer": u["c_bob"]}, 201, None),
        ("staff", "POST", "Order", "", {"customer": u["c_ann"]}, 403, "access.create of Order"),
        ("ann", "PATCH", "Order", order, {"receipt_sent": True}, 403, "no access.update rule"),
        ("staff", "PATCH", "Order", order, {"receipt_sent": True}, 403, "no access.update rule"),
        ("service", "PATCH", "Order", order, {"receipt_sent": True}, 200, 1),
        ("ann", "PATCH", "Customer", customer_ann, {"name": "Ann"}, 200, 0),   # not staff: filtered out
        ("staff", "PATCH", "Customer", customer_ann, {"name": "Ann"}, 200, 1),
        ("staff", "DELETE", "Customer", customer_ann, None, 403, "no access.delete rule"),
        ("ann", "POST", "Product", "", {"sku": "a", "title": "A", "price": 1}, 403, "access.create of Product"),
        ("staff", "POST", "Product", "", {"sku": "a", "title": "A", "price": 1}, 201, None),
        ("ann", "POST", "OrderLine", "", {"order": orders.body[0]["id"], "product": u["c_ann"], "quantity": 1,
                                          "unit_price": 1}, 403, "access.create of OrderLine"),
        ("ann", "DELETE", "Order", order, None, 403, "no access.delete rule"),
    ]
    for who, method, entity, query, body, status, expect in table:
        r = caller(shop, who).call(method, entity, query, body, prefer="return=representation")
        assert r.status_code == status, (who, method, entity, r.status_code, r.body)
        if isinstance(expect, str):
            assert expect in r.body["message"] + (r.body.get("details") or ""), (who, method, entity, r.body)
        elif isinstance(expect, int):
            assert len(r.body) == expect, (who, method, entity, r.body)
    assert shop.sql('SELECT name FROM "Customer" WHERE id = %s', [u["c_ann"]]) == [("Ann",)]


def test_a_denied_write_changes_nothing_and_audits_nothing(shop):
    before = shop.sql("SELECT count(*) FROM _audit")
    r = shop.as_user("ann").post("Order", [{"customer": shop.users["c_ann"]}, {"customer": shop.users["c_bob"]}])
    assert r.status_code == 403
    assert shop.sql('SELECT count(*) FROM "Order"') == [(0,)]
    assert shop.sql("SELECT count(*) FROM _audit") == before


def test_representation_leaves_out_rows_the_caller_cannot_read(shop):
    # staff may create a Customer for someone else; a customer-role user could not read it,
    # so here: ann's order is readable by ann, and a row staff makes is readable by staff
    r = shop.as_user("staff").post("Product", {"sku": "p1", "title": "P", "price": "2.50"},
                                   prefer="return=representation", query="select=sku,cost:price")
    assert r.status_code == 201 and r.body == [{"sku": "p1", "cost": 2.50}]
    assert r.content.count(b"2.50") == 1   # exact decimals, as stored
