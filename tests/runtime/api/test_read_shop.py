"""Reads against examples/shop.yaml, where rules reach through references
(`record.order.customer.account == auth.id`): what a customer, another customer, staff and
anonymous callers see, at every embedding level, in the shapes supabase-js asks for."""

from __future__ import annotations

import pytest
from api_tenants import SERVICE, module_api_tenant


@pytest.fixture(scope="module")
def shop(django_db_setup, django_db_blocker):
    with module_api_tenant(django_db_blocker, "shop") as api:
        api.ann = api.user("ann@example.com", "customer")
        api.bob = api.user("bob@example.com", "customer")
        api.sam = api.user("sam@example.com", "staff")
        api.carl = api.user("carl@example.com", "customer")     # no Customer row
        c_ann = api.insert("Customer", account=api.ann.id, name="Ann", email="ann@shop.test", credit_limit=1000)
        c_bob = api.insert("Customer", account=api.bob.id, name="Bob", email="bob@shop.test", credit_limit=100)
        api.insert("Customer", name="Nobody", email="nobody@shop.test")
        mug = api.insert("Product", sku="mug", title="Blue mug", description="A sturdy ceramic mug", price=10, stock=5)
        tea = api.insert("Product", sku="tea", title="Green tea", description="Loose leaf tea from Japan", price="5.5")
        api.insert("Product", sku="pot", title="Tea pot", price=30)
        o1 = api.insert("Order", customer=c_ann, total=20, status="placed")
        api.insert("Order", customer=c_ann, total=0, status="draft")
        o3 = api.insert("Order", customer=c_bob, total="5.5", status="paid")
        api.insert("OrderLine", order=o1, product=mug, quantity=2, unit_price=10)
        api.insert("OrderLine", order=o3, product=tea, quantity=1, unit_price="5.5")
        yield api


def who(api, name):
    return {"anon": None, "ann": api.ann, "bob": api.bob, "sam": api.sam, "carl": api.carl, "service": SERVICE}[name]


CASES = [
    ("anon", "Product?select=sku&order=sku", [{"sku": "mug"}, {"sku": "pot"}, {"sku": "tea"}]),
    ("anon", "Customer", []),
    ("anon", "Order", []),
    ("carl", "Order", []),
    ("carl", "Customer", []),
    ("ann", "Customer?select=name", [{"name": "Ann"}]),
    ("sam", "Customer?select=name&order=name", [{"name": "Ann"}, {"name": "Bob"}, {"name": "Nobody"}]),
    ("ann", "Order?select=status,total&order=status", [{"status": "draft", "total": 0}, {"status": "placed", "total": 20}]),
    ("bob", "Order?select=status,customer(name)", [{"status": "paid", "customer": {"name": "Bob"}}]),
    ("ann", "Customer?select=name,orders(status,lines(quantity,product(sku)))&orders.order=status",
     [{"name": "Ann", "orders": [{"status": "draft", "lines": []},
                                 {"status": "placed", "lines": [{"quantity": 2, "product": {"sku": "mug"}}]}]}]),
    ("sam", "Customer?select=name,orders!inner(status)&orders.status=eq.paid", [{"name": "Bob", "orders": [{"status": "paid"}]}]),
    ("ann", "Order?select=status,customer!inner(name)&customer.name=eq.Bob", []),
    ("ann", "OrderLine?select=quantity,order(status,customer(email))",
     [{"quantity": 2, "order": {"status": "placed", "customer": {"email": "ann@shop.test"}}}]),
    ("ann", "Product?select=sku,OrderLine(quantity)&order=sku",
     [{"sku": "mug", "OrderLine": [{"quantity": 2}]}, {"sku": "pot", "OrderLine": []}, {"sku": "tea", "OrderLine": []}]),
    ("anon", "Product?select=sku,OrderLine(quantity)&sku=eq.mug", [{"sku": "mug", "OrderLine": []}]),
    ("service", "Product?select=sku,OrderLine(quantity)&sku=eq.tea", [{"sku": "tea", "OrderLine": [{"quantity": 1}]}]),
    ("sam", "Order?select=total&status=in.(placed,paid)&order=total.desc", [{"total": 20}, {"total": 5.5}]),
    ("anon", "Product?select=sku&description=fts.ceramic", [{"sku": "mug"}]),
    ("anon", "Product?select=sku&title=wfts.tea&order=sku", [{"sku": "pot"}, {"sku": "tea"}]),
    ("anon", "Product?select=sku&description=is.null", [{"sku": "pot"}]),
    ("anon", "Product?select=sku,price&price=gte.10&order=price.desc", [{"sku": "pot", "price": 30}, {"sku": "mug", "price": 10}]),
]


@pytest.mark.parametrize("caller, query, expected", CASES, ids=[f"{c}: {q}"[:100] for c, q, _ in CASES])
def test_it_answers_what_the_rules_allow(shop, db, caller, query, expected):
    response = shop.get(query, as_=who(shop, caller))
    assert response.status_code == 200, response.content
    assert response.json() == expected


def test_supabase_js_shapes(shop, db):
    # supabase.from('Order').select('id, status, customer(name)', {count: 'exact'}).eq('status', 'placed').single()
    r = shop.get("Order?select=id,status,customer(name)&status=eq.placed", as_=shop.ann,
                 headers={"Prefer": "count=exact", "Accept": "application/vnd.pgrst.object+json"})
    assert r.status_code == 200
    assert r.json()["customer"] == {"name": "Ann"}
    # .range(0, 0) and .order('total', {ascending: false, nullsFirst: false})
    r = shop.get("Order?select=total&order=total.desc.nullslast&offset=0&limit=1", as_=shop.sam)
    assert r.json() == [{"total": 20}] and r["Content-Range"] == "0-0/*"
    # select('*', {count: 'exact', head: true})
    r = shop.head("Product?select=*", headers={"Prefer": "count=exact"})
    assert (r.status_code, r["Content-Range"]) == (200, "0-2/3")
