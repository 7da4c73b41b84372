"""Drives a tenant with the real, unchanged `supabase` Python package (supabase-py), as an
app would:

    python supabase_py.py <scenario> <url> <anon key> <service key>

run by test_supabase_py.py in a process of its own (so the clients' keep-alive connections
end with it). Every call's outcome ({data, count} or {error}) is printed as one JSON
object keyed by step name, for the test to assert on. Before the client is imported, socket
connections beyond loopback are refused: the client must need nothing external.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys

_real_connect = socket.socket.connect
REFUSED: list[str] = []


def _loopback_only(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            REFUSED.append(repr(address))
            raise ConnectionRefusedError(f"test: no network beyond loopback ({address!r})")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only

from supabase import create_client  # noqa: E402

scenario, url, anon_key, service_key = sys.argv[1:5]
PASSWORD = "s3cret-enough-pw"
results: dict[str, dict] = {}


def _plain(value):
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def step(name: str, call):
    """Runs `call()` (a client call), records its outcome under `name`, answers it."""
    try:
        answer = call()
    except Exception as error:  # the client's errors are what the test looks at
        results[name] = {"error": {"type": type(error).__name__, "message": getattr(error, "message", str(error)),
                                   "code": getattr(error, "code", None), "status": getattr(error, "status", None),
                                   "details": getattr(error, "details", None), "hint": getattr(error, "hint", None)}}
        return None
    if answer is None:
        results[name] = {"data": None}
    elif hasattr(answer, "data") and hasattr(answer, "count"):      # postgrest's APIResponse
        results[name] = {"data": _plain(answer.data), "count": answer.count}
    else:                                                           # auth's responses
        results[name] = {"data": _plain(answer)}
    return answer


def todo():
    ann = create_client(url, anon_key)
    signed_up = step("sign_up", lambda: ann.auth.sign_up({"email": "ann@example.com", "password": PASSWORD,
                                                          "options": {"data": {"name": "Ann"}}}))
    step("sign_in", lambda: ann.auth.sign_in_with_password({"email": "ann@example.com", "password": PASSWORD}))
    step("get_user", lambda: ann.auth.get_user())
    milk = step("insert", lambda: ann.table("Todo").insert({"title": "Milk", "due": "2030-01-02"}).execute())
    step("insert_many", lambda: ann.table("Todo").insert([{"title": "Bread"}, {"title": "Apples", "done": True}],
                                                         default_to_null=False).execute())
    step("select_filtered", lambda: ann.table("Todo").select("title, done").eq("done", False)
         .order("title").limit(5).execute())
    step("select_in_desc", lambda: ann.table("Todo").select("title").in_("title", ["Milk", "Apples"])
         .order("title", desc=True).execute())
    step("select_ilike_count", lambda: ann.table("Todo").select("title", count="exact").ilike("title", "%a%")
         .order("title").execute())
    step("single", lambda: ann.table("Todo").select("title, owner").eq("id", milk.data[0]["id"]).single().execute())
    step("update", lambda: ann.table("Todo").update({"done": True}).eq("id", milk.data[0]["id"]).execute())
    step("upsert", lambda: ann.table("Todo").upsert({"id": milk.data[0]["id"], "title": "Oat milk"}).execute())
    step("delete", lambda: ann.table("Todo").delete().eq("title", "Bread").execute())
    step("after_writes", lambda: ann.table("Todo").select("title, done").order("title").execute())
    step("invalid", lambda: ann.table("Todo").insert({"title": ""}).execute())

    bob = create_client(url, anon_key)
    step("bob_sign_up", lambda: bob.auth.sign_up({"email": "bob@example.com", "password": PASSWORD}))
    step("bob_select", lambda: bob.table("Todo").select("*").execute())
    step("bob_update", lambda: bob.table("Todo").update({"title": "mine"}).eq("id", milk.data[0]["id"]).execute())
    step("bob_forges", lambda: bob.table("Todo").insert({"title": "x", "owner": signed_up.user.id}).execute())
    step("sign_out", lambda: ann.auth.sign_out())
    step("after_sign_out", lambda: ann.table("Todo").select("*").execute())


def shop():
    service = create_client(url, service_key)
    step("create_staff", lambda: service.auth.admin.create_user({
        "email": "staff@example.com", "password": PASSWORD, "email_confirm": True, "app_metadata": {"role": "staff"}}))
    staff = create_client(url, anon_key)
    step("staff_sign_in", lambda: staff.auth.sign_in_with_password({"email": "staff@example.com",
                                                                    "password": PASSWORD}))
    cara = create_client(url, anon_key)
    signed_up = step("sign_up", lambda: cara.auth.sign_up({"email": "cara@example.com", "password": PASSWORD}))
    step("sign_in", lambda: cara.auth.sign_in_with_password({"email": "cara@example.com", "password": PASSWORD}))
    customer = step("create_customer", lambda: staff.table("Customer").insert({
        "account": signed_up.user.id, "name": "Cara", "email": "cara@example.com", "credit_limit": "100.00"}).execute())
    product = step("create_product", lambda: service.table("Product").insert(
        {"sku": "W-1", "title": "Blue widget", "price": "12.50", "stock": 10}).execute())
    order = step("insert_order", lambda: cara.table("Order").insert({"customer": customer.data[0]["id"]}).execute())
    order_id = order.data[0]["id"]
    step("add_to_order", lambda: cara.rpc("add_to_order", {"order": order_id, "product": product.data[0]["id"],
                                                          "quantity": 2}).execute())
    step("embed", lambda: cara.table("Order").select("id, total, status, customer(name), lines(quantity, product(sku))")
         .eq("status", "draft").order("created_at", desc=True).execute())
    step("embed_alias", lambda: cara.table("Order").select("*, lines:OrderLine(*)").eq("id", order_id)
         .single().execute())
    step("place", lambda: cara.rpc("Order.place", {"id": order_id}).execute())
    step("refused_rpc", lambda: cara.rpc("Order.pay", {"id": order_id}).execute())
    step("service_breaks_total", lambda: service.table("Order").update({"total": "1"}).eq("id", order_id).execute())
    step("staff_update_product", lambda: staff.table("Product").update({"stock": 50}).eq("sku", "W-1").execute())
    step("staff_delete_product", lambda: staff.table("Product").delete().eq("sku", "W-1").execute())
    step("service_create_loose", lambda: service.table("Product").insert(
        {"sku": "L-1", "title": "Loose", "price": "1"}).execute())
    step("service_delete_product", lambda: service.table("Product").delete().eq("sku", "L-1").execute())
    step("products", lambda: cara.table("Product").select("sku, stock", count="exact").execute())
    step("list_users", lambda: [u.email for u in service.auth.admin.list_users()])


{"todo": todo, "shop": shop}[scenario]()
print(json.dumps({"results": results, "refused": REFUSED}))
