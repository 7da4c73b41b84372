"""A tenant's secrets: values its jobs and workflows read as `secrets.NAME` in http and ai
steps (API keys, webhook tokens).

Definitions declare the names; the values are set here (admin API, console), encrypted at
rest with tenants/crypto.py, and only ever decrypted for the job runner (`secrets_for`) and
the ai step (`secret_value`). No function here answers, logs or audits a value: the audit
event of a change names the secret and who changed it, nothing more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from tenants.crypto import decrypt, encrypt
from tenants.models import DefinitionVersion, Secret, Tenant
from tenants.services import Actor, ServiceError, audit

NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,47}$")   # the definition language's secret names
MAX_VALUE_BYTES = 8192


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a secret: never its value."""

    name: str
    declared: bool                  # in the live definition's `secrets`
    set: bool
    updated_at: datetime | None = None
    updated_by: str | None = None   # an email

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "declared": self.declared,
            "set": self.set,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "updated_by": self.updated_by,
        }


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ServiceError(
            "invalid_name",
            "A secret name is UPPER_SNAKE_CASE: a capital letter, then capitals, digits and _, at most 48 characters.",
            field="name",
        )
    return name


def _validate_value(value: object) -> bytes:
    # The messages never quote the value: this is the one input that must not echo.
    if not isinstance(value, str):
        raise ServiceError("invalid", "value must be a string.", field="value")
    if not value:
        raise ServiceError("blank", "value may not be empty.", field="value")
    raw = value.encode("utf-8")
    if len(raw) > MAX_VALUE_BYTES:
        raise ServiceError("too_long", f"value is at most {MAX_VALUE_BYTES} bytes (UTF-8).", field="value")
    return raw


def declared_secrets(tenant: Tenant) -> list[str]:
    """The names the live definition declares (empty before the first push)."""
    tree = (
        DefinitionVersion.objects.filter(tenant=tenant).order_by("-number").values_list("definition", flat=True).first()
    )
    names = (tree or {}).get("secrets") or []
    return [n for n in names if isinstance(n, str)]


@sensitive_variables("value")  # kept out of Django's error reports
def secret_set(*, tenant: Tenant, name: str, value: str, actor: Actor) -> tuple[Secret, bool]:
    """Create or replace a secret; answers it and whether it was new."""
    name = validate_name(name)
    token = encrypt(_validate_value(value))
    with transaction.atomic():
        secret, created = Secret.objects.select_for_update().get_or_create(
            tenant=tenant, name=name, defaults={"value": token, "updated_by": actor.user}
        )
        if not created:
            secret.value, secret.updated_by = token, actor.user
            secret.save(update_fields=["value", "updated_by", "updated_at"])
        audit(actor, "secret.set", tenant, name=name, created=created)
    return secret, created


def secret_delete(*, tenant: Tenant, name: str, actor: Actor) -> None:
    name = validate_name(name)
    with transaction.atomic():
        deleted, _ = Secret.objects.filter(tenant=tenant, name=name).delete()
        if not deleted:
            raise ServiceError("not_found", f"No secret named {name} is set.", status=404)
        audit(actor, "secret.delete", tenant, name=name)


def secrets_of(tenant: Tenant) -> list[SecretInfo]:
    """Every secret that is set, and every declared one that is not, by name."""
    declared = set(declared_secrets(tenant))
    rows = Secret.objects.filter(tenant=tenant).select_related("updated_by").only(
        "name", "updated_at", "updated_by__email"
    )
    found = {
        s.name: SecretInfo(s.name, s.name in declared, True, s.updated_at, s.updated_by.email if s.updated_by else None)
        for s in rows
    }
    for name in declared - set(found):
        found[name] = SecretInfo(name, True, False)
    return [found[name] for name in sorted(found)]


def secrets_for(tenant_id: str) -> dict[str, str]:
    """Every secret of the tenant, decrypted: for the job runner only."""
    rows = Secret.objects.filter(tenant_id=tenant_id).values_list("name", "value")
    return {name: decrypt(token).decode("utf-8") for name, token in rows}


def secret_value(tenant_id: str, name: str) -> str | None:
    """One secret decrypted, or None when it is not set."""
    token = Secret.objects.filter(tenant_id=tenant_id, name=name).values_list("value", flat=True).first()
    return None if token is None else decrypt(token).decode("utf-8")
