"""Rule: the sign-up role is one of the declared roles.

Role names themselves (snake_case, not a built-in) are checked by the JSON Schema. Without
`default_role`, a signed-up user has only the built-in role `authenticated`.
"""

from __future__ import annotations

from typing import Iterator

from ..model import Definition, DefinitionError

CODES = {
    "auth.unknown_default_role": "`auth.default_role` is not one of `auth.roles`.",
}


def check(d: Definition) -> Iterator[DefinitionError]:
    role = d.auth.default_role
    if role is not None and role not in d.auth.roles:
        declared = ", ".join(d.auth.roles) or "none declared"
        yield DefinitionError("auth.unknown_default_role", "/auth/default_role",
                              f"Default role '{role}' is not in auth.roles ({declared}).")
