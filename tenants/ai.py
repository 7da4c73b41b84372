"""A tenant's AI settings and its monthly token usage, for the `ai` step (runtime/jobs/calls.py).

The settings name an OpenAI-compatible API (`base_url`, answering `POST
{base_url}/chat/completions`), a default model, the NAME of the secret holding the API key
(the key itself is a secret like any other, tenants/secrets.py) and a monthly token budget.
Usage is counted per calendar month in UTC; `monthly_token_budget: 0` turns ai steps off.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from django.db import connection, transaction

from tenants.models import AiConfig, AiUsage, Secret, Tenant
from tenants.secrets import NAME_RE
from tenants.services import Actor, ServiceError, audit

MAX_BUDGET = 10**12


def month_start(now: dt.datetime | None = None) -> dt.date:
    """The first day of the current calendar month in UTC."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).date().replace(day=1)


def _clean_base_url(base_url: object) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ServiceError("required", "base_url is required.", field="base_url")
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError(
            "invalid_url", "base_url must be an http(s) URL, like https://api.openai.com/v1.", field="base_url"
        )
    if parts.username or parts.password:
        raise ServiceError(
            "invalid_url", "base_url may not hold credentials: put the API key in a secret.", field="base_url"
        )
    if parts.query or parts.fragment:
        raise ServiceError("invalid_url", "base_url may not have a query string or fragment.", field="base_url")
    if len(url) > 500:
        raise ServiceError("too_long", "base_url is at most 500 characters.", field="base_url")
    return url


def _clean_model(model: object) -> str:
    if not isinstance(model, str) or not model.strip():
        raise ServiceError("required", "model is required (the default model of ai steps).", field="model")
    model = model.strip()
    if len(model) > 200 or any(ord(c) < 32 for c in model):
        raise ServiceError("invalid", "model is at most 200 printable characters.", field="model")
    return model


def _clean_key_secret(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ServiceError(
            "invalid_name",
            "key_secret is the NAME of the secret holding the API key: UPPER_SNAKE_CASE, at most 48 characters.",
            field="key_secret",
        )
    return name


def _clean_budget(budget: object) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int) or not 0 <= budget <= MAX_BUDGET:
        raise ServiceError(
            "invalid", f"monthly_token_budget is a whole number from 0 to {MAX_BUDGET:,}.", field="monthly_token_budget"
        )
    return budget


def ai_config_set(
    *,
    tenant: Tenant,
    base_url: str,
    model: str,
    key_secret: str = AiConfig.DEFAULT_KEY_SECRET,
    monthly_token_budget: int = AiConfig.DEFAULT_BUDGET,
    actor: Actor,
) -> AiConfig:
    """Replace the tenant's AI settings (omitted optional values take their defaults)."""
    values = {
        "base_url": _clean_base_url(base_url),
        "model": _clean_model(model),
        "key_secret": _clean_key_secret(key_secret),
        "monthly_token_budget": _clean_budget(monthly_token_budget),
    }
    with transaction.atomic():
        config, _ = AiConfig.objects.update_or_create(tenant=tenant, defaults={**values, "updated_by": actor.user})
        audit(actor, "ai.update", tenant, **values)
    return config


def ai_config_of(tenant_id: str) -> AiConfig | None:
    return AiConfig.objects.filter(tenant_id=tenant_id).first()


def tokens_used(tenant_id: str, month: dt.date | None = None) -> int:
    month = month or month_start()
    return AiUsage.objects.filter(tenant_id=tenant_id, month=month).values_list("tokens", flat=True).first() or 0


def record_usage(tenant_id: str, tokens: int, month: dt.date | None = None) -> int:
    """Add `tokens` to this month's count in one statement (concurrent steps add up, none
    is lost) and answer the new total. Runs in its own transaction when the caller has none,
    so the count stays even if the step then fails."""
    month = month or month_start()
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {AiUsage._meta.db_table} AS u (tenant_id, month, tokens, updated_at)"
            " VALUES (%s, %s, %s, now())"
            " ON CONFLICT (tenant_id, month) DO UPDATE SET tokens = u.tokens + EXCLUDED.tokens, updated_at = now()"
            " RETURNING tokens",
            [tenant_id, month, max(0, int(tokens))],
        )
        return cur.fetchone()[0]


def ai_status(tenant: Tenant) -> dict:
    """The settings as the admin API and the console show them: never the key itself."""
    config = ai_config_of(tenant.id)
    month = month_start()
    key_secret = config.key_secret if config else AiConfig.DEFAULT_KEY_SECRET
    return {
        "configured": config is not None,
        "base_url": config.base_url if config else None,
        "model": config.model if config else None,
        "key_secret": key_secret,
        "key_set": Secret.objects.filter(tenant=tenant, name=key_secret).exists(),
        "monthly_token_budget": config.monthly_token_budget if config else AiConfig.DEFAULT_BUDGET,
        "month": month.strftime("%Y-%m"),
        "tokens_used": tokens_used(tenant.id, month),
        "updated_at": config.updated_at.isoformat() if config else None,
        "updated_by": config.updated_by.email if config and config.updated_by else None,
    }
