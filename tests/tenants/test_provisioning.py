"""Provisioning and isolation at the database level.

A tenant's schema and role are created with its row and dropped with it; a failure part way
leaves nothing; and under one tenant's role, nothing of another tenant or of the control
plane can be read or written, whatever SQL is sent.
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import ProgrammingError, connection

from runtime.db import runtime_conninfo, tenant_transaction
from tenants import services
from tenants.models import ApiKey, AuditEvent, Membership, Tenant, new_tenant_id
from tenants.provisioning import role_exists, schema_exists


def _exists(tenant_id: str) -> tuple[bool, bool]:
    with connection.cursor() as cur:
        return schema_exists(cur, tenant_id), role_exists(cur, tenant_id)


def test_creating_a_tenant_creates_its_schema_and_role_owned_by_the_role(alice):
    tenant, keys = services.tenant_create(owner=alice, name="Acme")
    assert _exists(tenant.id) == (True, True)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", [tenant.schema]
        )
        assert cur.fetchone()[0] == tenant.schema
        cur.execute("SELECT rolcanlogin, rolinherit FROM pg_roles WHERE rolname = %s", [tenant.schema])
        assert cur.fetchone() == (False, False)
    assert set(keys) == {"anon", "service"}
    assert Membership.objects.get(tenant=tenant).role == "owner"


def test_deleting_a_tenant_drops_schema_role_and_row(alice):
    tenant, _ = services.tenant_create(owner=alice, name="Acme")
    services.tenant_delete(tenant=tenant, actor=services.Actor(alice))
    assert _exists(tenant.id) == (False, False)
    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    assert not ApiKey.objects.filter(tenant_id=tenant.pk).exists()


def test_a_failure_in_the_middle_of_provisioning_leaves_nothing_behind(alice):
    # The role is created first; then CREATE SCHEMA fails because a schema of that name is
    # already there (made here by hand), as a crash or a conflicting name would.
    tenant_id = new_tenant_id()
    with connection.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "t_{tenant_id}"')
    audit_before = AuditEvent.objects.count()
    with pytest.raises(ProgrammingError) as err:
        services.tenant_create(owner=alice, name="Doomed", _tenant_id=tenant_id)
    assert isinstance(err.value.__cause__, psycopg.errors.DuplicateSchema)
    with connection.cursor() as cur:
        assert not role_exists(cur, tenant_id)
        cur.execute(f'DROP SCHEMA "t_{tenant_id}"')
    assert not Tenant.objects.filter(pk=tenant_id).exists()
    assert not Tenant.objects.filter(name="Doomed").exists()
    assert not ApiKey.objects.filter(tenant_id=tenant_id).exists()
    assert not Membership.objects.filter(tenant_id=tenant_id).exists()
    assert AuditEvent.objects.count() == audit_before


def test_a_failure_after_the_schema_is_made_also_leaves_nothing(alice):
    # The slug is free when checked but taken by the time the row is written: the unique
    # constraint fires after the role exists in the same transaction only if ordering
    # changes; either way nothing of the failed tenant may remain.
    services.tenant_create(owner=alice, name="First", slug="taken")
    roles_before = _count_tenant_roles()
    with pytest.raises(services.ServiceError) as err:
        services.tenant_create(owner=alice, name="Second", slug="taken")
    assert err.value.code == "slug_taken"
    assert _count_tenant_roles() == roles_before
    assert Tenant.objects.filter(slug="taken").count() == 1


def _count_tenant_roles() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_roles WHERE rolname ~ '^t_[a-z0-9]{12}$'")
        return cur.fetchone()[0]


# isolation: these need committed schemas, seen by the runtime role's own connection -----


@pytest.fixture
def two_tenants(committed_tenants, alice, bob):
    a, _ = committed_tenants(alice, "Tenant A")
    b, _ = committed_tenants(bob, "Tenant B")
    for tenant, secret in ((a, "a-secret"), (b, "b-secret")):
        with tenant_transaction(tenant.id) as conn:
            conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
            conn.execute("INSERT INTO notes (body) VALUES (%s)", [secret])
    return a, b


def test_a_tenant_reads_its_own_schema_through_the_unqualified_search_path(two_tenants):
    a, _ = two_tenants
    with tenant_transaction(a.id, {"sub": "u1"}) as conn:
        row = conn.execute(
            "SELECT current_user, current_setting('search_path'), "
            "current_setting('request.jwt.claims'), (SELECT body FROM notes)"
        ).fetchone()
    assert row == (a.schema, a.schema, '{"sub":"u1"}', "a-secret")


ATTACKS = [
    "SELECT body FROM {b}.notes",
    "INSERT INTO {b}.notes (body) VALUES ('pwned')",
    "UPDATE {b}.notes SET body = 'pwned'",
    "DELETE FROM {b}.notes",
    "DROP TABLE {b}.notes",
    "CREATE TABLE {b}.intruder (id int)",
    "SELECT * FROM public.tenants_tenant",
    "SELECT * FROM public.tenants_apikey",
    "SELECT * FROM public.tenants_user",
    "UPDATE public.tenants_tenant SET name = 'pwned'",
    "RESET ROLE; SELECT * FROM public.tenants_tenant",
    "SET ROLE postgres",
    "SELECT set_config('role', '{b_name}', true)",
    "SELECT set_config('role', '{b_name}', false)",
    "SELECT set_config('search_path', '{b_name}', true)",
    "SELECT (SELECT set_config('role', '{b_name}', true)) IS NULL",
    "CREATE SCHEMA intruder",
    "ALTER ROLE {a} SUPERUSER",
    "CREATE ROLE intruder",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_under_tenant_a_sql_naming_tenant_b_or_the_control_plane_fails_with_a_permission_error(
    two_tenants, attack
):
    a, b = two_tenants
    statement = attack.format(a=f'"{a.schema}"', b=f'"{b.schema}"', b_name=b.schema)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with tenant_transaction(a.id) as conn:
            for part in statement.split("; "):
                conn.execute(part)
    # and B's data is untouched
    with tenant_transaction(b.id) as conn:
        assert conn.execute("SELECT array_agg(body) FROM notes").fetchone()[0] == ["b-secret"]


def test_with_the_search_path_on_public_control_plane_tables_do_not_even_resolve(two_tenants):
    a, _ = two_tenants
    with pytest.raises(psycopg.errors.UndefinedTable):
        with tenant_transaction(a.id) as conn:
            conn.execute("SET LOCAL search_path = public")
            conn.execute("SELECT * FROM tenants_tenant")


def test_a_compiled_fragment_cannot_smuggle_a_second_statement(two_tenants):
    """The runtime always binds parameters, so psycopg uses the extended protocol, which
    refuses more than one statement: an injected `; SET ROLE t_b` never runs."""
    a, b = two_tenants
    with pytest.raises(psycopg.errors.SyntaxError):
        with tenant_transaction(a.id) as conn:
            conn.execute(f'SELECT body FROM notes WHERE body = %s; SET ROLE "{b.schema}"', ["x"])


@pytest.mark.parametrize("smuggled", [
    "INSERT INTO notes (body) VALUES ('smuggled')",
    'SET ROLE "{b}"',
    "RESET ROLE",
])
@pytest.mark.parametrize("cast", ["%(x)s", "CAST(%(x)s AS text)"])
def test_a_one_message_read_cannot_smuggle_a_second_statement_either(two_tenants, smuggled, cast):
    """`tenant_statement` sends the switch and the read as one message: a read text holding
    a second statement must fail without running any of it."""
    from runtime.db import runtime_pool, tenant_statement

    a, b = two_tenants
    with pytest.raises(psycopg.Error):
        tenant_statement(a.id, None, f"SELECT body FROM notes WHERE body = {cast}; " + smuggled.format(b=b.schema),
                         {"x": "a-secret"})
    with runtime_pool().connection() as conn:     # nothing leaked to the pooled connection
        assert conn.execute("SELECT current_user").fetchone()[0] == "plinth_runtime"
    with tenant_transaction(a.id) as conn:
        assert conn.execute("SELECT array_agg(body) FROM notes").fetchone()[0] == ["a-secret"]


def test_the_runtime_role_has_no_rights_of_its_own_on_tenant_data(two_tenants):
    a, _ = two_tenants
    with psycopg.connect(runtime_conninfo()) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "plinth_runtime"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'SELECT * FROM "{a.schema}".notes')


def test_transaction_local_settings_do_not_leak_to_the_next_user_of_a_pooled_connection(two_tenants):
    a, _ = two_tenants
    with tenant_transaction(a.id, {"sub": "u1"}):
        pass
    from runtime.db import runtime_pool

    with runtime_pool().connection() as conn:
        row = conn.execute(
            "SELECT current_user, current_setting('request.jwt.claims', true)"
        ).fetchone()
    assert row[0] == "plinth_runtime"
    assert row[1] in (None, "")


def test_deleting_tenant_a_leaves_tenant_b_intact(two_tenants, alice):
    a, b = two_tenants
    services.tenant_delete(tenant=a, actor=services.Actor(alice))
    assert _exists(a.id) == (False, False)
    with tenant_transaction(b.id) as conn:
        assert conn.execute("SELECT body FROM notes").fetchone()[0] == "b-secret"
