"""@supabase/supabase-js, unchanged (tests/clients/package.json pins it; `make test` runs
`npm ci` here), against a live server: `createClient('<server>/t/<slug>', anonKey)`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
NODE = shutil.which("node")


def _node_args() -> list[str]:
    """Node 20 has WebSocket (which supabase-js's realtime client wants when the client is
    made, though these tests open no channel) behind a flag; from 22 on it is built in."""
    if not NODE:
        return []
    major = subprocess.run([NODE, "-p", "process.versions.node.split('.')[0]"],
                           capture_output=True, text=True).stdout.strip()
    return ["--experimental-websocket"] if major.isdigit() and int(major) < 22 else []


NODE_ARGS = _node_args()
INSTALLED = (HERE / "node_modules" / "@supabase" / "supabase-js" / "package.json").exists()

pytestmark = pytest.mark.skipif(not (NODE and INSTALLED), reason=(
    "supabase-js tests need node and `npm ci` in tests/clients (make test does it when npm exists)"))


def run_js(scenario: str, api) -> dict[str, dict]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run([NODE, *NODE_ARGS, str(HERE / "supabase_js.mjs"), scenario, api.url, api.anon, api.service],
                          capture_output=True, text=True, timeout=120, cwd=HERE, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    refused = [r for r in out["requests"] if r.get("refused")]
    assert not refused, refused
    print(json.dumps(out, indent=1))      # shown when a test fails
    return out


def ok(results: dict, name: str):
    """The data of a step that must have succeeded."""
    outcome = results[name]
    assert "thrown" not in outcome and outcome["error"] is None, (name, outcome)
    return outcome["data"]


def failed(results: dict, name: str) -> dict:
    """The error of a step that must have failed (with the HTTP status, for data API calls)."""
    outcome = results[name]
    assert "thrown" not in outcome and outcome["error"], (name, outcome)
    return {**outcome["error"], "http": outcome["status"]}


def test_todo_app(client_tenant):
    """examples/todo.yaml, as a todo app written with supabase-js does it."""
    api = client_tenant("todo")
    out = run_js("todo", api)
    r = out["results"]

    user = ok(r, "signUp")["user"]
    assert ok(r, "signUp")["session"]["access_token"]
    assert user["email"] == "ann@example.com" and user["role"] == "member"
    assert user["user_metadata"] == {"name": "Ann"}
    assert ok(r, "signInWithPassword")["user"]["id"] == user["id"]
    assert ok(r, "getUser")["user"]["id"] == user["id"]
    assert ok(r, "getSession")["session"]["user"]["id"] == user["id"]

    [milk] = ok(r, "insert")
    assert milk["title"] == "Milk" and milk["owner"] == user["id"] and milk["done"] is False
    assert milk["due"] == "2030-01-02" and r["insert"]["status"] == 201
    # an array's missing keys are null, as in PostgREST (columns= sent by the client)
    assert [(t["title"], t["done"]) for t in ok(r, "insertMany")] == [("Bread", None), ("Apples", True)]
    assert ok(r, "insertMinimal") is None and r["insertMinimal"]["status"] == 201
    assert ok(r, "insertCount") == [{"title": "Eggs"}] and r["insertCount"]["count"] == 1

    assert ok(r, "selectFiltered") == [{"title": "Eggs", "done": False}, {"title": "Milk", "done": False},
                                       {"title": "Zucchini", "done": False}]
    assert [(t["label"], t["done"]) for t in ok(r, "selectMultiline")] == [("Milk", False), ("Apples", True)]
    assert ok(r, "selectOr") == [{"title": "Apples"}, {"title": "Milk"}]
    assert ok(r, "selectNot") == [{"title": "Milk"}]
    assert ok(r, "selectRange") == [{"title": "Bread"}, {"title": "Eggs"}]
    assert r["count"]["count"] == 5 and ok(r, "count") is None
    assert ok(r, "single") == {"title": "Milk", "owner": user["id"]}
    assert ok(r, "maybeSingleNone") is None

    [updated] = ok(r, "update")
    assert updated["id"] == milk["id"] and updated["done"] is True
    assert ok(r, "upsert") == [{"title": "Oat milk", "done": False}]
    assert ok(r, "delete") == [{"title": "Bread"}]
    assert r["deleteMinimal"]["status"] == 204
    assert ok(r, "afterWrites") == [{"title": "Apples", "done": True}, {"title": "Eggs", "done": False},
                                    {"title": "Oat milk", "done": False}]
    invalid = failed(r, "invalid")
    assert invalid["http"] == 422 and invalid["code"] == "23514" and "title" in invalid["message"]
    unknown = failed(r, "unknownColumn")
    assert unknown["http"] == 400 and "nope" in unknown["message"]

    # another user sees, changes and deletes none of Ann's todos, and cannot make one for her
    assert ok(r, "bobSignUp")["user"]["id"] != user["id"]
    assert ok(r, "bobSelect") == []
    assert ok(r, "bobUpdate") == [] and ok(r, "bobDelete") == []
    forged = failed(r, "bobInsertForAnn")
    assert forged["http"] == 403 and "access.create" in forged["message"]

    assert ok(r, "signOut") is None
    assert ok(r, "afterSignOutGetSession") == {"session": None}
    assert ok(r, "afterSignOutSelect") == []          # anon again: no rows of anyone's
    wrong = r["wrongPassword"]["error"]
    assert wrong["name"] == "AuthApiError" and wrong["status"] == 400 and wrong["code"] == "invalid_credentials"

    # what the client sent, and that the server took it as sent
    requests = out["requests"]
    assert all(q["clientInfo"].startswith("supabase-js/") for q in requests)
    assert any("columns=" in q["path"] for q in requests)
    assert any(q["prefer"] and "count=exact" in q["prefer"] and "return=representation" in q["prefer"]
               for q in requests)
    assert not [q for q in requests if q["status"] >= 500]


def test_shop_app(client_tenant):
    """examples/shop.yaml: staff made with the service key, a customer ordering through
    actions and transitions, embedding, refusals and invariants as supabase-js reports them."""
    api = client_tenant("shop")
    out = run_js("shop", api)
    r = out["results"]

    staff = ok(r, "createStaff")["user"]
    assert staff["app_metadata"]["role"] == "staff" and staff["role"] == "staff"
    assert ok(r, "staffSignIn")["user"]["app_metadata"]["role"] == "staff"
    cara = ok(r, "customerSignUp")["user"]
    assert cara["role"] == "customer"

    customer = ok(r, "createCustomer")
    assert customer["account"] == cara["id"] and customer["name"] == "Cara" and float(customer["credit_limit"]) == 100
    assert [(p["sku"], float(p["price"]), p["stock"]) for p in ok(r, "createProductsService")] == [
        ("W-1", 12.5, 10), ("G-1", 60.0, 5)]
    assert ok(r, "upsertProductStaff") == [{"sku": "W-1", "stock": 20}]
    assert [p["sku"] for p in ok(r, "products")] == ["G-1", "W-1"]
    assert ok(r, "textSearch") == [{"sku": "W-1"}]
    denied = failed(r, "customerCreateProduct")
    assert denied["http"] == 403 and "access.create of Product" in denied["message"]

    order = ok(r, "insertOrder")
    assert order["status"] == "draft" and order["customer"] == customer["id"] and float(order["total"]) == 0
    added = ok(r, "addToOrder")
    assert added["id"] == order["id"] and float(added["total"]) == 25

    [embedded] = ok(r, "embedAlias")
    assert embedded["customer"] == {"name": "Cara"}
    assert [(line["quantity"], float(line["unit_price"])) for line in embedded["lines"]] == [(2, 12.5)]
    nested = ok(r, "embedRelatedName")
    assert nested["customer"] == {"name": "Cara", "credit_limit": 100}
    assert nested["lines"] == [{"quantity": 2, "unit_price": 12.5, "product": {"sku": "W-1"}}]

    assert ok(r, "place")["status"] == "placed"
    refused = failed(r, "refusedRpc")
    assert refused["http"] == 403 and refused["code"] == "42501" and "Order.pay" in refused["message"]
    refused = failed(r, "refusedAction")
    assert refused["http"] == 403 and "add_to_order" in refused["message"]
    assert ok(r, "staffPay")["status"] == "paid"

    ok(r, "insertSecondOrder")
    assert float(ok(r, "addGadgets")["total"]) == 120
    over = failed(r, "placeOverLimit")
    assert over["http"] == 409 and over["code"] == "P0001"
    assert over["message"] == "Invariant within_credit_limit failed: Open orders would exceed the customer's credit limit"
    broken = failed(r, "serviceBreaksTotal")
    assert broken["http"] == 409 and "order_total_matches_lines" in broken["message"]
    assert [(o["status"], float(o["total"])) for o in ok(r, "ordersAfter")] == [("paid", 25), ("draft", 120)]
    assert ok(r, "stockAfter") == [{"sku": "G-1", "stock": 3}, {"sku": "W-1", "stock": 18}]

    # more of the grammar the client writes
    assert [o["lines"] for o in ok(r, "embedOrderLimit")] == [[{"quantity": 2, "unit_price": 12.5}],
                                                              [{"quantity": 2, "unit_price": 60}]]
    assert ok(r, "innerFilter") == [{"status": "paid", "customer": {"name": "Cara"}}]
    assert ok(r, "filterIlike") == [{"sku": "G-1"}]
    assert ok(r, "ignoreDuplicates") == []
    assert ok(r, "missingDefault") == [{"sku": "N-1", "stock": 0}, {"sku": "N-2", "stock": 2}]
    assert ok(r, "insertSingle") == {"sku": "S-1"}
    assert failed(r, "rpcGet")["http"] == 405          # actions write: POST only
    assert float(ok(r, "rpcCount")["total"]) == 132.5
    assert ok(r, "selectCountExact") == [{"sku": "G-1"}] and r["selectCountExact"]["count"] == 5
    missing = failed(r, "emptyRpcName")
    assert missing["http"] == 404 and "no_such_action" in missing["message"]

    assert any(q["path"] == "/rest/v1/rpc/Order.place" for q in out["requests"])
    assert not [q for q in out["requests"] if q["status"] >= 500]
