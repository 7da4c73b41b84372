"""Control-plane tables: accounts, tenants, memberships, keys, tokens, idempotency, audit,
secrets and AI settings.

All of them live in `public`; tenant roles cannot read them (tenants/provisioning.py).
"""

from __future__ import annotations

import secrets
import string

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_tenant_id() -> str:
    """12 random characters: the tenant's schema and role are `t_<id>`.

    Random rather than sequential so that names never collide across databases of one
    Postgres cluster (roles are cluster-wide) and reveal nothing about how many tenants exist.
    """
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra):
        email = self.normalize_email(email).lower()
        user = self.model(email=email, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        return self.create_user(email, password, is_staff=True, is_superuser=True, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A developer account (console and admin API). Tenants' end users live in tenant schemas."""

    email = models.EmailField(unique=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()
    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    def __str__(self) -> str:
        return self.email


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    id = models.CharField(primary_key=True, max_length=12, default=new_tenant_id, editable=False)
    slug = models.SlugField(unique=True, max_length=40)
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    # Signs the tenant's end-user access tokens (data API); encrypted at rest, rotatable.
    auth_secret = models.BinaryField(editable=False, default=bytes)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        # Object permissions (django-guardian) that roles bundle; see tenants/roles.py.
        permissions = [
            ("push_definition", "Push a definition to the tenant"),
            ("manage_keys", "Rotate the tenant's API keys"),
            ("manage_secrets", "Set and remove the tenant's secrets"),
            ("manage_members", "Add, change and remove the tenant's members"),
            ("manage_runs", "Retry and cancel job and workflow runs"),
        ]

    @property
    def schema(self) -> str:
        return f"t_{self.id}"

    def __str__(self) -> str:
        return self.slug


class DefinitionVersion(models.Model):
    """One applied definition of a tenant. Every version is kept; the newest is live.
    Rolling back is pushing an older one again (a new version, through the planner)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()          # the parsed tree
    source = models.TextField()              # the document as pushed (YAML or JSON)
    content_type = models.CharField(max_length=40, default="application/yaml")
    plan = models.JSONField(default=list)    # the changes that made this version live
    author = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    author_email = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="one_version_number_per_tenant")]


class Membership(models.Model):
    """Who has which role on a tenant. The role's permissions are also granted as guardian
    object permissions, which are what every endpoint checks."""

    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        DEVELOPER = "developer"
        VIEWER = "viewer"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_user")]


class ApiKey(models.Model):
    """A tenant's data API key (`anon` or `service`). Only its SHA-256 is stored; the key
    itself is shown once, when made."""

    class Kind(models.TextChoices):
        ANON = "anon"
        SERVICE = "service"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind"], condition=models.Q(revoked_at__isnull=True), name="one_live_key_per_kind"
            )
        ]


class PersonalAccessToken(models.Model):
    """A developer's admin API token. Only its SHA-256 is stored."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class IdempotencyRecord(models.Model):
    """The first answer to a creating call with an `Idempotency-Key`, replayed for repeats.

    The answer may hold keys shown once, so it is stored encrypted (tenants/crypto.py) and
    expires after a day.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "scope", "key"], name="one_answer_per_key")]


class AuditEvent(models.Model):
    """The control plane's audit log: who did what to which tenant, from where."""

    actor = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_email = models.CharField(max_length=254, blank=True)
    tenant = models.ForeignKey(Tenant, null=True, on_delete=models.SET_NULL, related_name="audit_events")
    tenant_slug = models.CharField(max_length=40, blank=True)
    action = models.CharField(max_length=64)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class Secret(models.Model):
    """A value a tenant's jobs and workflows read as `secrets.NAME` (an API key, a webhook
    token). Encrypted at rest (tenants/crypto.py); set and removed through the admin API and
    the console, never shown again, never logged. See tenants/secrets.py."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=48)
    value = models.BinaryField()             # Fernet token of the UTF-8 value
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="one_secret_per_name")]

    def __repr__(self) -> str:  # never the value, even in a debugger or a traceback
        return f"<Secret {self.name} of {self.tenant_id}>"


class AiConfig(models.Model):
    """Where a tenant's `ai` steps go: an OpenAI-compatible API, a default model, the name of
    the secret holding the API key, and a monthly token budget (0 turns ai steps off).
    See tenants/ai.py."""

    DEFAULT_KEY_SECRET = "AI_API_KEY"
    DEFAULT_BUDGET = 1_000_000

    tenant = models.OneToOneField(Tenant, primary_key=True, on_delete=models.CASCADE, related_name="ai_config")
    base_url = models.CharField(max_length=500)
    model = models.CharField(max_length=200)
    key_secret = models.CharField(max_length=48, default=DEFAULT_KEY_SECRET)
    monthly_token_budget = models.BigIntegerField(default=DEFAULT_BUDGET)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")


class AiUsage(models.Model):
    """Tokens a tenant's ai steps used in one calendar month (UTC); `month` is its first day.
    Added to by one upsert per call (tenants/ai.py), so concurrent steps never lose a count."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="ai_usage")
    month = models.DateField()
    tokens = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "month"], name="one_ai_usage_per_month")]


# django-guardian object permissions with a real foreign key to the tenant: they are
# deleted with it, and checks are one indexed join instead of a generic lookup.
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase  # noqa: E402


class TenantUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Tenant, on_delete=models.CASCADE)


class TenantGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Tenant, on_delete=models.CASCADE)
