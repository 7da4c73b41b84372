"""The console's run pages through Django's client: who sees which buttons, what a viewer's
or a stranger's request does, the live JSON, and filters that are wrong. The browser test
(tests/browser/test_run_pages_browser.py) drives the same pages in Chromium."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.controlplane.test_runs_api import globex, insert_run, insert_step, run_row  # noqa: F401 (fixture)


def console(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_the_owner_sees_retry_on_a_dead_run_and_a_viewer_sees_no_buttons(acme, alice, bob):
    run_id = insert_run(acme, state="dead", error="boom")
    page = console(alice).get(f"/tenants/acme/runs/{run_id}").content.decode()
    assert ">Retry</button>" in page and "Cancel run" not in page and 'class="error" id="run-error">boom' in page
    page = console(bob).get(f"/tenants/acme/runs/{run_id}").content.decode()
    assert "<button" not in page.split("<main>")[1]


def test_a_viewer_cannot_retry_or_cancel_from_the_console(acme, bob):
    dead, live = insert_run(acme, state="dead"), insert_run(acme, state="running")
    client = console(bob)
    for run_id, action in [(dead, "retry"), (live, "cancel")]:
        response = client.post(f"/tenants/acme/runs/{run_id}/{action}", follow=True)
        assert "does not allow retrying or cancelling runs" in response.content.decode()
    assert run_row(dead)["state"] == "dead" and run_row(live)["state"] == "running"


def test_a_refused_action_says_why(acme, alice):
    run_id = insert_run(acme, state="succeeded")
    response = console(alice).post(f"/tenants/acme/runs/{run_id}/cancel", follow=True)
    assert "This run has already finished: it is succeeded." in response.content.decode()


@pytest.mark.parametrize("suffix", ["", "/live", "/retry", "/cancel"])
def test_strangers_other_tenants_runs_and_bad_ids_are_404(acme, globex, alice, charlie, suffix):
    mine, theirs = insert_run(acme, state="running"), insert_run(globex, state="running")
    method = "post" if suffix in ("/retry", "/cancel") else "get"
    assert getattr(console(charlie), method)(f"/tenants/acme/runs/{mine}{suffix}").status_code == 404
    assert getattr(console(alice), method)(f"/tenants/acme/runs/{theirs}{suffix}").status_code == 404
    assert getattr(console(alice), method)(f"/tenants/acme/runs/nope{suffix}").status_code == 404
    assert run_row(theirs)["state"] == "running"


def test_the_live_view_answers_the_state_and_the_rendered_timeline(acme, alice):
    run_id = insert_run(acme, name="w", kind="workflow", state="sleeping", next_step="/workflows/w/steps/1")
    insert_step(acme, run_id, "/workflows/w/steps/0", "sleep", state="parked", detail={"until": "2025-03-02T00:00:00Z"})
    body = console(alice).get(f"/tenants/acme/runs/{run_id}/live").json()
    assert body["state"] == "sleeping" and body["final"] is False
    assert 'id="timeline"' in body["html"] and "until=2025-03-02T00:00:00Z" in body["html"]
    assert 'data-key="/workflows/w/steps/0"' in body["html"] and "state-parked" in body["html"]


def test_wrong_filters_on_the_runs_page_are_explained_not_a_500(acme, alice):
    insert_run(acme, name="nightly", state="dead")
    response = console(alice).get("/tenants/acme/runs?state=exploded&since=soon")
    assert response.status_code == 200
    page = response.content.decode()
    assert "state: Unknown state &#x27;exploded&#x27;" in page and "since: Must be an ISO 8601" in page
    assert "nightly" in page  # the valid part of the request still answers
