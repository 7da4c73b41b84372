"""A worker remembers what it looked up about a tenant and a key, and each request's first
statement checks it (`plinth_api.tenant_guard`): a push, a key rotation or revocation, a new
signing secret or a suspension counts from the very next request, on every path (a read, a
write, an rpc, a request that never reaches the database), and a request planned on outdated
facts changes nothing."""

from __future__ import annotations

import psycopg
import pytest

from runtime.api import context as api_context
from runtime.db import TenantChanged, check_guard, tenant_transaction
from tenants import services
from tenants.crypto import sha256_hex
from tenants.models import Tenant

from api_tenants import SERVICE, example

pytestmark = pytest.mark.django_db(transaction=True)

NOTES = example("todo") + """\
  Note:
    fields:
      text: {type: string}
    access:
      read: "true"
"""


def remembered(api, key: str) -> api_context.Remembered | None:
    """What this process remembers for the tenant and a key."""
    return api_context._remembered.get((api.slug, sha256_hex(key)))


def test_a_second_request_does_not_look_the_tenant_up(api_tenant, django_assert_num_queries):
    api = api_tenant("todo")
    assert api.get("Todo", as_=SERVICE).status_code == 200
    assert remembered(api, api.keys["service"])
    # the lookup goes through Django's connection (recorded here); remembered facts do not
    with django_assert_num_queries(0):
        assert api.get("Todo", as_=SERVICE).status_code == 200


def test_a_push_is_served_from_the_next_request(api_tenant):
    api = api_tenant("todo")
    assert api.get("Note", as_=SERVICE).status_code == 404
    assert api.get("Todo", as_=SERVICE).status_code == 200
    api.push(NOTES)
    # planned on the remembered version, the request would answer 404 (no such entity)
    response = api.get("Note", as_=SERVICE)
    assert response.status_code == 200, response.content
    assert response.json() == []


def test_a_suspended_tenant_is_refused_from_the_next_request_and_nothing_is_written(api_tenant):
    api = api_tenant("todo")
    ann = api.user("ann@example.com", role="member")
    assert api.post("Todo", {"title": "first"}, as_=ann).status_code == 201
    assert api.get("Todo", as_=ann).status_code == 200
    suspend = dict(tenant=api.tenant, actor=services.Actor(api.owner), status=Tenant.Status.SUSPENDED)
    services.tenant_update(**suspend)
    # the first request after the change is a write: planned on the remembered facts, it is
    # stopped by its transaction's first message
    response = api.post("Todo", {"title": "second"}, as_=ann)
    assert response.status_code == 503, response.content
    assert api.get("Todo", as_=ann).status_code == 503
    services.tenant_update(**{**suspend, "status": Tenant.Status.ACTIVE})
    assert api.get("Todo", as_=ann).status_code == 200
    services.tenant_update(**suspend)
    response = api.post("/t/{}/rest/v1/rpc/Todo.nothing".format(api.slug), {"id": "x"}, as_=ann)
    assert response.status_code == 503, response.content
    assert [row["title"] for row in api.rows("Todo")] == ["first"]
    services.tenant_update(tenant=api.tenant, actor=services.Actor(api.owner), status=Tenant.Status.ACTIVE)
    assert api.get("Todo", as_=ann).status_code == 200


def test_a_rotated_key_is_refused_from_the_next_request_on_every_route(api_tenant):
    api = api_tenant("todo")
    old = api.keys["anon"]
    for path in ("Todo", "/t/{slug}/rest/v1/"):
        assert api.get(path.format(slug=api.slug), as_={"apikey": old}).status_code == 200
    new = services.key_rotate(tenant=api.tenant, kind="anon", actor=services.Actor(api.owner))
    # a read (checked by its statement), the OpenAPI document (no statement: checked alone),
    # an unknown entity (an error before any statement) and an rpc
    for path in ("Todo", "/t/{slug}/rest/v1/", "Nothing"):
        response = api.get(path.format(slug=api.slug), as_={"apikey": old})
        assert response.status_code == 401, (path, response.content)
    assert api.post(f"/t/{api.slug}/rest/v1/rpc/nothing", {}, as_={"apikey": old}).status_code == 401
    assert api.get("Todo", as_={"apikey": new}).status_code == 200


def test_a_new_signing_secret_counts_at_once_both_ways(api_tenant):
    api = api_tenant("todo")
    ann = api.user("ann@example.com", role="member")
    assert api.get("Todo", as_=ann).status_code == 200
    services.auth_secret_rotate(tenant=api.tenant, actor=services.Actor(api.owner))
    fresh = api_context.resolve_tenant(api.slug)
    token, _ = api_context.issue_access_token(fresh, user_id=ann.id, email=ann.email, role="member")
    headers = {"apikey": api.keys["anon"], "Authorization": f"Bearer {token}"}
    # the new token would fail against the remembered secret: it is checked, and accepted
    assert api.get("Todo", as_=headers).status_code == 200
    # and the old one is refused
    assert api.get("Todo", as_=ann).status_code == 401


def test_the_guard_refuses_every_outdated_fact(api_tenant):
    api = api_tenant("todo")
    assert api.get("Todo").status_code == 200
    key_hash = sha256_hex(api.keys["anon"])
    good = remembered(api, api.keys["anon"]).guard
    slug, _, tenant_id, live, kind, _secret = good
    assert (slug, tenant_id, live, kind) == (api.slug, api.tenant.id, 1, "anon")
    check_guard(good)
    wrong = [
        ("other-slug", *good[1:]),
        (slug, "0" * 64, *good[2:]),
        (slug, key_hash, "aaaaaaaaaaaa", *good[3:]),
        (*good[:3], live + 1, *good[4:]),
        (*good[:4], "service", good[5]),
        (*good[:5], b"not the secret"),
    ]
    for guard in wrong:
        with pytest.raises(TenantChanged):
            check_guard(guard)


def test_tenant_roles_cannot_call_or_see_the_guard(api_tenant):
    api = api_tenant("todo")
    for statement in ("SELECT plinth_api.tenant_guard('a', 'b', 'c', 1, 'anon', ''::bytea)",
                      "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                      " WHERE n.nspname = 'plinth_api' AND has_function_privilege(p.oid, 'EXECUTE')"):
        try:
            with tenant_transaction(api.tenant.id) as conn:
                found = conn.execute(statement).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            continue
        assert found == (0,), statement


def test_remembered_reads_run_their_guard_and_statement_prepared(api_tenant):
    from runtime import db

    api = api_tenant("todo")
    for _ in range(4):
        assert api.get("Todo?select=id,title&done=is.false").status_code == 200
    reads = [text for text in db._positional if '"Todo"' in text and "done" in text]
    # none fell back to server-side binding (as a guard refused under the tenant's role did)
    assert reads and all(db._positional[text] is not None for text in reads)


def test_a_deleted_tenant_answers_as_a_fresh_lookup_would_not_500(api_tenant):
    from runtime.api import backends

    api = api_tenant("todo")
    assert api.get("Todo", as_=SERVICE).status_code == 200
    backends._cache.clear()         # its compiled backend evicted (an LRU of 256 per worker)
    services.tenant_delete(tenant=api.tenant, actor=services.Actor(api.owner))
    for path in ("Todo", f"/t/{api.slug}/rest/v1/"):
        for _ in range(2):
            response = api.get(path, as_=SERVICE)
            assert response.status_code == 404, (path, response.content)


@pytest.fixture
def busy_pool(settings):
    """A runtime pool of one connection that gives up waiting after 0.3 s; `hold()` takes it."""
    from contextlib import contextmanager

    from runtime import db

    settings.RUNTIME_POOL_SIZE = 1
    settings.RUNTIME_POOL_TIMEOUT = 0.3
    db.close_pools()

    @contextmanager
    def hold():
        with db.runtime_pool().connection():
            yield

    yield hold
    db.close_pools()


def test_with_the_pool_busy_outdated_facts_are_never_answered_on(api_tenant, busy_pool):
    api = api_tenant("todo")
    old = {"apikey": api.keys["anon"]}
    assert api.get("Todo", as_=old).status_code == 200
    new = {"apikey": services.key_rotate(tenant=api.tenant, kind="anon", actor=services.Actor(api.owner))}
    with busy_pool():
        # the read gets no connection, so its guard never ran: the old key is refused on a
        # fresh lookup, not answered "busy" on facts nobody checked
        response = api.get("Todo", as_=old)
        assert response.status_code == 401, response.content
    openapi = f"/t/{api.slug}/rest/v1/"
    assert api.get(openapi, as_=new).status_code == 200
    with busy_pool():
        # no statement, and no connection to check the facts with: answered on a fresh lookup
        assert api.get(openapi, as_=new).status_code == 200
        response = api.get("Todo", as_=new)
        assert response.status_code == 503 and response.json()["code"] == "PGRST003", response.content


BUSY = """
version: 1
auth: {roles: [member]}
entities:
  Item:
    fields: {name: {type: string}}
    access: {read: "true", create: "true"}
actions:
  add_item:
    input: {name: {type: string, required: true}}
    access: "true"
    steps:
      - create: Item
        set: {name: input.name}
"""


def test_a_busy_pool_is_a_503_with_retry_after_on_every_route_that_writes(api_tenant, busy_pool):
    api = api_tenant(source=BUSY)
    user = api.user("busy@example.com")
    writes = [("POST", "Item", {"name": "a"}), ("POST", "rpc/add_item", {"name": "b"})]
    delete_user = ("DELETE", f"/t/{api.slug}/auth/v1/admin/users/{user.id}", None)
    sign_in = ("POST", f"/t/{api.slug}/auth/v1/token?grant_type=password", {"email": user.email, "password": "x" * 12})
    for method, path, body in writes:     # with a free pool they work (and the facts are remembered)
        assert api.request(method, path, as_=SERVICE, body=body).status_code in (200, 201, 204), path
    with busy_pool():
        for method, path, body in writes + [delete_user, sign_in]:
            response = api.request(method, path, as_=SERVICE, body=body)
            assert response.status_code == 503, (path, response.status_code, response.content)
            assert response.headers["Retry-After"] == "1", path
    assert api.sql('SELECT name FROM "Item" ORDER BY name') == [("a",), ("b",)]
    assert api.request(*delete_user[:2], as_=SERVICE).status_code == 200
