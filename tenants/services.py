"""Every write to the control plane goes through these functions (views, the admin API and
management commands call them; none writes models directly).

Each is atomic and records its audit event in the same transaction.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from tenants import keys, provisioning
from tenants.models import AuditEvent, Membership, PersonalAccessToken, Tenant, User
from tenants.roles import apply_role, clear_role
from tenants.tokens import token_generate
from tenants.crypto import encrypt, sha256_hex

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


class ServiceError(Exception):
    """A request the service refuses; `code` is stable, `field` names the offending input."""

    def __init__(self, code: str, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.field, self.status = code, message, field, status


@dataclass(frozen=True)
class Actor:
    """Who is acting and from where, for the audit log."""

    user: User | None
    ip: str | None = None
    user_agent: str = ""


def audit(actor: Actor, action: str, tenant: Tenant | None = None, **data) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor.user,
        actor_email=actor.user.email if actor.user else "",
        tenant=tenant,
        tenant_slug=tenant.slug if tenant else "",
        action=action,
        ip=actor.ip,
        user_agent=actor.user_agent[:300],
        data=data,
    )


# accounts -------------------------------------------------------------------------------


def user_signup(*, email: str, password: str, actor_ip: str | None = None) -> User:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ServiceError("invalid_email", "Enter a valid email address.", field="email")
    if User.objects.filter(email=email).exists():
        raise ServiceError("email_taken", "An account with this email already exists.", field="email", status=409)
    try:
        validate_password(password or "", User(email=email))
    except ValidationError as exc:
        raise ServiceError("weak_password", " ".join(exc.messages), field="password")
    with transaction.atomic():
        try:
            user = User.objects.create_user(email=email, password=password)
        except IntegrityError:
            raise ServiceError("email_taken", "An account with this email already exists.", field="email", status=409)
        audit(Actor(user, actor_ip), "account.signup")
    return user


def token_create(*, user: User, name: str, actor: Actor) -> tuple[PersonalAccessToken, str]:
    name = (name or "").strip()[:100] or "token"
    raw = token_generate()
    with transaction.atomic():
        token = PersonalAccessToken.objects.create(user=user, name=name, token_hash=sha256_hex(raw), prefix=raw[:8])
        audit(actor, "token.create", token_id=token.pk, name=name)
    return token, raw


def token_revoke(*, user: User, token_id: int, actor: Actor) -> None:
    with transaction.atomic():
        updated = PersonalAccessToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if not updated:
            raise ServiceError("not_found", "No such token.", status=404)
        audit(actor, "token.revoke", token_id=token_id)


# tenants --------------------------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:32].strip("-") or "tenant"
    if not SLUG_RE.match(base):
        base = "tenant"
    slug, n = base, 1
    while Tenant.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ServiceError("required", "A tenant needs a name.", field="name")
    if len(name) > 100:
        raise ServiceError("too_long", "A tenant name is at most 100 characters.", field="name")
    return name


def tenant_create(
    *, owner: User, name: str, slug: str | None = None, actor: Actor | None = None, _tenant_id: str | None = None
) -> tuple[Tenant, dict[str, str]]:
    """Create the tenant row, its owner membership, its keys, its schema and role: all or none.

    Answers the tenant and its keys in clear (the only time they are shown).
    `_tenant_id` exists for tests that need to know the id in advance.
    """
    actor = actor or Actor(owner)
    name = _clean_name(name)
    if slug:
        slug = slug.strip().lower()
        if not SLUG_RE.match(slug):
            raise ServiceError(
                "invalid_slug",
                "A slug is 1 to 40 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
                field="slug",
            )
    with transaction.atomic():
        if slug and Tenant.objects.filter(slug=slug).exists():
            raise ServiceError("slug_taken", f"The slug '{slug}' is taken.", field="slug", status=409)
        tenant = Tenant(
            name=name, slug=slug or _unique_slug(name), created_by=owner, auth_secret=encrypt(secrets.token_bytes(32))
        )
        if _tenant_id:
            tenant.id = _tenant_id
        try:
            with transaction.atomic():
                tenant.save(force_insert=True)
        except IntegrityError:
            raise ServiceError("slug_taken", f"The slug '{tenant.slug}' is taken.", field="slug", status=409)
        Membership.objects.create(tenant=tenant, user=owner, role=Membership.Role.OWNER)
        apply_role(owner, tenant, Membership.Role.OWNER)
        issued = {kind.value: keys.key_issue(tenant, kind) for kind in keys.KINDS}
        with connection.cursor() as cur:
            provisioning.provision_tenant(cur, tenant.id)
        audit(actor, "tenant.create", tenant, name=name)
    return tenant, issued


def tenant_update(*, tenant: Tenant, actor: Actor, name: str | None = None, status: str | None = None) -> Tenant:
    changes = {}
    if name is not None:
        changes["name"] = _clean_name(name)
    if status is not None:
        if status not in Tenant.Status.values:
            raise ServiceError("invalid_status", "status is 'active' or 'suspended'.", field="status")
        changes["status"] = status
    if not changes:
        return tenant
    with transaction.atomic():
        for field, value in changes.items():
            setattr(tenant, field, value)
        tenant.save(update_fields=[*changes, "updated_at"])
        audit(actor, "tenant.update", tenant, **changes)
    return tenant


def tenant_delete(*, tenant: Tenant, actor: Actor) -> None:
    """Drop the schema (with all the tenant's data) and the role, and delete the row."""
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        if locked is None:
            return
        with connection.cursor() as cur:
            provisioning.deprovision_tenant(cur, tenant.id)
            # its runs, their steps, events and schedules (shared tables, runtime/jobs/schema.py)
            for table in ("steps", "runs", "events", "schedules"):
                cur.execute(f"DELETE FROM plinth_jobs.{table} WHERE tenant_id = %s", [tenant.id])
        audit(actor, "tenant.delete", None, slug=tenant.slug, tenant_id=tenant.id)
        locked.delete()


def auth_secret_rotate(*, tenant: Tenant, actor: Actor) -> None:
    """A new signing secret for end-user tokens: every access token issued before stops
    working (refresh tokens, stored in the tenant's schema, still work)."""
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(auth_secret=encrypt(secrets.token_bytes(32)))
        audit(actor, "auth_secret.rotate", tenant)


def key_rotate(*, tenant: Tenant, kind: str, actor: Actor) -> str:
    if kind not in keys.KINDS:
        raise ServiceError("invalid_kind", "kind is 'anon' or 'service'.", field="kind")
    with transaction.atomic():
        raw = keys.key_issue(tenant, kind)
        audit(actor, "keys.rotate", tenant, kind=kind)
    return raw


# members --------------------------------------------------------------------------------


def member_set(*, tenant: Tenant, email: str, role: str, actor: Actor) -> Membership:
    if role not in Membership.Role.values:
        raise ServiceError("invalid_role", "role is one of owner, admin, developer, viewer.", field="role")
    user = User.objects.filter(email=(email or "").strip().lower(), is_active=True).first()
    if user is None:
        raise ServiceError("unknown_user", "No account has this email; they must sign up first.", field="email", status=404)
    with transaction.atomic():
        membership, _ = Membership.objects.select_for_update().get_or_create(
            tenant=tenant, user=user, defaults={"role": role}
        )
        if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
            _ensure_another_owner(tenant, user)
        membership.role = role
        membership.save(update_fields=["role"])
        apply_role(user, tenant, role)
        audit(actor, "member.set", tenant, email=user.email, role=role)
    return membership


def member_remove(*, tenant: Tenant, email: str, actor: Actor) -> None:
    with transaction.atomic():
        membership = (
            Membership.objects.select_for_update()
            .filter(tenant=tenant, user__email=(email or "").strip().lower())
            .select_related("user")
            .first()
        )
        if membership is None:
            raise ServiceError("not_found", "No member with this email.", status=404)
        if membership.role == Membership.Role.OWNER:
            _ensure_another_owner(tenant, membership.user)
        clear_role(membership.user, tenant)
        membership.delete()
        audit(actor, "member.remove", tenant, email=membership.user.email)


def _ensure_another_owner(tenant: Tenant, leaving: User) -> None:
    others = Membership.objects.filter(tenant=tenant, role=Membership.Role.OWNER).exclude(user=leaving)
    if not others.exists():
        raise ServiceError("last_owner", "A tenant keeps at least one owner.", status=409)
