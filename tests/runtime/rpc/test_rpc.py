"""Actions and transitions through `rest/v1/rpc/`, on shop.yaml: typed input, the action's
access rule, steps in one transaction with checks and invariants, transitions with their
access, `from` states and guards, outbox rows, and the credit limit under concurrency."""

from __future__ import annotations

import json
import threading
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connections
from django.test import Client

from runtime.api.context import issue_access_token, resolve_tenant
from runtime.db import tenant_transaction
from tenants.definitions import definition_push
from tenants.services import Actor

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


class Shop:
    def __init__(self, tenant, keys):
        self.tenant, self.keys = tenant, keys
        self.info = resolve_tenant(tenant.slug)
        self.users: dict[str, str] = {}

    def user(self, name: str, role: str = "customer") -> str:
        user_id = str(uuid.uuid4())
        with tenant_transaction(self.tenant.id) as conn:
            conn.execute("INSERT INTO _users (id, email, role) VALUES (%s, %s, %s)", [user_id, f"{name}@shop.io", role])
        self.users[name] = issue_access_token(self.info, user_id=user_id, email=f"{name}@shop.io", role=role)[0]
        return user_id

    def sql(self, query: str, params=()):
        with tenant_transaction(self.tenant.id) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def call(self, who: str | None, path: str, body: dict, client: Client | None = None):
        headers = {"HTTP_APIKEY": self.keys["service" if who == "service" else "anon"]}
        if who not in (None, "service"):
            headers["HTTP_AUTHORIZATION"] = f"Bearer {self.users[who]}"
        return (client or Client()).post(f"/t/{self.tenant.slug}/rest/v1/rpc/{path}", json.dumps(body),
                                         content_type="application/json", **headers)


@pytest.fixture
def shop(committed_tenants, alice):
    tenant, keys = committed_tenants(alice, "Shop")
    result = definition_push(tenant=tenant, source=(EXAMPLES / "shop.yaml").read_text(),
                             content_type="application/yaml", actor=Actor(alice))
    assert result.status == "applied", result.errors
    s = Shop(tenant, keys)
    s.ann = s.user("ann")
    s.bob = s.user("bob")
    s.user("sam", role="staff")
    s.customer = str(uuid.uuid4())
    s.bob_customer = str(uuid.uuid4())
    s.product = str(uuid.uuid4())
    s.sql('INSERT INTO "Customer" (id, account, name, email, credit_limit) VALUES (%s, %s, %s, %s, 100), '
          '(%s, %s, %s, %s, 100)', [s.customer, s.ann, "Ann", "ann@c.io", s.bob_customer, s.bob, "Bob", "bob@c.io"])
    s.sql('INSERT INTO "Product" (id, sku, title, price, stock) VALUES (%s, %s, %s, 10, 1000)',
          [s.product, "SKU-1", "Widget"])
    return s


def new_order(shop: Shop, customer: str | None = None) -> str:
    order = str(uuid.uuid4())
    shop.sql('INSERT INTO "Order" (id, customer) VALUES (%s, %s)', [order, customer or shop.customer])
    return order


def test_an_action_runs_its_steps_in_one_transaction_and_returns_its_row(shop):
    order = new_order(shop)
    response = shop.call("ann", "add_to_order", {"order": order, "product": shop.product, "quantity": 3})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == order and Decimal(str(body["total"])) == 30
    assert shop.sql('SELECT stock FROM "Product"')[0][0] == 997
    assert shop.sql('SELECT quantity, unit_price FROM "OrderLine"') == [(3, Decimal("10"))]
    assert shop.sql("SELECT count(*) FROM _audit")[0][0] == 3  # line, product, order


def test_an_action_is_refused_by_its_access_rule_and_changes_nothing(shop):
    order = new_order(shop)
    response = shop.call("bob", "add_to_order", {"order": order, "product": shop.product, "quantity": 1})
    assert response.status_code == 403 and "add_to_order" in response.json()["message"]
    assert shop.sql('SELECT count(*) FROM "OrderLine"')[0][0] == 0
    assert shop.call(None, "add_to_order", {"order": order, "product": shop.product, "quantity": 1}).status_code == 403


def test_a_failed_assert_is_422_with_its_message_and_rolls_back(shop):
    order = new_order(shop)
    response = shop.call("ann", "add_to_order", {"order": order, "product": shop.product, "quantity": 5000})
    assert response.status_code == 422 and response.json()["message"] == "Not enough stock"
    assert shop.sql('SELECT stock FROM "Product"')[0][0] == 1000


@pytest.mark.parametrize("body,field", [
    ({"product": "x", "quantity": 1}, "order"),
    ({"order": "not-a-uuid", "product": "x", "quantity": 1}, "order"),
    ({"order": str(uuid.uuid4()), "product": str(uuid.uuid4()), "quantity": 0}, "quantity"),
    ({"order": str(uuid.uuid4()), "product": str(uuid.uuid4()), "quantity": "3"}, "quantity"),
    ({"order": str(uuid.uuid4()), "product": str(uuid.uuid4()), "quantity": 1, "extra": 1}, "extra"),
])
def test_action_input_is_typed_and_every_problem_names_the_input(shop, body, field):
    response = shop.call("ann", "add_to_order", body)
    assert response.status_code == 400, response.content
    assert field in response.json()["message"]


def test_a_transition_checks_access_state_and_guard_then_emits_events(shop):
    order = new_order(shop)
    # guard: total must be > 0
    refused = shop.call("ann", "Order.place", {"id": order})
    assert refused.status_code == 422 and "record.total > 0" in refused.json()["message"]
    shop.call("ann", "add_to_order", {"order": order, "product": shop.product, "quantity": 2})
    assert shop.call("bob", "Order.place", {"id": order}).status_code == 404    # bob cannot see it
    placed = shop.call("ann", "Order.place", {"id": order})
    assert placed.status_code == 200 and placed.json()["status"] == "placed"
    assert shop.call("ann", "Order.place", {"id": order}).status_code == 409    # not a draft any more
    assert shop.call("ann", "Order.pay", {"id": order}).status_code == 403      # staff only
    assert shop.call("sam", "Order.pay", {"id": order}).status_code == 200
    # Order.paid starts send_receipt, in the paying transaction; nothing waits for events here
    runs = shop.sql("SELECT kind, name, cause, input->'record'->>'id' FROM plinth_jobs.runs")
    assert runs == [("job", "send_receipt", "event Order.paid", order)]
    assert shop.sql("SELECT count(*) FROM plinth_jobs.events")[0][0] == 0


def test_the_state_field_changes_only_through_transitions_even_for_the_service_key(shop):
    order = new_order(shop)
    response = Client().patch(f"/t/{shop.tenant.slug}/rest/v1/Order?id=eq.{order}", json.dumps({"status": "paid"}),
                              content_type="application/json", HTTP_APIKEY=shop.keys["service"])
    assert response.status_code == 403 and "Order.pay" in response.json()["message"]
    assert shop.sql('SELECT status FROM "Order"')[0][0] == "draft"


def test_placing_orders_concurrently_never_breaks_the_credit_limit(shop):
    # 40 drafts of 10 each against a limit of 100: exactly 10 can be placed.
    orders = []
    for _ in range(40):
        order = new_order(shop)
        shop.sql('INSERT INTO "OrderLine" ("order", product, quantity, unit_price) VALUES (%s, %s, 1, 10)',
                 [order, shop.product])
        shop.sql('UPDATE "Order" SET total = 10 WHERE id = %s', [order])
        orders.append(order)
    results: list[tuple[int, str]] = []
    barrier = threading.Barrier(len(orders))

    def place(order_id):
        try:
            client = Client()
            barrier.wait(timeout=30)
            response = shop.call("ann", "Order.place", {"id": order_id}, client=client)
            results.append((response.status_code, response.json().get("message", "") if response.status_code != 200 else ""))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=place, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 40
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert len(ok) == 10
    assert all(code == 409 and "within_credit_limit" in message for code, message in refused), refused[:3]
    total = shop.sql("SELECT sum(total) FROM \"Order\" WHERE status IN ('placed', 'paid')")[0][0]
    assert total == 100


def test_only_writes_something_listens_to_reach_the_outbox_and_only_when_committed(committed_tenants, alice):
    tenant, keys = committed_tenants(alice, "Desk")
    result = definition_push(tenant=tenant, source=(EXAMPLES / "helpdesk.yaml").read_text(),
                             content_type="application/yaml", actor=Actor(alice))
    assert result.status == "applied", result.errors
    desk = Shop(tenant, keys)
    service = {"HTTP_APIKEY": keys["service"]}
    org = str(uuid.uuid4())
    user = desk.user("una", role="user")
    with tenant_transaction(tenant.id) as conn:
        conn.execute('INSERT INTO "Organization" (id, name) VALUES (%s, %s)', [org, "Org"])
        conn.execute('INSERT INTO "Membership" (organization, "user", role) VALUES (%s, %s, %s)', [org, user, "admin"])
    ticket = {"organization": org, "author": user, "subject": "Help", "body": "It broke"}
    created = Client().post(f"/t/{tenant.slug}/rest/v1/Ticket", json.dumps(ticket), content_type="application/json",
                            **service)
    assert created.status_code == 201, created.content
    # Ticket.created starts the triage job and the sla workflow, with the row as input.record
    runs = desk.sql("SELECT kind, name, cause, input->'record'->>'subject' FROM plinth_jobs.runs ORDER BY kind")
    assert runs == [("job", "triage", "event Ticket.created", "Help"),
                    ("workflow", "sla", "event Ticket.created", "Help")]
    # a write nobody listens to stores nothing; a refused write stores nothing
    Client().post(f"/t/{tenant.slug}/rest/v1/Organization", json.dumps({"name": "Quiet"}),
                  content_type="application/json", **service)
    bad = Client().post(f"/t/{tenant.slug}/rest/v1/Ticket", json.dumps({**ticket, "priority": "whenever"}),
                        content_type="application/json", **service)
    assert bad.status_code >= 400
    assert desk.sql("SELECT count(*) FROM plinth_jobs.runs")[0][0] == 2
    # a reply is an event the sla workflow waits for: stored for delivery
    reply = Client().post(f"/t/{tenant.slug}/rest/v1/Reply", json.dumps({"ticket": desk.sql('SELECT id::text FROM "Ticket"')[0][0], "author": user, "body": "On it"}),
                          content_type="application/json", HTTP_PREFER="return=minimal", **service)
    assert reply.status_code == 201, reply.content
    assert desk.sql("SELECT name FROM plinth_jobs.events") == [("Reply.created",)]


def test_a_transition_on_a_malformed_id_is_a_400_not_a_500(shop):
    response = shop.call("ann", "Order.place", {"id": "not-a-uuid"})
    assert response.status_code == 400 and "id" in response.json()["message"]
