"""Pushing definitions through every surface: the admin API (YAML and JSON, dry run,
destructive refusal, every error at once), the CLI against a live server, the management
command, and the console page; versions, authors, diffs and the audit of every push."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db import connection

from controlplane import cli
from tenants.models import AuditEvent, DefinitionVersion
from tests.conftest import client_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TODO = (EXAMPLES / "todo.yaml").read_text()
TODO_WITH_NOTES = TODO.replace("      due: {type: date}", "      due: {type: date}\n      notes: {type: text}")
TODO_WITHOUT_DUE = TODO.replace("      due: {type: date}\n", "")


def push(client, slug, body, content_type="application/yaml", **params):
    query = "&".join(f"{k}={str(v).lower()}" for k, v in params.items())
    return client.generic("POST", f"/api/v1/tenants/{slug}/definition?{query}", body, content_type=content_type)


def table_columns(tenant, table):
    with connection.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            [tenant.schema, table],
        )
        return {row[0] for row in cur.fetchall()}


@pytest.mark.parametrize("example", ["todo.yaml", "shop.yaml", "helpdesk.yaml"])
def test_each_example_pushes_as_yaml_and_goes_live(acme, alice, example):
    response = push(client_for(alice), "acme", (EXAMPLES / example).read_text())
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "applied" and body["version"] == 1
    assert body["plan"] and all(c["label"] == "additive" for c in body["plan"])
    live = client_for(alice).get("/api/v1/tenants/acme/definition").json()
    assert live["version"] == 1 and live["definition"]["name"] == yaml.safe_load((EXAMPLES / example).read_text())["name"]


def test_json_and_yaml_of_one_tree_are_the_same_definition(acme, alice):
    client = client_for(alice)
    assert push(client, "acme", TODO).json()["status"] == "applied"
    as_json = json.dumps(yaml.safe_load(TODO))
    assert push(client, "acme", as_json, content_type="application/json").json()["status"] == "unchanged"


def test_dry_run_answers_the_plan_and_changes_nothing(acme, alice):
    client = client_for(alice)
    push(client, "acme", TODO)
    planned = push(client, "acme", TODO_WITH_NOTES, dry_run=True).json()
    assert planned["status"] == "planned"
    assert [(c["label"], c["op"], c["target"]) for c in planned["plan"]] == [("additive", "add_field", "Todo.notes")]
    assert "notes" not in table_columns(acme, "Todo")
    assert DefinitionVersion.objects.filter(tenant=acme).count() == 1


def test_an_invalid_definition_is_422_with_every_error_and_changes_nothing(acme, alice):
    broken = TODO.replace("[[owner, done]]", "[[owner, finished]]").replace("record.owner == auth.id", "record.ownr == auth.id")
    response = push(client_for(alice), "acme", broken)
    assert response.status_code == 422
    errors = response.json()["errors"]
    paths = {e["path"] for e in errors}
    assert any(p.startswith("/entities/Todo/indexes") for p in paths)
    assert {f"/entities/Todo/access/{op}" for op in ("read", "create", "update", "delete")} <= paths
    assert all({"code", "path", "message"} <= set(e) for e in errors)
    assert not DefinitionVersion.objects.filter(tenant=acme).exists()


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"- a\n- b", b"version: 1\nentities: 3", b"a: [1, 2"])
def test_garbage_is_a_422_never_a_500(acme, alice, body):
    response = push(client_for(alice), "acme", body)
    assert response.status_code == 422, response.content
    assert response.json()["errors"]


def test_destructive_changes_are_refused_with_the_plan_then_applied_when_allowed(acme, alice):
    client = client_for(alice)
    push(client, "acme", TODO)
    refused = push(client, "acme", TODO_WITHOUT_DUE)
    assert refused.status_code == 409
    body = refused.json()
    assert body["status"] == "destructive"
    assert [c["op"] for c in body["plan"] if c["label"] == "destructive"] == ["drop_field"]
    assert "due" in table_columns(acme, "Todo")
    allowed = push(client, "acme", TODO_WITHOUT_DUE, allow_destructive=True)
    assert allowed.status_code == 200 and allowed.json()["version"] == 2
    assert "due" not in table_columns(acme, "Todo")


def test_versions_keep_plan_author_and_a_diff(acme, alice, bob):
    client = client_for(alice)
    push(client, "acme", TODO)
    push(client, "acme", TODO_WITH_NOTES)
    versions = client.get("/api/v1/tenants/acme/definition/versions").json()
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["author"] == alice.email and versions[0]["labels"] == ["additive"]
    v2 = client_for(bob).get("/api/v1/tenants/acme/definition/versions/2?diff_from=1").json()
    assert v2["plan"][0]["target"] == "Todo.notes"
    added = [line for line in v2["diff"].splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert added == ["+      notes:", "+        type: text"]
    assert client.get("/api/v1/tenants/acme/definition/versions/9").status_code == 404


def test_rolling_back_is_pushing_an_older_version_again(acme, alice):
    client = client_for(alice)
    push(client, "acme", TODO)
    push(client, "acme", TODO_WITH_NOTES)
    old = client.get("/api/v1/tenants/acme/definition/versions/1").json()["source"]
    back = push(client, "acme", old, allow_destructive=True).json()
    assert back["status"] == "applied" and back["version"] == 3
    assert [c["op"] for c in back["plan"]] == ["drop_field"]


def test_a_viewer_cannot_push_and_a_stranger_cannot_see(acme, bob, charlie):
    assert push(client_for(bob), "acme", TODO).status_code == 403
    assert push(client_for(charlie), "acme", TODO).status_code == 404
    assert not DefinitionVersion.objects.filter(tenant=acme).exists()


def test_every_push_applied_or_refused_is_audited_with_who_and_from_where(acme, alice):
    client = client_for(alice)
    push(client, "acme", TODO)
    push(client, "acme", "version: 2")
    push(client, "acme", TODO_WITHOUT_DUE)
    events = list(AuditEvent.objects.filter(tenant=acme, action="definition.push").order_by("id"))
    assert [e.data["status"] for e in events] == ["applied", "invalid", "destructive"]
    assert all(e.actor == alice and e.ip == "127.0.0.1" for e in events)


def test_the_cli_pushes_against_a_live_server(live_server, committed_tenants, alice, tmp_path, capsys):
    from tenants import services

    committed_tenants(alice, "CLI", slug="cli")
    _, token = services.token_create(user=alice, name="ci", actor=services.Actor(alice))
    file = tmp_path / "todo.yaml"
    file.write_text(TODO)
    base = ["--url", live_server.url, "--token", token, "push", str(file), "--tenant", "cli"]
    assert cli.main([*base, "--dry-run"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert cli.main(base) == 0
    assert "version 1" in capsys.readouterr().out
    file.write_text(TODO_WITHOUT_DUE)
    assert cli.main(base) == 2
    assert "--allow-destructive" in capsys.readouterr().err
    assert cli.main([*base, "--allow-destructive"]) == 0
    file.write_text("version: 1\nentities: {todo: {}}")
    assert cli.main(base) == 1
    assert "/entities/todo" in capsys.readouterr().err
    assert cli.main(["--url", live_server.url, "--token", "plt_bad", "push", str(file), "--tenant", "cli"]) == 3


def test_the_management_command_pushes_and_fails_loudly(acme, alice, tmp_path):
    file = tmp_path / "todo.yaml"
    file.write_text(TODO)
    call_command("plinth_push", str(file), "--tenant", "acme", "--as", alice.email)
    assert DefinitionVersion.objects.get(tenant=acme).author == alice
    file.write_text("version: 1\nentities: 5")
    with pytest.raises(CommandError):
        call_command("plinth_push", str(file), "--tenant", "acme")


def test_the_console_shows_errors_with_their_line_and_applies_a_plan(acme, alice, client):
    client.force_login(alice)
    page = client.post("/tenants/acme/definition", {"source": TODO.replace("type: boolean", "type: bool"), "action": "plan"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "/entities/Todo/fields/done/type" in html
    line = TODO.splitlines().index("      done: {type: boolean, default: false}") + 1
    assert f'<td class="muted">{line}</td>' in html
    page = client.post("/tenants/acme/definition", {"source": TODO, "action": "plan"})
    assert "create entity Todo" in page.content.decode()
    assert not DefinitionVersion.objects.filter(tenant=acme).exists()
    applied = client.post("/tenants/acme/definition", {"source": TODO, "action": "apply"})
    assert applied.status_code == 302 and applied["Location"].endswith("/tenants/acme/versions/1")
    client.post("/tenants/acme/definition", {"source": TODO_WITH_NOTES, "action": "apply"})
    diff = client.get("/tenants/acme/versions/2").content.decode()
    assert "notes" in diff and "v1" in diff
