"""Fixed-window counters in Django's cache (Redis), per tenant and client address.

Only failed logins count against the login limit: a user who types the password right is
never slowed down, and a successful login does not reset the count (else an attacker with
one account of their own could reset it between guesses). If the cache is down the limit
is skipped and logged, rather than locking every user out.
"""

from __future__ import annotations

import structlog
from django.core.cache import cache

from runtime.auth import config
from runtime.auth.errors import AuthError

log = structlog.get_logger("plinth.auth")


def client_address(request) -> str:
    # Behind a proxy, gunicorn is told the real address with --forwarded-allow-ips.
    return request.META.get("REMOTE_ADDR") or "unknown"


def _key(kind: str, tenant_id: str, address: str) -> str:
    return f"data_auth:{kind}:{tenant_id}:{address}"


def _too_many(window: int) -> AuthError:
    return AuthError(429, "over_request_rate_limit", "Request rate limit reached: try again later.",
                     headers={"Retry-After": str(window)})


def _count(key: str) -> int:
    try:
        return int(cache.get(key) or 0)
    except Exception:  # noqa: BLE001 - an outage of the cache must not fail logins
        log.warning("auth.ratelimit_unavailable")
        return 0


def _bump(key: str, window: int) -> None:
    try:
        # add() starts the window only if none is running; incr() keeps its expiry
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.set(key, 1, timeout=window)
    except Exception:  # noqa: BLE001
        log.warning("auth.ratelimit_unavailable")


def check_login(tenant_id: str, address: str) -> None:
    if _count(_key("login", tenant_id, address)) >= config.get("DATA_AUTH_LOGIN_FAILURES"):
        raise _too_many(config.get("DATA_AUTH_LOGIN_WINDOW"))


def login_failed(tenant_id: str, address: str) -> None:
    _bump(_key("login", tenant_id, address), config.get("DATA_AUTH_LOGIN_WINDOW"))


def check_signup(tenant_id: str, address: str) -> None:
    if _count(_key("signup", tenant_id, address)) >= config.get("DATA_AUTH_SIGNUPS"):
        raise _too_many(config.get("DATA_AUTH_SIGNUP_WINDOW"))


def signed_up(tenant_id: str, address: str) -> None:
    _bump(_key("signup", tenant_id, address), config.get("DATA_AUTH_SIGNUP_WINDOW"))
