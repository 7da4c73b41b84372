"""Roles on a tenant and the object permissions each one bundles.

Endpoints check permissions (`user.has_perm("tenants.delete_tenant", tenant)`), never role
names, so a role can change what it grants in one place: here.
"""

from __future__ import annotations

from guardian.shortcuts import assign_perm, remove_perm

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


def apply_role(user, tenant, role: str) -> None:
    """Make the user's object permissions on the tenant exactly those of `role`."""
    wanted = ROLE_PERMISSIONS[role]
    for codename in ALL_PERMISSIONS:
        if codename in wanted:
            assign_perm(perm(codename), user, tenant)
        else:
            remove_perm(perm(codename), user, tenant)


def clear_role(user, tenant) -> None:
    for codename in ALL_PERMISSIONS:
        remove_perm(perm(codename), user, tenant)
