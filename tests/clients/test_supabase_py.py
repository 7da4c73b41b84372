"""The `supabase` Python package (supabase-py, pinned in requirements/dev.in), unchanged,
against a live server: `create_client('<server>/t/<slug>', key)`. It runs in a process of
its own (supabase_py.py), which refuses connections beyond loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

pytest.importorskip("supabase", reason="the supabase package is in requirements/dev.txt")


def run_py(scenario: str, api) -> dict[str, dict]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run([sys.executable, str(HERE / "supabase_py.py"), scenario, api.url, api.anon, api.service],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["refused"] == []
    print(json.dumps(out, indent=1))      # shown when a test fails
    return out["results"]


def ok(results: dict, name: str):
    assert "error" not in results[name], (name, results[name])
    return results[name]["data"]


def failed(results: dict, name: str) -> dict:
    assert "error" in results[name], (name, results[name])
    return results[name]["error"]


def test_todo_app(client_tenant):
    r = run_py("todo", client_tenant("todo"))

    user = ok(r, "sign_up")["user"]
    assert user["email"] == "ann@example.com" and user["role"] == "member"
    assert user["user_metadata"] == {"name": "Ann"} and ok(r, "sign_up")["session"]["access_token"]
    assert ok(r, "sign_in")["user"]["id"] == user["id"]
    assert ok(r, "get_user")["user"]["id"] == user["id"]

    [milk] = ok(r, "insert")
    assert (milk["title"], milk["owner"], milk["done"], milk["due"]) == ("Milk", user["id"], False, "2030-01-02")
    # default_to_null=False: Prefer: missing=default, so Bread gets done's default
    assert [(t["title"], t["done"]) for t in ok(r, "insert_many")] == [("Bread", False), ("Apples", True)]
    assert ok(r, "select_filtered") == [{"title": "Bread", "done": False}, {"title": "Milk", "done": False}]
    assert ok(r, "select_in_desc") == [{"title": "Milk"}, {"title": "Apples"}]
    assert ok(r, "select_ilike_count") == [{"title": "Apples"}, {"title": "Bread"}]
    assert r["select_ilike_count"]["count"] == 2
    assert ok(r, "single") == {"title": "Milk", "owner": user["id"]}
    assert ok(r, "update")[0]["done"] is True
    assert ok(r, "upsert")[0]["title"] == "Oat milk"
    assert [t["title"] for t in ok(r, "delete")] == ["Bread"]
    assert ok(r, "after_writes") == [{"title": "Apples", "done": True}, {"title": "Oat milk", "done": True}]
    assert failed(r, "invalid")["code"] == "23514"

    assert ok(r, "bob_select") == [] and ok(r, "bob_update") == []
    forged = failed(r, "bob_forges")
    assert forged["code"] == "42501" and "access.create" in forged["message"]
    assert ok(r, "sign_out") is None
    assert ok(r, "after_sign_out") == []


def test_shop_app(client_tenant):
    r = run_py("shop", client_tenant("shop"))

    staff = ok(r, "create_staff")["user"]
    assert staff["app_metadata"]["role"] == "staff" and staff["role"] == "staff"
    assert ok(r, "staff_sign_in")["user"]["role"] == "staff"
    cara = ok(r, "sign_up")["user"]
    assert cara["role"] == "customer" and ok(r, "sign_in")["user"]["id"] == cara["id"]

    [customer] = ok(r, "create_customer")
    assert customer["account"] == cara["id"]
    [order] = ok(r, "insert_order")
    assert order["status"] == "draft"
    assert float(ok(r, "add_to_order")["total"]) == 25
    assert ok(r, "embed") == [{"id": order["id"], "total": 25, "status": "draft", "customer": {"name": "Cara"},
                               "lines": [{"quantity": 2, "product": {"sku": "W-1"}}]}]
    alias = ok(r, "embed_alias")
    assert alias["id"] == order["id"] and [line["quantity"] for line in alias["lines"]] == [2]
    assert ok(r, "place")["status"] == "placed"

    refused = failed(r, "refused_rpc")
    assert refused["code"] == "42501" and "Order.pay" in refused["message"]
    broken = failed(r, "service_breaks_total")
    assert broken["code"] == "P0001" and "order_total_matches_lines" in broken["message"]
    assert ok(r, "staff_update_product")[0]["stock"] == 50
    assert "no access.delete rule" in failed(r, "staff_delete_product")["message"]
    assert [p["sku"] for p in ok(r, "service_delete_product")] == ["L-1"]
    assert ok(r, "products") == [{"sku": "W-1", "stock": 50}] and r["products"]["count"] == 1
    assert sorted(ok(r, "list_users")) == ["cara@example.com", "staff@example.com"]
