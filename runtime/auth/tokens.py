"""Minting tokens: access tokens are HS256 JWTs signed with the tenant's secret (through
`runtime.api.context.issue_access_token`, the same code `authenticate` verifies against);
refresh tokens are opaque random strings, kept only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets

from runtime.api.context import TenantInfo, issue_access_token
from runtime.auth import config

REFRESH_TOKEN_BYTES = 32


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def refresh_token_hash(token: str) -> str:
    # A fast hash is right here: the token is 256 random bits, not a guessable password.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def access_token(tenant: TenantInfo, *, user_id: str, email: str, role: str, session_id: str) -> tuple[str, int, int]:
    """(token, expires_in, expires_at). `session_id` ties the token to its refresh-token
    family, so `GET user` can refuse tokens of a session that was logged out."""
    lifetime = config.get("DATA_AUTH_ACCESS_TOKEN_LIFETIME")
    token, expires_at = issue_access_token(
        tenant, user_id=user_id, email=email, role=role, lifetime=lifetime,
        extra={"session_id": session_id, "aal": "aal1", "is_anonymous": False},
    )
    return token, lifetime, expires_at
