"""Fixtures for the data API's auth tests: committed tenants with a definition pushed
(`make_api`, `api`, `shop`), each answered as an `auth_api.AuthApi`.

Passwords are hashed with cheap argon2 parameters here (the production ones cost ~150 ms a
hash); `test_security.py` checks the production hasher separately.
"""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from auth_api import SHOP, TODO, AuthApi
from tenants import services
from tenants.definitions import definition_push


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    from runtime.auth import passwords

    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def make_api(committed_tenants, alice):
    """make_api(slug, source=TODO) -> AuthApi for a new committed tenant with `source` pushed
    (source=None: no definition)."""

    def make(slug: str, source: str | None = TODO, **kwargs) -> AuthApi:
        tenant, keys = committed_tenants(alice, slug.title(), slug)
        if source is not None:
            result = definition_push(tenant=tenant, source=source, content_type="application/yaml",
                                     actor=services.Actor(alice))
            assert result.status == "applied", result
        return AuthApi(tenant, keys, **kwargs)

    return make


@pytest.fixture
def api(make_api) -> AuthApi:
    """A tenant with examples/todo.yaml: roles [member], default member, sign-up open."""
    return make_api("todo-auth")


@pytest.fixture
def shop(make_api) -> AuthApi:
    return make_api("shop-auth", SHOP)
