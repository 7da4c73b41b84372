"""Definitions: the language's JSON Schema, pushing (with dry run and destructive
permission), the live definition, and the version history with plans and authors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api.access import actor_of, tenant_or_404
from controlplane.api.errors import error_response
from tenants import roles
from tenants.definitions import definition_push, live_version, version_diff
from tenants.models import DefinitionVersion


class DefinitionSchemaView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="JSON Schema of the definition language")
    def get(self, request):
        from runtime.definition import definition_json_schema

        return Response(definition_json_schema())


class RawDocumentParser(BaseParser):
    """The definition is read from the raw body by the push service (so that YAML and JSON
    syntax errors are reported with their line); this parser only admits the media types."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return None


def _flag(request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def version_json(v: DefinitionVersion, full: bool = False) -> dict:
    body = {
        "version": v.number,
        "author": v.author_email or None,
        "created_at": v.created_at.isoformat(),
        "changes": len(v.plan),
        "labels": sorted({c["label"] for c in v.plan}),
    }
    if full:
        body.update(plan=v.plan, definition=v.definition, source=v.source, content_type=v.content_type)
    return body


class DefinitionView(APIView):
    parser_classes = [RawDocumentParser]

    @extend_schema(
        request={"application/yaml": OpenApiTypes.STR, "application/json": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("dry_run", bool, description="answer the plan only; change nothing"),
            OpenApiParameter("allow_destructive", bool, description="permit destructive changes"),
        ],
        responses={200: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT, 422: OpenApiTypes.OBJECT},
        summary="Push a definition (YAML or JSON); 422 lists every error, 409 a refused destructive plan",
    )
    def post(self, request, slug: str):
        tenant = tenant_or_404(request, slug, roles.PUSH)
        result = definition_push(
            tenant=tenant,
            source=request.body,
            content_type=request.content_type,
            dry_run=_flag(request, "dry_run"),
            allow_destructive=_flag(request, "allow_destructive"),
            actor=actor_of(request),
        )
        return Response(result.as_dict(), status=result.http_status)

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="The live definition and its version")
    def get(self, request, slug: str):
        tenant = tenant_or_404(request, slug)
        version = live_version(tenant)
        if version is None:
            return error_response("no_definition", f"Nothing has been pushed to '{slug}' yet.", 404)
        return Response(version_json(version, full=True))


class VersionListView(APIView):
    @extend_schema(
        operation_id="tenants_definition_versions_list",
        responses={200: OpenApiTypes.OBJECT},
        summary="Every version, newest first, with its author",
    )
    def get(self, request, slug: str):
        tenant = tenant_or_404(request, slug)
        return Response([version_json(v) for v in tenant.versions.all()])


class VersionDetailView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("diff_from", int, description="also answer a unified diff from that version")],
        responses={200: OpenApiTypes.OBJECT},
        summary="One version with its plan, definition and author",
    )
    def get(self, request, slug: str, number: int):
        tenant = tenant_or_404(request, slug)
        version = tenant.versions.filter(number=number).first()
        if version is None:
            return error_response("not_found", f"'{slug}' has no version {number}.", 404)
        body = version_json(version, full=True)
        other = request.query_params.get("diff_from")
        if other is not None:
            try:
                body["diff"] = version_diff(tenant, int(other), number)
            except (KeyError, ValueError):
                return error_response("not_found", f"'{slug}' has no version {other!r}.", 404)
        return Response(body)
