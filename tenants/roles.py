"""Roles on a tenant and the object permissions each one bundles.

Endpoints check permissions (`user.has_perm("tenants.delete_tenant", tenant)`), never role
names, so a role can change what it grants in one place: here.
"""

from __future__ import annotations

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType

VIEW = "view_tenant"
CHANGE = "change_tenant"
DELETE = "delete_tenant"
PUSH = "push_definition"
KEYS = "manage_keys"
SECRETS = "manage_secrets"
MEMBERS = "manage_members"
RUNS = "manage_runs"

ALL_PERMISSIONS = (VIEW, CHANGE, DELETE, PUSH, KEYS, SECRETS, MEMBERS, RUNS)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({VIEW}),
    "developer": frozenset({VIEW, PUSH, SECRETS, RUNS}),
    "admin": frozenset({VIEW, PUSH, SECRETS, RUNS, CHANGE, KEYS, MEMBERS}),
    "owner": frozenset(ALL_PERMISSIONS),
}


def perm(codename: str) -> str:
    return f"tenants.{codename}"


def _permission_ids() -> dict[str, int]:
    from tenants.models import Tenant

    content_type = ContentType.objects.get_for_model(Tenant)
    found = dict(
        Permission.objects.filter(content_type=content_type, codename__in=ALL_PERMISSIONS).values_list("codename", "id")
    )
    missing = set(ALL_PERMISSIONS) - set(found)
    if missing:
        raise LookupError(f"permissions not migrated: {sorted(missing)}")
    return found


def apply_role(user, tenant, role: str) -> None:
    """Make the user's object permissions on the tenant exactly those of `role`.

    Writes guardian's direct-foreign-key permission rows itself (two or three queries)
    rather than calling assign_perm/remove_perm once per permission (several each).
    """
    from tenants.models import TenantUserObjectPermission

    ids = _permission_ids()
    wanted = {ids[codename] for codename in ROLE_PERMISSIONS[role]}
    rows = TenantUserObjectPermission.objects.filter(user=user, content_object=tenant)
    rows.exclude(permission_id__in=wanted).delete()
    have = set(rows.values_list("permission_id", flat=True))
    TenantUserObjectPermission.objects.bulk_create(
        [TenantUserObjectPermission(user=user, content_object=tenant, permission_id=pid) for pid in wanted - have]
    )


def clear_role(user, tenant) -> None:
    from tenants.models import TenantUserObjectPermission

    TenantUserObjectPermission.objects.filter(user=user, content_object=tenant).delete()
