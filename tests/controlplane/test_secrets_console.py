"""The console's Secrets and AI page: set and remove secrets through a password input,
save the AI settings; viewers only look, strangers get 404; a value never comes back in a
page, even one re-rendered after an error."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants import ai as tenant_ai
from tenants.definitions import definition_push
from tenants.secrets import secrets_for
from tenants.services import Actor

VALUE = "whsec_console_Qm3Vb8"
PAGE = "/tenants/acme/secrets"


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_tenant_page_links_to_the_secrets_page(acme, alice):
    assert f'href="{PAGE}"' in browser(alice).get("/tenants/acme/").content.decode()


def test_the_page_lists_declared_and_set_secrets_with_a_password_input(acme, alice):
    definition_push(tenant=acme, source="version: 1\nsecrets: [MAIL_KEY]\n", actor=Actor(alice))
    page = browser(alice).get(PAGE).content.decode()
    assert 'data-secret="MAIL_KEY"' in page and "not set" in page
    assert 'type="password"' in page and 'name="value"' in page


def test_setting_and_removing_a_secret(acme, alice):
    client = browser(alice)
    response = client.post(PAGE, {"name": "MAIL_KEY", "value": VALUE}, follow=True)
    page = response.content.decode()
    assert response.status_code == 200 and "Secret MAIL_KEY set." in page
    assert VALUE not in page and secrets_for(acme.id) == {"MAIL_KEY": VALUE}
    response = client.post(f"{PAGE}/MAIL_KEY/delete", follow=True)
    assert "Secret MAIL_KEY removed." in response.content.decode()
    assert secrets_for(acme.id) == {}


def test_an_invalid_name_is_shown_and_the_value_not_sent_back(acme, alice):
    response = browser(alice).post(PAGE, {"name": "lower_case", "value": VALUE})
    page = response.content.decode()
    assert response.status_code == 400 and "UPPER_SNAKE_CASE" in page
    assert VALUE not in page and secrets_for(acme.id) == {}


def test_saving_the_ai_settings_shows_this_months_usage(acme, alice):
    client = browser(alice)
    response = client.post("/tenants/acme/ai", {"base_url": "https://api.example/v1", "model": "m",
                                                 "key_secret": "AI_API_KEY", "monthly_token_budget": 500}, follow=True)
    assert "AI settings saved." in response.content.decode()
    tenant_ai.record_usage(acme.id, 120)
    page = client.get(PAGE).content.decode()
    assert 'id="ai-tokens-used">120<' in page and "is not set" in page


def test_invalid_ai_settings_are_shown_next_to_the_field(acme, alice):
    response = browser(alice).post("/tenants/acme/ai", {"base_url": "ftp://x", "model": "m",
                                                        "key_secret": "AI_API_KEY", "monthly_token_budget": 5})
    assert response.status_code == 400 and "base_url must be an http(s) URL" in response.content.decode()
    assert tenant_ai.ai_config_of(acme.id) is None


def test_a_viewer_sees_the_page_but_changes_nothing(acme, alice, bob):
    browser(alice).post(PAGE, {"name": "MAIL_KEY", "value": VALUE})
    client = browser(bob)
    page = client.get(PAGE).content.decode()
    assert 'data-secret="MAIL_KEY"' in page and 'type="password"' not in page
    response = client.post(PAGE, {"name": "MAIL_KEY", "value": "from-bob"}, follow=True)
    assert "does not allow" in response.content.decode()
    client.post(f"{PAGE}/MAIL_KEY/delete")
    client.post("/tenants/acme/ai", {"base_url": "https://x.example", "model": "m", "key_secret": "AI_API_KEY",
                                     "monthly_token_budget": 1})
    assert secrets_for(acme.id) == {"MAIL_KEY": VALUE} and tenant_ai.ai_config_of(acme.id) is None


@pytest.mark.parametrize("method,path", [("get", PAGE), ("post", PAGE), ("post", f"{PAGE}/MAIL_KEY/delete"),
                                         ("post", "/tenants/acme/ai")])
def test_a_stranger_gets_404(acme, charlie, method, path):
    assert getattr(browser(charlie), method)(path).status_code == 404
