"""The web console, driven end to end in a real Chromium, the way a person uses it.

Unit tests call the views with Django's client; these click through the rendered pages of
a live server, so they also catch what only a browser sees: a form that posts to the wrong
place, an error that is not shown next to its field, a secret that is shown twice, a
redirect loop. Along the way they check the effects behind the pages: a tenant made in the
console gets a live schema, role and keys, and deleting it drops them; a revoked token
stops working on the admin API at once.

Screenshots of the main pages go to /tmp/plinth-screens/ for a human to look at.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.db import connection, connections

from tenants import services
from tenants.keys import key_is_live
from tenants.models import Tenant
from tenants.provisioning import role_exists, schema_exists
from tenants.tokens import token_lookup

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENS = Path("/tmp/plinth-screens")
PASSWORD = "a-long-enough-passphrase-17"

if not Path(CHROMIUM).exists():
    pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.browser


# fixtures -------------------------------------------------------------------------------


@pytest.fixture
def tenants_deleted_afterwards(transactional_db):
    """Tenants made through the console are committed, with real schemas and roles (the
    live server runs in its own thread and connection); delete whatever a test leaves."""
    yield
    for tenant in Tenant.objects.all():
        services.tenant_delete(tenant=tenant, actor=services.Actor(None))


@pytest.fixture
def page(tenants_deleted_afterwards, live_server) -> Page:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1200, "height": 900})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


# helpers --------------------------------------------------------------------------------


def orm(function, *args, **kwargs):
    """Call `function` (anything touching the database) in a thread of its own.

    Playwright's sync API keeps an event loop in the test's thread, so Django refuses ORM
    calls there (SynchronousOnlyOperation), and connections opened there under
    DJANGO_ALLOW_ASYNC_UNSAFE land in a context the fixtures never close. A short thread
    with its own connection, closed on the way out, has neither problem.
    """

    def call():
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def sign_up(page: Page, email: str) -> None:
    page.goto("/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/$"))


def screenshot(page: Page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


def schema_and_role_exist(tenant_id: str) -> tuple[bool, bool]:
    with connection.cursor() as cur:
        return schema_exists(cur, tenant_id), role_exists(cur, tenant_id)


def admin_api_status(base_url: str, token: str) -> int:
    response = httpx.get(f"{base_url}/api/v1/tenants", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return response.status_code


# the tenant's life ----------------------------------------------------------------------


def test_a_newcomer_signs_up_creates_a_tenant_sees_its_keys_and_deletes_it(page, live_server):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    page.get_by_role("link", name="Create an account").click()
    expect(page).to_have_url(re.compile(r"/signup$"))

    # A weak password is refused, with the reasons tied to the password field.
    page.get_by_label("Email").fill("Newcomer@Example.com")
    page.get_by_label("Password").fill("qwerty")
    page.get_by_role("button", name="Sign up").click()
    password = page.get_by_label("Password")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_accessible_description(re.compile("too short.*too common"))
    expect(page.locator("#id_password + ul.errorlist")).to_contain_text("This password is too common.")
    expect(page.get_by_label("Email")).to_have_value("Newcomer@Example.com")  # kept as typed
    screenshot(page, "signup-weak-password")

    password.fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("header")).to_contain_text("newcomer@example.com")
    expect(page.locator("#no-tenants")).to_contain_text("No tenants yet")

    # A slug that is not one is refused next to the slug field, and nothing is made.
    page.get_by_label("Name").fill("Acme Analytics")
    page.get_by_label("Slug").fill("Not a slug!")
    page.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_label("Slug")).to_have_accessible_description(re.compile("lowercase letters, digits and hyphens"))
    screenshot(page, "dashboard-invalid-slug")
    assert not orm(Tenant.objects.exists)

    # With the slug left empty, it is made from the name.
    page.get_by_label("Slug").fill("")
    page.get_by_role("button", name="Create tenant").click()
    expect(page).to_have_url(re.compile(r"/tenants/acme-analytics/$"))
    expect(page.get_by_role("status")).to_have_text("Tenant 'Acme Analytics' is ready.")
    expect(page.locator("#data-api-url")).to_have_text(f"{live_server.url}/t/acme-analytics")

    tenant = orm(Tenant.objects.get, slug="acme-analytics")
    anon = page.locator("#new-keys .secret[data-kind=anon]").inner_text()
    service = page.locator("#new-keys .secret[data-kind=service]").inner_text()
    assert anon != service
    assert orm(key_is_live, tenant, anon) and orm(key_is_live, tenant, service)
    assert orm(schema_and_role_exist, tenant.id) == (True, True)
    screenshot(page, "tenant")

    # The keys are shown once: a reload no longer has them.
    page.reload()
    expect(page.locator("#new-keys")).to_have_count(0)
    assert anon not in page.content()

    page.get_by_role("navigation").get_by_role("link", name="Tenants").click()
    row = page.locator("#tenants tr[data-slug=acme-analytics]")
    expect(row).to_contain_text("Acme Analytics")
    expect(row).to_contain_text("owner")
    expect(row).to_contain_text("active")
    screenshot(page, "dashboard")

    # Deleting takes the slug typed out; anything else changes nothing.
    row.get_by_role("link", name="Acme Analytics").click()
    expect(page).to_have_url(re.compile(r"/tenants/acme-analytics/$"))
    page.get_by_label("to confirm").fill("acme")
    page.get_by_role("button", name="Delete tenant").click()
    expect(page.get_by_role("status")).to_have_text("Type 'acme-analytics' to confirm deletion.")
    screenshot(page, "tenant-delete-unconfirmed")
    expect(page).to_have_url(re.compile(r"/tenants/acme-analytics/$"))
    assert orm(Tenant.objects.filter(pk=tenant.pk).exists)

    page.get_by_label("to confirm").fill("acme-analytics")
    page.get_by_role("button", name="Delete tenant").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("status")).to_have_text("Tenant 'acme-analytics' and all its data were deleted.")
    expect(page.locator("#no-tenants")).to_be_visible()
    expect(page.locator("#tenants")).to_have_count(0)
    assert not orm(Tenant.objects.filter(pk=tenant.pk).exists)
    assert orm(schema_and_role_exist, tenant.id) == (False, False)


# accounts and tokens --------------------------------------------------------------------


def test_a_person_logs_out_and_back_in_and_a_token_they_revoke_stops_working(page, live_server):
    sign_up(page, "returning@example.com")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/tokens")
    expect(page).to_have_url(re.compile(r"/login\?next=/tokens$"))

    page.get_by_label("Email").fill("returning@example.com")
    page.get_by_label("Password").fill("not-my-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".errorlist")).to_contain_text("Please enter a correct email and password")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/tokens$"))
    expect(page.locator("header")).to_contain_text("returning@example.com")
    expect(page.get_by_role("cell", name="No tokens yet.")).to_be_visible()

    # A new token is shown once, and works on the admin API.
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    raw = page.locator("#new-token .secret").inner_text()
    assert raw.startswith("plt_")
    row = page.get_by_role("row").filter(has_text="laptop")
    expect(row).to_contain_text(raw[:8])
    screenshot(page, "tokens")
    assert admin_api_status(live_server.url, raw) == 200

    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)
    assert raw not in page.content()

    # Revoked, it is refused at once.
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("Token revoked.")
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    assert admin_api_status(live_server.url, raw) == 401
    assert orm(token_lookup, raw) is None

