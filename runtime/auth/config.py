"""Auth's tunables, read from Django settings at call time (so `override_settings` and the
pytest `settings` fixture apply), each with a default fit for production."""

from __future__ import annotations

from django.conf import settings

DEFAULTS = {
    # access tokens live an hour, as Supabase's do; a refresh renews them
    "DATA_AUTH_ACCESS_TOKEN_LIFETIME": 3600,
    # GoTrue's default minimum is 6; 8 is NIST SP 800-63B's floor for user-chosen secrets
    "DATA_AUTH_PASSWORD_MIN_LENGTH": 8,
    # a ceiling keeps one request from feeding megabytes to argon2
    "DATA_AUTH_PASSWORD_MAX_LENGTH": 1024,
    # failed password logins per tenant and client address in a window of seconds -> 429
    "DATA_AUTH_LOGIN_FAILURES": 10,
    "DATA_AUTH_LOGIN_WINDOW": 300,
    # sign-ups per tenant and client address in a window of seconds -> 429
    "DATA_AUTH_SIGNUPS": 30,
    "DATA_AUTH_SIGNUP_WINDOW": 3600,
    # most users one admin list page may ask for
    "DATA_AUTH_MAX_PER_PAGE": 1000,
}


def get(name: str) -> int:
    return int(getattr(settings, name, DEFAULTS[name]))
