"""What the tenant's definition says about auth: its roles, the role a new user gets, and
whether anyone may sign up."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.api.context import RequestContext
from runtime.api.errors import ApiError
from runtime.auth.errors import AuthError, validation

DEFAULT_ROLE = "authenticated"
# Never an end user's role: `service` skips every access rule and `anon` means "no user".
RESERVED_ROLES = frozenset({"anon", "service"})


@dataclass(frozen=True)
class AuthPolicy:
    roles: tuple[str, ...]
    default_role: str
    signup_open: bool

    def assignable(self) -> tuple[str, ...]:
        return (DEFAULT_ROLE, *(r for r in self.roles if r != DEFAULT_ROLE))

    def check_role(self, role) -> str:
        if not isinstance(role, str) or role in RESERVED_ROLES or role not in self.assignable():
            raise validation(f"Role {role!r} is not one of this backend's roles: {', '.join(self.assignable())}.",
                             status=422)
        return role


def policy_of(context: RequestContext) -> AuthPolicy:
    """The live definition's auth section. Before the first push the tenant has no users
    table (system migrations run with the first push), so auth refuses, saying why."""
    try:
        auth = context.backend.definition.auth
    except ApiError as error:
        if error.status == 404:
            raise AuthError(404, "no_definition",
                            f"Tenant '{context.tenant.slug}' has no definition yet: push one before using auth.")
        raise
    return AuthPolicy(tuple(auth.roles), auth.default_role or DEFAULT_ROLE, auth.signup == "open")
