"""The console's run pages in a real Chromium: from the tenant to its runs, a run's
timeline at a glance, the page following the run live while the run is not final (the
test changes the run in the database behind the open page), retry and cancel.

Screenshots go to /tmp/plinth-screens/ (runs.png, run-live.png, run-dead.png).
"""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection

from tests.controlplane.test_runs_api import BrokerQueue
from tenants import services
from tenants.models import User
from tests.browser.test_console import orm, page, screenshot, sign_up, tenants_deleted_afterwards  # noqa: F401

from playwright.sync_api import Page, expect  # noqa: E402  (after test_console's skip without Chromium)

pytestmark = pytest.mark.browser


def sql(query: str, params=()):
    def run():
        with connection.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchone() if cur.description else None

    return orm(run)


def make_tenant_with_a_running_workflow(email: str) -> tuple[str, str]:
    """Acme, owned by `email`, with a workflow run halfway: a contact made in the CRM, a
    row created, one attempt at the next step failed."""

    def make():
        tenant, _ = services.tenant_create(owner=User.objects.get(email=email), name="Acme", slug="acme")
        return tenant.id

    tenant_id = orm(make)
    run_id = str(sql(
        "INSERT INTO plinth_jobs.runs (tenant_id, kind, name, state, attempt, cause, input, next_step, created_at,"
        " started_at, leased_by, lease_until)"
        " VALUES (%s, 'workflow', 'onboarding', 'running', 2, 'Customer.created', %s, '/workflows/onboarding/steps/2',"
        " now() - interval '3 seconds', now() - interval '3 seconds', 'w:1', now() + interval '1 minute') RETURNING id",
        [tenant_id, json.dumps({"customer": "c-42"})],
    )[0])
    step = ("INSERT INTO plinth_jobs.steps (run_id, tenant_id, key, kind, attempt, state, detail, result, error)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
    sql(step, [run_id, tenant_id, "/workflows/onboarding/steps/0", "http", 1, "done",
               json.dumps({"method": "POST", "url": "https://crm.example/contacts", "status": 201}),
               json.dumps({"status": 201, "body": {"id": "k9"}}), None])
    sql(step, [run_id, tenant_id, "/workflows/onboarding/steps/1", "create", 1, "done", None, json.dumps({"id": "r1"}), None])
    sql(step, [run_id, tenant_id, "/workflows/onboarding/steps/2", "http", 1, "failed",
               json.dumps({"method": "POST", "url": "https://mail.example/send", "status": 503}), None,
               "POST https://mail.example/send answered 503"])
    return tenant_id, run_id


def test_a_developer_follows_a_run_live_and_retries_and_cancels_it(page: Page, monkeypatch):
    woken = BrokerQueue()     # the wake-ups in the real broker
    sign_up(page, "alice@example.com")
    tenant_id, run_id = make_tenant_with_a_running_workflow("alice@example.com")

    # From the tenant page to its runs.
    page.goto("/tenants/acme/")
    page.get_by_role("link", name="Runs").click()
    expect(page).to_have_url(re.compile(r"/tenants/acme/runs$"))
    row = page.locator(f"#runs tr[data-run='{run_id}']")
    expect(row).to_contain_text("onboarding")
    expect(row).to_contain_text("workflow")
    expect(row).to_contain_text("Customer.created")
    expect(row.locator(".state")).to_have_text("running")
    expect(row.locator(".state")).to_have_class(re.compile("state-running"))
    screenshot(page, "runs")

    # The state filter narrows the table.
    page.get_by_label("State").select_option("dead")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"state=dead"))
    expect(page.locator("#runs")).to_contain_text("No runs match these filters.")
    page.get_by_label("State").select_option("")
    page.get_by_label("Job or workflow").fill("onboarding")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="onboarding").click()
    expect(page).to_have_url(re.compile(rf"/tenants/acme/runs/{run_id}$"))

    # The timeline: a row per step, what it did, the failed attempt's error in red.
    expect(page.get_by_role("heading", name="Workflow onboarding")).to_be_visible()
    expect(page.locator("#run-state")).to_have_text("running")
    steps = page.locator("#timeline tbody tr[data-key]")
    expect(steps).to_have_count(3)
    expect(steps.nth(0)).to_contain_text("POST https://crm.example/contacts → 201")
    expect(steps.nth(0).locator("code")).to_have_text("steps/0")
    expect(steps.nth(1)).to_contain_text("create")
    failed = steps.nth(2)
    expect(failed.locator(".state")).to_have_text("failed")
    expect(failed.locator(".error")).to_have_text("POST https://mail.example/send answered 503")
    assert failed.locator(".error").evaluate("e => getComputedStyle(e).color") == "rgb(201, 42, 42)"
    expect(page.locator("#timeline tr.next")).to_contain_text("steps/2")
    expect(page.locator("#live-note")).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)  # only a dead run
    screenshot(page, "run-live")

    # Behind the open page, the run moves on: a step done, then the run dies. The page
    # follows without a reload.
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/live") else None)
    page.evaluate("window.notReloaded = true")
    sql("INSERT INTO plinth_jobs.steps (run_id, tenant_id, key, kind, attempt, state, detail)"
        " VALUES (%s, %s, '/workflows/onboarding/steps/2', 'http', 2, 'done', %s)",
        [run_id, tenant_id, json.dumps({"method": "POST", "url": "https://mail.example/send", "status": 200})])
    expect(steps).to_have_count(4)
    sql("UPDATE plinth_jobs.runs SET state = 'dead', error = 'The model answered 429 five times.', finished_at = now(),"
        " leased_by = NULL, lease_until = NULL WHERE id = %s", [run_id])
    expect(page.locator("#run-state")).to_have_text("dead")
    expect(page.locator("#run-state")).to_have_class(re.compile("state-dead"))
    expect(page.locator("#run-error")).to_have_text("The model answered 429 five times.")
    expect(page.locator("#live-note")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "run-dead")

    # A final run is not polled any more.
    polled = len(polls)
    page.wait_for_timeout(4500)  # not time.sleep: Playwright delivers request events while it waits
    assert polled >= 1 and len(polls) == polled

    # Retry: queued again, from attempt 0, and the page follows it again.
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_have_text("Run queued again; it resumes at its first unfinished step.")
    expect(page.locator("#run-state")).to_have_text("queued")
    assert sql("SELECT state, attempt, error FROM plinth_jobs.runs WHERE id = %s", [run_id]) == ("queued", 0, None)
    assert [str(i) for i in woken.sent()] == [run_id]
    expect(page.locator("#live-note")).to_be_visible()

    # Cancel asks first; dismissed, nothing happens; accepted, the run is cancelled.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-state")).to_have_text("queued")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_role("status")).to_have_text("Run cancelled.")
    expect(page.locator("#run-state")).to_have_text("cancelled")
    assert sql("SELECT state FROM plinth_jobs.runs WHERE id = %s", [run_id]) == ("cancelled",)
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
