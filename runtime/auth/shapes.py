"""Requests in, GoTrue's JSON out: body parsing, email and metadata checks, and the User
and Session objects as supabase-js (`auth-js` types) and supabase-py (pydantic models)
read them."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from django.core.exceptions import RequestDataTooBig, ValidationError
from django.core.validators import validate_email

from runtime.auth.errors import AuthError, validation

AUDIENCE = "authenticated"
MAX_BODY_BYTES = 64 * 1024
MAX_METADATA_BYTES = 16 * 1024
MAX_EMAIL_LENGTH = 254
# app_metadata keys the server computes; a caller's values for them are dropped
COMPUTED_APP_KEYS = ("provider", "providers", "role")
_IDENTITY_NAMESPACE = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")


def body_of(request) -> dict:
    """The JSON object in the body; an empty body is `{}`."""
    too_large = AuthError(413, "request_too_large", f"The body is over {MAX_BODY_BYTES} bytes.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:  # refused before Django reads it
        raise too_large
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_large
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the stack
        raise AuthError(400, "bad_json", "Could not parse request body as JSON.")
    if not isinstance(data, dict):
        raise AuthError(400, "bad_json", "The request body must be a JSON object.")
    return data


def email_of(value) -> str:
    """Trimmed, lowercased and checked; 400 email_address_invalid otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise validation("An email address is required.")
    email = value.strip().lower()
    try:
        if len(email) > MAX_EMAIL_LENGTH:
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        raise AuthError(400, "email_address_invalid", "Unable to validate email address: invalid format")
    return email


def metadata_of(value, name: str) -> dict | None:
    """A metadata object from a body (None when absent); bounded in size."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise validation(f"{name} must be a JSON object.")
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise validation(f"{name} is over {MAX_METADATA_BYTES} bytes.", status=422)
    return value


def merged(current: dict, changes: dict) -> dict:
    """GoTrue's metadata update: top-level keys replace, a null value removes the key."""
    result = dict(current)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def timestamp(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def user_json(row: dict) -> dict:
    """The User object. `role` is the application role (what access rules see as
    `auth.role`), repeated in `app_metadata.role`; emails are confirmed at creation, since
    Plinth sends no confirmation mail (Supabase's behaviour with autoconfirm on)."""
    user_id = str(row["id"])
    created = timestamp(row["created_at"])
    app_metadata = {k: v for k, v in (row["app_metadata"] or {}).items() if k not in COMPUTED_APP_KEYS}
    # One email identity, as GoTrue answers: apps read `identities.length === 0` on sign-up
    # as "this email was registered already".
    identity = {
        "identity_id": str(uuid.uuid5(_IDENTITY_NAMESPACE, user_id)),
        "id": user_id,
        "user_id": user_id,
        "identity_data": {"sub": user_id, "email": row["email"], "email_verified": True, "phone_verified": False},
        "provider": "email",
        "email": row["email"],
        "last_sign_in_at": timestamp(row["last_sign_in_at"]),
        "created_at": created,
        "updated_at": timestamp(row["updated_at"]),
    }
    return {
        "id": user_id,
        "aud": AUDIENCE,
        "role": row["role"],
        "email": row["email"],
        "email_confirmed_at": created,
        "phone": "",
        "confirmed_at": created,
        "last_sign_in_at": timestamp(row["last_sign_in_at"]),
        "app_metadata": {"provider": "email", "providers": ["email"], **app_metadata, "role": row["role"]},
        "user_metadata": row["user_metadata"] or {},
        "identities": [identity],
        "created_at": created,
        "updated_at": timestamp(row["updated_at"]),
        "is_anonymous": False,
    }


def session_json(*, access_token: str, expires_in: int, expires_at: int, refresh_token: str, user: dict) -> dict:
    return {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "expires_at": expires_at,
        "refresh_token": refresh_token,
        "user": user_json(user),
    }


def app_metadata_to_store(value: dict | None) -> dict:
    """What of a caller's app_metadata is kept: everything but the computed keys."""
    return {k: v for k, v in (value or {}).items() if k not in COMPUTED_APP_KEYS}
