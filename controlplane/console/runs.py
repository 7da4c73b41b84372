"""Console pages of a tenant's job and workflow runs: the list with filters, and one run
with its step timeline, retry and cancel, refreshed live while the run is not final.

The run page polls `tenant-run-live` (JSON holding the re-rendered live part) every two
seconds and stops when the run is final, so nothing is polled for finished runs.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from controlplane.api.access import actor_of
from controlplane.console.views import _tenant
from runtime.jobs import control
from runtime.jobs.schema import STATES
from tenants import roles
from tenants.services import ServiceError

# Step kinds at a glance (glyphs common fonts have); anything else shows a dot. The kind's
# name is always written beside its glyph.
STEP_ICONS = {
    "create": "+", "update": "✎", "delete": "✕", "transition": "⇢", "http": "⇄", "ai": "✦",
    "sleep": "☾", "wait": "◷", "enqueue": "↗", "start": "▶", "emit": "✉", "if": "◇",
    "for_each": "↻", "let": "≔", "assert": "!", "compensate": "↶", "returns": "↵",
}


@login_required
def tenant_runs(request, slug):
    tenant = _tenant(request, slug)
    filters, errors = control.parse_filters(request.GET)
    for name, message in errors.items():
        messages.error(request, f"{name}: {message}")
    runs, cursor = control.list_runs(tenant.id, **filters)
    for run in runs:
        run["duration"] = human_duration(run["duration_ms"])
        run["created"] = when(run["created_at"])
    older = None
    if cursor is not None:
        query = request.GET.copy()
        query["before"] = cursor.encode()
        older = query.urlencode()
    return render(
        request,
        "console/runs.html",
        {
            "tenant": tenant,
            "runs": runs,
            "states": STATES,
            "name": request.GET.get("name", ""),
            "state": request.GET.get("state", ""),
            "kind": request.GET.get("kind", ""),
            "older": older,
            "paged": bool(request.GET.get("before")),
        },
    )


@login_required
def tenant_run(request, slug, run_id):
    tenant = _tenant(request, slug)
    run = _run_or_404(tenant, run_id)
    return render(request, "console/run.html", {"tenant": tenant, **_live_context(request, tenant, run)})


@never_cache
@login_required
def tenant_run_live(request, slug, run_id):
    """The live part of the run page, for its polling script."""
    tenant = _tenant(request, slug)
    run = _run_or_404(tenant, run_id)
    html = render_to_string("console/run_live.html", _live_context(request, tenant, run), request=request)
    return JsonResponse({"state": run["state"], "final": run["final"], "html": html})


@login_required
@require_POST
def tenant_run_retry(request, slug, run_id):
    return _steer(request, slug, run_id, control.retry_run, "Run queued again; it resumes at its first unfinished step.")


@login_required
@require_POST
def tenant_run_cancel(request, slug, run_id):
    return _steer(request, slug, run_id, control.cancel_run, "Run cancelled.")


def _steer(request, slug, run_id, action, done: str):
    tenant = _tenant(request, slug)
    if not request.user.has_perm(roles.perm(roles.RUNS), tenant):
        messages.error(request, "Your role does not allow retrying or cancelling runs.")
        return redirect("tenant-run", slug=slug, run_id=run_id)
    try:
        action(tenant.id, run_id, actor=actor_of(request))
    except ServiceError as exc:
        if exc.status == 404:
            raise Http404(exc.message)
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("tenant-run", slug=slug, run_id=run_id)


def _run_or_404(tenant, run_id) -> dict:
    try:
        return control.get_run(tenant.id, run_id)
    except ServiceError as exc:
        raise Http404(exc.message)


def _live_context(request, tenant, run: dict) -> dict:
    run["duration"] = human_duration(run["duration_ms"])
    for column in ("created_at", "started_at", "finished_at", "due_at"):
        run[column.removesuffix("_at")] = when(run[column])
    run["result_text"] = _pretty(run.get("result"))
    run["input_text"] = _pretty(run.get("input"))
    prefix = f"/{run['kind']}s/{run['name']}/"
    run["next_short"] = (run["next_step"] or "").removeprefix(prefix)
    for step in run["steps"]:
        step["icon"] = STEP_ICONS.get(step["kind"], "•")
        step["short_key"] = step["key"].removeprefix(prefix)
        step["duration"] = human_duration(step["duration_ms"])
        step["started"] = when(step["started_at"])
        if step["started"][:10] == run["created"][:10]:  # the run's day: the time says enough
            step["started"] = step["started"][11:]
        step["summary"] = step_summary(step)
        step["result_text"] = _pretty(step["result"])
    can_manage = request.user.has_perm(roles.perm(roles.RUNS), tenant)
    return {
        "tenant": tenant,
        "run": run,
        "can_retry": can_manage and run["state"] == "dead",
        "can_cancel": can_manage and not run["final"],
    }


def when(iso: str | None) -> str:
    """An ISO timestamp (UTC) as the console shows it: `2025-01-31 12:00:05`."""
    return iso[:19].replace("T", " ") if iso else ""


def human_duration(ms: int | None) -> str:
    """
    >>> [human_duration(v) for v in (None, 42, 3400, 125_000, 7_380_000, 190_800_000)]
    ['', '42 ms', '3.4 s', '2 min 5 s', '2 h 3 min', '2 d 5 h']
    """
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def step_summary(step: dict, width: int = 90) -> str:
    """One line saying what a step did, from its stored detail.

    >>> step_summary({"kind": "http", "detail": {"method": "POST", "url": "https://x.test/a", "status": 502}})
    'POST https://x.test/a → 502'
    >>> step_summary({"kind": "create", "detail": {"entity": "Order", "id": "7f"}})
    'entity=Order id=7f'
    """
    detail = step.get("detail")
    if not isinstance(detail, dict) or not detail:
        return _shorten(json.dumps(detail), width) if detail not in (None, {}, []) else ""
    if "url" in detail:
        text = f"{detail.get('method', 'GET')} {detail['url']}"
        if detail.get("status") is not None:
            text += f" → {detail['status']}"
        return _shorten(text, width)
    parts = [
        f"{key}={value if isinstance(value, (str, int, float, bool)) else json.dumps(value)}"
        for key, value in detail.items()
        if value is not None
    ]
    return _shorten(" ".join(parts), width)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _pretty(value) -> str:
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)
