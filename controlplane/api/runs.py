"""Job and workflow runs of a tenant: list with filters, one run with its step timeline,
retry a dead run, cancel a live one (runtime/jobs/control.py does the work).

Viewers and up read; retry and cancel need `manage_runs` (developer and up).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api.access import actor_of, tenant_or_404
from runtime.jobs import control
from runtime.jobs.schema import STATES
from tenants import roles


class RunOut(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField(help_text="job or workflow")
    name = serializers.CharField()
    state = serializers.CharField(help_text=", ".join(STATES))
    final = serializers.BooleanField(help_text="succeeded, dead or cancelled: nothing more will happen")
    attempt = serializers.IntegerField()
    cause = serializers.CharField(help_text="what started it: an event, a schedule, an enqueue or start step")
    key = serializers.CharField(allow_null=True, help_text="the idempotency key it was started with")
    next_step = serializers.CharField(allow_null=True, help_text="JSON Pointer of the step it runs next")
    wait_event = serializers.CharField(allow_null=True, help_text="the event a waiting workflow waits for")
    error = serializers.CharField(allow_null=True)
    due_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField(allow_null=True, help_text="from its first start to its end (or now)")
    version = serializers.IntegerField(
        allow_null=True, help_text="the definition version a worker last claimed it under (null until claimed)")


class StepOut(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField(help_text="JSON Pointer of the step; `#n` marks the n-th loop iteration")
    kind = serializers.CharField(help_text="create, update, http, ai, sleep, wait, ...")
    attempt = serializers.IntegerField()
    state = serializers.CharField(help_text="done, failed (an attempt that went wrong) or parked (sleep, wait)")
    detail = serializers.JSONField(allow_null=True, help_text="what the step did (for http: method, url, status)")
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField(allow_null=True)


class RunDetailOut(RunOut):
    input = serializers.JSONField()
    result = serializers.JSONField(allow_null=True)
    steps = StepOut(many=True)
    steps_omitted = serializers.IntegerField(help_text=f"older steps left out (at most {control.MAX_STEPS} are shown)")


RunPage = inline_serializer(
    "RunPage",
    {"runs": RunOut(many=True), "next": serializers.CharField(allow_null=True, help_text="pass as ?before=")},
)

_RUN_ID = OpenApiParameter("run_id", str, OpenApiParameter.PATH, description="the run's id (a uuid)")


class RunListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("name", str, description="only runs of this job or workflow"),
            OpenApiParameter("kind", str, enum=list(control.KINDS)),
            OpenApiParameter("state", str, description=f"one state or several, comma-separated: {', '.join(STATES)}"),
            OpenApiParameter("since", str, description="created at or after (ISO 8601)"),
            OpenApiParameter("until", str, description="created before (ISO 8601)"),
            OpenApiParameter("limit", int, description=f"at most this many (default 50, at most {control.MAX_LIMIT})"),
            OpenApiParameter("before", str, description="the `next` cursor of the previous page"),
        ],
        responses=RunPage,
        operation_id="tenants_runs_list",
        summary="The tenant's job and workflow runs, newest first",
    )
    def get(self, request, slug: str):
        tenant = tenant_or_404(request, slug)
        filters, errors = control.parse_filters(request.query_params)
        if errors:
            raise ValidationError({name: [message] for name, message in errors.items()})
        runs, cursor = control.list_runs(tenant.id, **filters)
        return Response({"runs": runs, "next": cursor.encode() if cursor else None})


class RunDetailView(APIView):
    @extend_schema(
        parameters=[_RUN_ID], responses=RunDetailOut, operation_id="tenants_runs_retrieve", summary="One run with its steps"
    )
    def get(self, request, slug: str, run_id: str):
        tenant = tenant_or_404(request, slug)
        return Response(control.get_run(tenant.id, run_id))


class RunRetryView(APIView):
    @extend_schema(
        parameters=[_RUN_ID],
        request=None,
        responses=RunDetailOut,
        summary="Run a dead run again from its first unfinished step (409 run_not_retryable otherwise)",
    )
    def post(self, request, slug: str, run_id: str):
        tenant = tenant_or_404(request, slug, roles.RUNS)
        return Response(control.retry_run(tenant.id, run_id, actor=actor_of(request)))


class RunCancelView(APIView):
    @extend_schema(
        parameters=[_RUN_ID],
        request=None,
        responses=RunDetailOut,
        summary="Cancel a run that has not finished (409 run_already_final otherwise)",
    )
    def post(self, request, slug: str, run_id: str):
        tenant = tenant_or_404(request, slug, roles.RUNS)
        return Response(control.cancel_run(tenant.id, run_id, actor=actor_of(request)))
