"""Tenants' data API keys (`anon`, `service`).

Keys are JWT-shaped (HS256 over a platform-derived secret) because Supabase clients expect
one; the data API does not trust the signature alone: a key is valid only while its SHA-256
is stored unrevoked for that tenant, so rotating a key revokes the old one at once.
"""

from __future__ import annotations

import secrets

import jwt
from django.utils import timezone

from tenants.crypto import derive, sha256_hex
from tenants.models import ApiKey, Tenant

KINDS = (ApiKey.Kind.ANON, ApiKey.Kind.SERVICE)


def _make_key(tenant: Tenant, kind: str) -> str:
    claims = {"iss": "plinth", "ref": tenant.slug, "role": kind, "jti": secrets.token_urlsafe(16)}
    return jwt.encode(claims, derive("plinth-api-keys"), algorithm="HS256")


def key_issue(tenant: Tenant, kind: str) -> str:
    """Revoke the live key of this kind (if any) and answer a new one, shown this once."""
    ApiKey.objects.filter(tenant=tenant, kind=kind, revoked_at__isnull=True).update(revoked_at=timezone.now())
    raw = _make_key(tenant, kind)
    ApiKey.objects.create(tenant=tenant, kind=kind, key_hash=sha256_hex(raw), prefix=raw[:12])
    return raw


def key_lookup(tenant: Tenant, raw: str) -> ApiKey | None:
    """The live key of this tenant matching `raw`, or None (a key of another tenant is None)."""
    if not raw or len(raw) > 1000:
        return None
    return ApiKey.objects.filter(tenant=tenant, key_hash=sha256_hex(raw), revoked_at__isnull=True).first()


def key_is_live(tenant: Tenant, raw: str) -> bool:
    return key_lookup(tenant, raw) is not None
