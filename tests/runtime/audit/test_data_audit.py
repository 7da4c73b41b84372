"""Every data write is in the tenant's audit trail (who, what, before and after, when),
readable through the admin API and the console by anyone who can see the tenant."""

from __future__ import annotations

import json
from pathlib import Path

from django.test import Client

from tenants.definitions import definition_push
from tenants.services import Actor
from tests.conftest import client_for

TODO = (Path(__file__).resolve().parents[3] / "examples" / "todo.yaml").read_text()


def test_data_writes_show_in_the_admin_api_and_the_console(committed_tenants, alice, bob, charlie):
    tenant, keys = committed_tenants(alice, "Audited")
    from tenants import services

    services.member_set(tenant=tenant, email=bob.email, role="viewer", actor=Actor(alice))
    definition_push(tenant=tenant, source=TODO, content_type="application/yaml", actor=Actor(alice))
    from runtime.db import tenant_transaction
    import uuid

    owner = str(uuid.uuid4())
    with tenant_transaction(tenant.id) as conn:
        conn.execute("INSERT INTO _users (id, email, role) VALUES (%s, 'u@x.io', 'member')", [owner])
    service = {"HTTP_APIKEY": keys["service"]}
    created = Client().post(f"/t/{tenant.slug}/rest/v1/Todo", json.dumps({"owner": owner, "title": "Write it"}),
                            content_type="application/json", HTTP_PREFER="return=representation", **service)
    assert created.status_code == 201, created.content
    todo = created.json()[0]["id"]
    Client().patch(f"/t/{tenant.slug}/rest/v1/Todo?id=eq.{todo}", json.dumps({"done": True}),
                   content_type="application/json", **service)

    body = client_for(bob).get(f"/api/v1/tenants/{tenant.slug}/audit?source=data").json()
    assert set(body) == {"data"}
    update, insert = body["data"][:2]
    assert (insert["operation"], insert["entity"], insert["row_id"]) == ("insert", "Todo", todo)
    assert update["operation"] == "update" and update["changed"] == ["done"]
    assert update["before"]["done"] is False and update["after"]["done"] is True
    assert update["actor_kind"] == "service"
    both = client_for(alice).get(f"/api/v1/tenants/{tenant.slug}/audit").json()
    assert {"platform", "data"} == set(both)
    assert any(e["action"] == "definition.push" for e in both["platform"])
    assert client_for(charlie).get(f"/api/v1/tenants/{tenant.slug}/audit").status_code == 404
    assert client_for(alice).get(f"/api/v1/tenants/{tenant.slug}/audit?limit=x").status_code == 400

    console = Client()
    console.force_login(alice)
    page = console.get(f"/tenants/{tenant.slug}/audit").content.decode()
    assert "Write it" in page and "definition.push" in page
