"""examples/helpdesk.yaml's behaviour over time, with the engine in this process and a
local fake OpenAI-compatible server: the `triage` job's `ai` step (valid output applied,
invalid output retried then failed with a clear error, the token budget enforced) and
the `sla` workflow (a ticket nobody answers within the shortened wait is escalated;
one answered in time is not)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from runtime.jobs import engine
from tenants import ai, secrets as tenant_secrets
from tenants.services import Actor
from tests.fakes.openai_server import FakeOpenAI

HELPDESK = (Path(__file__).resolve().parents[3] / "examples" / "helpdesk.yaml").read_text()


@pytest.fixture
def openai():
    fake = FakeOpenAI(api_key="sk-test-789").start()
    yield fake
    fake.stop()


@pytest.fixture
def desk(api_tenant, openai):
    api = api_tenant(source=HELPDESK.replace("timeout: 4h", "timeout: 2s"))
    tenant_secrets.secret_set(tenant=api.tenant, name="LLM_KEY", value="sk-test-789", actor=Actor(api.owner))
    ai.ai_config_set(tenant=api.tenant, base_url=openai.url, model="fake-model", key_secret="LLM_KEY",
                     monthly_token_budget=25, actor=Actor(api.owner))
    api.org = str(uuid.uuid4())
    api.author = str(uuid.uuid4())
    api.sql("INSERT INTO _users (id, email, role) VALUES (%s, 'una@desk.io', 'user')", [api.author])
    api.sql('INSERT INTO "Organization" (id, name) VALUES (%s, %s)', [api.org, "Org"])
    api.sql('INSERT INTO "Membership" (organization, "user", role) VALUES (%s, %s, %s)', [api.org, api.author, "admin"])
    return api


def new_ticket(desk, subject: str) -> str:
    response = desk.client.post(f"/t/{desk.slug}/rest/v1/Ticket", json.dumps(
        {"organization": desk.org, "author": desk.author, "subject": subject, "body": "It broke"}),
        content_type="application/json", HTTP_APIKEY=desk.keys["service"], HTTP_PREFER="return=representation")
    assert response.status_code == 201, response.content
    return response.json()[0]["id"]


def run_of(desk, name: str, ticket: str):
    with connection.cursor() as cur:
        cur.execute("SELECT state, attempt, error FROM plinth_jobs.runs WHERE tenant_id = %s AND name = %s "
                    "AND input->'record'->>'id' = %s", [desk.tenant.id, name, ticket])
        return cur.fetchone()


def drain(hurry: bool = False):
    """Run everything due; with `hurry`, retries' backoff is skipped (as if it had passed)."""
    for _ in range(10):
        if hurry:
            with connection.cursor() as cur:
                cur.execute("UPDATE plinth_jobs.runs SET due_at = now() WHERE state = 'retrying'")
        if not engine.work() and not hurry:
            return


def test_valid_ai_output_is_applied_to_the_ticket(desk, openai):
    openai.reply_json({"category": "billing", "priority": "high"}, tokens=12)
    ticket = new_ticket(desk, "Invoice wrong")
    drain()
    assert run_of(desk, "triage", ticket)[0] == "succeeded"
    assert desk.sql('SELECT category, priority FROM "Ticket"') == [("billing", "high")]
    request = openai.requests[-1]
    assert request.headers["authorization"] == "Bearer sk-test-789"
    body = request.json
    assert body["model"] == "small" and "Invoice wrong" in body["messages"][-1]["content"]
    assert request.idempotency_key.endswith(":/jobs/triage/steps/0")
    assert ai.tokens_used(desk.tenant.id) == 12
    # the step's record shows the answer and the tokens, never the key
    with connection.cursor() as cur:
        cur.execute("SELECT detail::text || result::text FROM plinth_jobs.steps WHERE tenant_id = %s AND kind = 'ai'",
                    [desk.tenant.id])
        recorded = cur.fetchone()[0]
    assert "billing" in recorded and "sk-test-789" not in recorded


def test_invalid_ai_output_is_retried_then_fails_with_a_clear_error(desk, openai):
    openai.reply_json({"category": "billing", "priority": "whenever"}, tokens=1, times=3)
    ticket = new_ticket(desk, "Odd")
    drain(hurry=True)
    state, attempt, error = run_of(desk, "triage", ticket)
    assert (state, attempt) == ("dead", 3), error
    assert "priority" in error and "low, normal, high, urgent" in error
    assert desk.sql('SELECT category, priority FROM "Ticket"') == [(None, "normal")]
    assert len([r for r in openai.requests if r.path.endswith("/chat/completions")]) == 3


def test_the_token_budget_is_enforced(desk, openai):
    openai.reply_json({"category": "a", "priority": "low"}, tokens=20, times=2)
    first = new_ticket(desk, "One")
    drain()
    assert run_of(desk, "triage", first)[0] == "succeeded"
    second = new_ticket(desk, "Two")
    drain()
    assert run_of(desk, "triage", second)[0] == "succeeded"     # 20 < 25 before the call: allowed
    third = new_ticket(desk, "Three")
    drain(hurry=True)
    state, _, error = run_of(desk, "triage", third)
    assert state == "dead" and "budget" in error
    assert len(openai.requests) == 2        # the third was refused before calling
    assert ai.tokens_used(desk.tenant.id) == 40


def test_a_ticket_without_a_reply_within_the_wait_is_escalated(desk, openai):
    openai.reply_json({"category": "a", "priority": "low"}, times=2)
    quiet = new_ticket(desk, "Nobody answers")
    answered = new_ticket(desk, "Somebody answers")
    drain()
    assert run_of(desk, "sla", quiet)[0] == "waiting"
    reply = desk.client.post(f"/t/{desk.slug}/rest/v1/Reply", json.dumps(
        {"ticket": answered, "author": desk.author, "body": "On it"}), content_type="application/json",
        HTTP_APIKEY=desk.keys["service"])
    assert reply.status_code == 201, reply.content
    from runtime.jobs.delivery import deliver

    for (event_id,) in desk.sql("SELECT id FROM plinth_jobs.events ORDER BY id"):
        deliver(event_id)
    drain()
    assert run_of(desk, "sla", answered)[0] == "succeeded"
    time.sleep(2.2)
    drain()
    assert run_of(desk, "sla", quiet)[0] == "succeeded"
    statuses = dict(desk.sql('SELECT subject, status FROM "Ticket"'))
    assert statuses == {"Nobody answers": "escalated", "Somebody answers": "open"}
