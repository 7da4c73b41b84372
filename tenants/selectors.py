"""Reads of the control plane, shaped for views and the API."""

from __future__ import annotations

from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

from tenants.models import Membership, Tenant, User
from tenants.roles import VIEW, perm


def tenants_visible_to(user: User) -> QuerySet[Tenant]:
    return get_objects_for_user(user, perm(VIEW), klass=Tenant, accept_global_perms=False).order_by("created_at")


def tenant_for(user: User, slug: str) -> Tenant | None:
    """The tenant if `user` may see it; None for unknown and for not-yours alike, so that a
    stranger cannot tell which slugs exist."""
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None or not user.has_perm(perm(VIEW), tenant):
        return None
    return tenant


def role_of(user: User, tenant: Tenant) -> str | None:
    return Membership.objects.filter(tenant=tenant, user=user).values_list("role", flat=True).first()


def members_of(tenant: Tenant) -> QuerySet[Membership]:
    return tenant.memberships.select_related("user").order_by("created_at")
