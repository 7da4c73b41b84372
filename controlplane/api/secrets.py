"""A tenant's secrets and AI settings, for CLIs and platforms.

Secrets are write-only: a value goes in with PUT and never comes out again, not in an
answer, an error, a log line or the audit log. Viewers may list the names; setting and
removing them, and changing the AI settings, needs `manage_secrets` (developer and up).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api.access import actor_of, tenant_or_404
from tenants import ai, roles
from tenants import secrets as tenant_secrets
from tenants.models import AiConfig
from tenants.services import ServiceError


class SecretOut(serializers.Serializer):
    name = serializers.CharField()
    declared = serializers.BooleanField(help_text="named in the live definition's `secrets`")
    set = serializers.BooleanField(help_text="a value is set (it is never shown)")
    updated_at = serializers.DateTimeField(allow_null=True)
    updated_by = serializers.EmailField(allow_null=True)


SecretIn = inline_serializer(
    "SecretIn", {"value": serializers.CharField(help_text="at most 8 KB; write-only, never answered again")}
)


def _checked_name(name: str) -> str:
    if not tenant_secrets.NAME_RE.match(name):
        # the name is in the URL, not the body: the error has no path
        raise ServiceError(
            "invalid_name",
            "A secret name is UPPER_SNAKE_CASE: a capital letter, then capitals, digits and _, at most 48 characters.",
        )
    return name


def _info(tenant, name: str) -> dict:
    return next(s.as_dict() for s in tenant_secrets.secrets_of(tenant) if s.name == name)


class SecretListView(APIView):
    @extend_schema(
        responses=SecretOut(many=True),
        summary="The tenant's secrets: every one set, and every declared one not set yet (never a value)",
    )
    def get(self, request, slug: str):
        tenant = tenant_or_404(request, slug)
        return Response([s.as_dict() for s in tenant_secrets.secrets_of(tenant)])


class SecretDetailView(APIView):
    @extend_schema(
        request=SecretIn,
        responses={200: SecretOut, 201: SecretOut},
        summary="Set a secret (201 when new, 200 when replaced); the value is never shown again",
    )
    def put(self, request, slug: str, name: str):
        tenant = tenant_or_404(request, slug, roles.SECRETS)
        name = _checked_name(name)
        if not isinstance(request.data, dict) or "value" not in request.data:
            raise ServiceError("required", "The body is {\"value\": \"...\"}.", field="value")
        _, created = tenant_secrets.secret_set(
            tenant=tenant, name=name, value=request.data["value"], actor=actor_of(request)
        )
        return Response(_info(tenant, name), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses={204: None}, summary="Remove a secret")
    def delete(self, request, slug: str, name: str):
        tenant = tenant_or_404(request, slug, roles.SECRETS)
        tenant_secrets.secret_delete(tenant=tenant, name=_checked_name(name), actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AiIn(serializers.Serializer):
    base_url = serializers.CharField(
        max_length=500, help_text="an OpenAI-compatible API, e.g. https://api.openai.com/v1"
    )
    model = serializers.CharField(max_length=200, help_text="the model of ai steps that name none")
    key_secret = serializers.CharField(
        max_length=48, required=False, default=AiConfig.DEFAULT_KEY_SECRET,
        help_text="the NAME of the secret holding the API key",
    )
    monthly_token_budget = serializers.IntegerField(
        min_value=0, max_value=ai.MAX_BUDGET, required=False, default=AiConfig.DEFAULT_BUDGET,
        help_text="tokens per calendar month (UTC); 0 turns ai steps off",
    )


class AiOut(serializers.Serializer):
    configured = serializers.BooleanField()
    base_url = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    key_secret = serializers.CharField()
    key_set = serializers.BooleanField(help_text="the key secret has a value")
    monthly_token_budget = serializers.IntegerField()
    month = serializers.CharField(help_text="YYYY-MM, UTC")
    tokens_used = serializers.IntegerField(help_text="tokens used this month")
    updated_at = serializers.DateTimeField(allow_null=True)
    updated_by = serializers.EmailField(allow_null=True)


class AiView(APIView):
    @extend_schema(responses=AiOut, summary="The tenant's AI settings and this month's token use (never the key)")
    def get(self, request, slug: str):
        return Response(ai.ai_status(tenant_or_404(request, slug)))

    @extend_schema(
        request=AiIn,
        responses=AiOut,
        summary="Replace the AI settings (omitted key_secret and monthly_token_budget take their defaults)",
    )
    def put(self, request, slug: str):
        tenant = tenant_or_404(request, slug, roles.SECRETS)
        data = AiIn(data=request.data)
        data.is_valid(raise_exception=True)
        ai.ai_config_set(tenant=tenant, actor=actor_of(request), **data.validated_data)
        return Response(ai.ai_status(tenant))
