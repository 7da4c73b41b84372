"""Tenants, their keys and their members, for CLIs and platforms.

Every endpoint resolves the tenant through `tenant_or_404` with the permission it needs.
"""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api.access import actor_of, tenant_or_404
from controlplane.api.idempotency import idempotent
from tenants import roles, services
from tenants.models import Membership, Tenant
from tenants.selectors import members_of, role_of, tenants_visible_to


def data_api_url(request, tenant: Tenant) -> str:
    return request.build_absolute_uri(f"/t/{tenant.slug}")


def tenant_json(request, tenant: Tenant) -> dict:
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "status": tenant.status,
        "data_api_url": data_api_url(request, tenant),
        "role": role_of(request.user, tenant),
        "created_at": tenant.created_at.isoformat(),
    }


class TenantIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    slug = serializers.CharField(max_length=40, required=False)


class TenantPatch(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    status = serializers.ChoiceField(choices=Tenant.Status.choices, required=False)


class TenantOut(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    data_api_url = serializers.URLField()
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


Keys = inline_serializer("Keys", {"anon": serializers.CharField(), "service": serializers.CharField()})
NewTenantOut = inline_serializer(
    "NewTenant",
    {
        "slug": serializers.CharField(),
        "name": serializers.CharField(),
        "status": serializers.CharField(),
        "data_api_url": serializers.URLField(),
        "keys": Keys,
    },
)


class TenantListView(APIView):
    @extend_schema(responses=TenantOut(many=True), summary="Tenants you can see")
    def get(self, request):
        return Response([tenant_json(request, t) for t in tenants_visible_to(request.user)])

    @extend_schema(
        request=TenantIn,
        responses={201: NewTenantOut},
        summary="Create a tenant (its schema, role and keys); accepts Idempotency-Key",
    )
    def post(self, request):
        data = TenantIn(data=request.data)
        data.is_valid(raise_exception=True)

        def create():
            tenant, keys = services.tenant_create(
                owner=request.user,
                name=data.validated_data["name"],
                slug=data.validated_data.get("slug"),
                actor=actor_of(request),
            )
            body = {
                "slug": tenant.slug,
                "name": tenant.name,
                "status": tenant.status,
                "data_api_url": data_api_url(request, tenant),
                "keys": keys,
            }
            return Response(body, status=status.HTTP_201_CREATED)

        return idempotent(request, "tenant.create", create)


class TenantDetailView(APIView):
    @extend_schema(responses=TenantOut, summary="One tenant")
    def get(self, request, slug: str):
        return Response(tenant_json(request, tenant_or_404(request, slug)))

    @extend_schema(request=TenantPatch, responses=TenantOut, summary="Rename or suspend a tenant")
    def patch(self, request, slug: str):
        tenant = tenant_or_404(request, slug, roles.CHANGE)
        data = TenantPatch(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.tenant_update(tenant=tenant, actor=actor_of(request), **data.validated_data)
        return Response(tenant_json(request, tenant))

    @extend_schema(responses={204: None}, summary="Delete a tenant: drops its schema, role and data")
    def delete(self, request, slug: str):
        tenant = tenant_or_404(request, slug, roles.DELETE)
        services.tenant_delete(tenant=tenant, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["anon", "service"])


class KeysView(APIView):
    @extend_schema(
        request=KeyIn,
        responses={201: inline_serializer("NewKey", {"kind": serializers.CharField(), "key": serializers.CharField()})},
        summary="Rotate the anon or service key: the old one stops working at once",
    )
    def post(self, request, slug: str):
        tenant = tenant_or_404(request, slug, roles.KEYS)
        data = KeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        raw = services.key_rotate(tenant=tenant, kind=data.validated_data["kind"], actor=actor_of(request))
        return Response({"kind": data.validated_data["kind"], "key": raw}, status=status.HTTP_201_CREATED)


class MemberOut(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.CharField()



class MemberIn(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class RoleIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


def _guard_owner_role(request, tenant: Tenant, role: str | None, email: str | None = None) -> None:
    """Only owners may make owners, or change or remove one: an admin cannot promote itself."""
    touches_owner = role == Membership.Role.OWNER or (
        email is not None and tenant.memberships.filter(user__email=email.lower(), role=Membership.Role.OWNER).exists()
    )
    if touches_owner and not request.user.has_perm(roles.perm(roles.DELETE), tenant):
        raise PermissionDenied("Only an owner may grant, change or remove the owner role.")


def member_json(m: Membership) -> dict:
    return {"email": m.user.email, "role": m.role}


class MemberListView(APIView):
    @extend_schema(responses=MemberOut(many=True), summary="Who has which role on the tenant")
    def get(self, request, slug: str):
        tenant = tenant_or_404(request, slug)
        return Response([member_json(m) for m in members_of(tenant)])

    @extend_schema(request=MemberIn, responses={201: MemberOut}, summary="Give an account a role on the tenant")
    def post(self, request, slug: str):
        tenant = tenant_or_404(request, slug, roles.MEMBERS)
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        _guard_owner_role(request, tenant, data.validated_data["role"], data.validated_data["email"])
        m = services.member_set(tenant=tenant, actor=actor_of(request), **data.validated_data)
        return Response(member_json(m), status=status.HTTP_201_CREATED)


class MemberDetailView(APIView):
    @extend_schema(request=RoleIn, responses=MemberOut, summary="Change a member's role")
    def patch(self, request, slug: str, email: str):
        tenant = tenant_or_404(request, slug, roles.MEMBERS)
        data = RoleIn(data=request.data)
        data.is_valid(raise_exception=True)
        if not tenant.memberships.filter(user__email=email.lower()).exists():
            raise services.ServiceError("not_found", "No member with this email.", status=404)
        _guard_owner_role(request, tenant, data.validated_data["role"], email)
        m = services.member_set(tenant=tenant, email=email, role=data.validated_data["role"], actor=actor_of(request))
        return Response(member_json(m))

    @extend_schema(responses={204: None}, summary="Remove a member")
    def delete(self, request, slug: str, email: str):
        tenant = tenant_or_404(request, slug, roles.MEMBERS)
        _guard_owner_role(request, tenant, None, email)
        services.member_remove(tenant=tenant, email=email, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventOut(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField()
    actor = serializers.CharField(source="actor_email")
    ip = serializers.CharField(allow_null=True)
    data = serializers.JSONField()
    created_at = serializers.DateTimeField()


class AuditView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("source", str, enum=["platform", "data"], description="only one trail (default: both)"),
            OpenApiParameter("entity", str, description="data trail: only this entity"),
            OpenApiParameter("row_id", str, description="data trail: only this row"),
            OpenApiParameter("limit", int, description="at most this many of each (default 50, at most 200)"),
        ],
        responses={200: OpenApiTypes.OBJECT},
        summary="The tenant's audit trails, newest first: platform events (pushes, keys, members) and data writes",
    )
    def get(self, request, slug: str):
        from runtime.audit import data_audit

        tenant = tenant_or_404(request, slug)
        source = request.query_params.get("source")
        try:
            limit = max(1, min(int(request.query_params.get("limit", 50)), 200))
        except ValueError:
            raise ValidationError({"limit": ["Must be a whole number."]})
        row_id = request.query_params.get("row_id")
        if row_id:
            try:
                row_id = str(uuid.UUID(row_id))
            except ValueError:
                raise ValidationError({"row_id": ["Must be a uuid."]})
        body: dict = {}
        if source in (None, "", "platform"):
            body["platform"] = AuditEventOut(tenant.audit_events.all()[:limit], many=True).data
        if source in (None, "", "data"):
            body["data"] = data_audit(tenant.id, limit=limit, entity=request.query_params.get("entity"), row_id=row_id)
        return Response(body)
