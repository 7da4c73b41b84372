"""Fixtures for driving a tenant with the real, unchanged Supabase clients over HTTP.

The tenants are committed (`committed_tenants`) so the platform server, a thread of this
process with connections of its own, sees them; the clients call
`<platform_server.url>/t/<slug>` with the tenant's anon or service key, as an app would. The
client scripts (supabase_js.mjs, supabase_py.py) refuse any request beyond loopback.

Passwords are hashed with cheap argon2 parameters (the platform server is in this process, so
the patch reaches it); the production hasher is tested in tests/runtime/auth.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from tenants import services
from tenants.definitions import definition_push
from tenants.models import Tenant

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@dataclass(frozen=True)
class ClientTenant:
    tenant: Tenant
    url: str          # what createClient / create_client takes
    anon: str
    service: str

    @property
    def slug(self) -> str:
        return self.tenant.slug


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    from runtime.auth import passwords

    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def client_tenant(committed_tenants, django_user_model, platform_server):
    """client_tenant("todo") -> ClientTenant: a committed tenant with examples/<name>.yaml
    pushed, served by the live server."""
    owner = django_user_model.objects.create_user(f"owner-{uuid.uuid4().hex[:8]}@example.com",
                                                  "correct-horse-battery-staple-42")

    def make(example: str) -> ClientTenant:
        tenant, keys = committed_tenants(owner, f"Clients {example}")
        result = definition_push(tenant=tenant, source=(EXAMPLES / f"{example}.yaml").read_text(),
                                 content_type="application/yaml", actor=services.Actor(owner))
        assert result.status == "applied", result.as_dict()
        return ClientTenant(tenant, f"{platform_server.url}/t/{tenant.slug}", keys["anon"], keys["service"])

    return make

