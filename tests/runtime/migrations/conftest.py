"""Fixtures for the migration tests: a tenant, pushing definitions to it, running SQL in its
schema, and reading its shape from the catalog.

Everything runs on Django's connection inside the test's transaction (pytest-django's `db`),
DDL included, so each test starts from an empty tenant schema and leaves nothing behind.
"""

from __future__ import annotations

import textwrap

import pytest
from django.db import connection

from migration_shape import actual_shape
from runtime.migrations import in_tenant_schema
from tenants import services
from tenants.definitions import definition_push


class TenantDB:
    """A tenant schema under test: `push` definitions, `sql` in the schema, `shape` of it."""

    def __init__(self, tenant, actor):
        self.tenant = tenant
        self.actor = actor

    def push(self, source: str, **options):
        return definition_push(tenant=self.tenant, source=textwrap.dedent(source), actor=self.actor, **options)

    def sql(self, query: str, params=None) -> list[tuple]:
        """Run one statement as the tenant (its role, its schema first on the path)."""
        with connection.cursor() as cur, in_tenant_schema(cur, self.tenant.id):
            cur.execute(query, params)
            rows = cur.fetchall() if cur.description else []
        return rows

    def one(self, query: str, params=None):
        rows = self.sql(query, params)
        assert len(rows) == 1 and len(rows[0]) == 1, rows
        return rows[0][0]

    def shape(self) -> dict:
        with connection.cursor() as cur:
            return actual_shape(cur, self.tenant.schema)

    def columns(self, table: str) -> dict[str, tuple]:
        """name -> (type, not_null, has_default, generated)"""
        return self.shape()[table]["columns"]

    def tables(self) -> set[str]:
        return set(self.shape())


@pytest.fixture
def tdb(alice) -> TenantDB:
    tenant, _ = services.tenant_create(owner=alice, name="Migrations")
    return TenantDB(tenant, services.Actor(alice))
