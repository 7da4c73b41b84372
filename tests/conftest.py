"""Shared fixtures: named people (Alice owns, Bob is on her team as a viewer, Charlie is a
stranger), API clients holding their tokens, and tenants.

Tenant roles are cluster-wide while the test database is not; `_sweep_tenant_roles` drops
the roles this session created, so runs do not accumulate roles in a shared cluster.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from tenants import services
from tenants.models import Tenant, User

PASSWORD = "correct-horse-battery-staple-42"



@pytest.fixture(scope="session")
def platform_server(django_db_setup):
    """The platform's WSGI application (controlplane.wsgi, what gunicorn serves: data API
    paths without Django's middleware) on a loopback port, in threads of this process, as
    Django's threaded development server runs it: `.url`. For tests driving the data API
    with real clients; like `live_server`, it sees only committed rows."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    from controlplane.wsgi import application

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(application)
    thread = threading.Thread(target=server.serve_forever, name="platform-server", daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()


def _tenant_roles(cur) -> set[str]:
    cur.execute("SELECT rolname FROM pg_roles WHERE rolname ~ '^t_[a-z0-9]{12}$'")
    return {row[0] for row in cur.fetchall()}


@pytest.fixture(scope="session", autouse=True)
def _sweep_tenant_roles(django_db_setup, django_db_blocker):
    if not connection.settings_dict["NAME"].startswith("test_"):
        # no test database was made (no collected test uses one): nothing to sweep, and
        # the real database's tenants are not ours to touch
        yield
        return
    with django_db_blocker.unblock(), connection.cursor() as cur:
        before = _tenant_roles(cur)
    yield
    from runtime.db import close_pools

    close_pools()  # the runtime role's connections would keep the test database from dropping
    with django_db_blocker.unblock(), connection.cursor() as cur:
        for role in sorted(_tenant_roles(cur) - before):
            # A role still owning a schema somewhere (another database) refuses to go: fine.
            try:
                with transaction.atomic():
                    cur.execute(f'DROP OWNED BY "{role}"')
                    cur.execute(f'DROP ROLE "{role}"')
            except DatabaseError:
                pass


def make_user(email: str) -> User:
    return User.objects.create_user(email, PASSWORD)


@pytest.fixture
def alice(db) -> User:
    return make_user("alice@example.com")


@pytest.fixture
def bob(db) -> User:
    return make_user("bob@example.com")


@pytest.fixture
def charlie(db) -> User:
    return make_user("charlie@example.com")


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        _, raw = services.token_create(user=user, name="test", actor=services.Actor(user))
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def acme(alice, bob) -> Tenant:
    """Alice's tenant; Bob is a viewer on it."""
    tenant, _ = services.tenant_create(owner=alice, name="Acme", slug="acme")
    services.member_set(tenant=tenant, email=bob.email, role="viewer", actor=services.Actor(alice))
    return tenant


@pytest.fixture
def committed_tenants(transactional_db):
    """Make tenants whose schemas other connections can see (the runtime role's); they are
    deleted, schema and role, after the test."""
    made: list[Tenant] = []

    def make(owner: User, name: str, slug: str | None = None) -> tuple[Tenant, dict]:
        tenant, keys = services.tenant_create(owner=owner, name=name, slug=slug)
        made.append(tenant)
        return tenant, keys

    yield make
    for tenant in made:
        if Tenant.objects.filter(pk=tenant.pk).exists():
            services.tenant_delete(tenant=tenant, actor=services.Actor(None))
