"""Personal access tokens for the admin API, and the DRF authentication that reads them.

A token is `plt_` + 43 random URL-safe characters; only its SHA-256 is stored (a token has
256 bits of entropy, so a fast hash is enough: there is nothing to brute-force).
"""

from __future__ import annotations

import secrets

from django.utils import timezone
from rest_framework import authentication, exceptions

from tenants.crypto import sha256_hex
from tenants.models import PersonalAccessToken

TOKEN_PREFIX = "plt_"


def token_generate() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_lookup(raw: str) -> PersonalAccessToken | None:
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    return (
        PersonalAccessToken.objects.select_related("user")
        .filter(token_hash=sha256_hex(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <personal access token>'.")
        token = token_lookup(raw.strip())
        if token is None:
            raise exceptions.AuthenticationFailed("The token is unknown, revoked, or its account is disabled.")
        now = timezone.now()
        # One write a minute at most, not one per request.
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword
