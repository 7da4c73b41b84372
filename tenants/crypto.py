"""Symmetric encryption for values the platform must keep but never show in clear
(replayed idempotent answers now; tenant secrets later).

Keys come from PLINTH_ENCRYPTION_KEYS (comma-separated Fernet keys, newest first, so a key
can be rotated) or, in development, are derived from SECRET_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from controlplane.settings import env


def derive(purpose: str, length: int = 32) -> bytes:
    """A key for one purpose, derived from SECRET_KEY (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(
        settings.SECRET_KEY.encode()
    )


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    configured = [k.strip() for k in env("PLINTH_ENCRYPTION_KEYS").split(",") if k.strip()]
    keys = configured or [base64.urlsafe_b64encode(derive("plinth-encryption"))]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(data: bytes) -> bytes:
    return _fernet().encrypt(data)


def decrypt(token: bytes) -> bytes:
    return _fernet().decrypt(bytes(token))


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def runtime_role_password() -> str:
    return hmac.new(derive("plinth-runtime-role"), b"password", hashlib.sha256).hexdigest()
