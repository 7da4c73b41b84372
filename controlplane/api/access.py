"""Resolving the tenant of an admin API request and checking the caller's permission on it.

A caller who cannot see a tenant gets 404 whatever it exists or not; a caller who can see
it but lacks the permission gets 403 naming what was missing.
"""

from __future__ import annotations

from rest_framework.exceptions import NotFound, PermissionDenied

from controlplane.middleware import bind_tenant
from tenants.models import Tenant
from tenants.roles import perm
from tenants.selectors import tenant_for
from tenants.services import Actor


def tenant_or_404(request, slug: str, needs: str | None = None) -> Tenant:
    tenant = tenant_for(request.user, slug)
    if tenant is None:
        raise NotFound(f"No tenant '{slug}' that you can see.")
    bind_tenant(tenant.slug)
    if needs and not request.user.has_perm(perm(needs), tenant):
        raise PermissionDenied(f"Your role on '{tenant.slug}' does not allow this ({needs}).")
    return tenant


def actor_of(request) -> Actor:
    user = request.user if getattr(request.user, "is_authenticated", False) else None
    return Actor(user, client_ip(request), request.headers.get("User-Agent", ""))


def client_ip(request) -> str | None:
    # Behind a proxy, gunicorn is told the real address with --forwarded-allow-ips.
    return request.META.get("REMOTE_ADDR") or None
