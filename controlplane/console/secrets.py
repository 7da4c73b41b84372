"""The console's Secrets and AI page of a tenant: which secrets are set and declared, a
form to set one (a password input: the value is never sent back to the browser), removing
one, and the AI settings with this month's token use.

Everyone who sees the tenant sees the page; changing anything needs `manage_secrets`
(developer and up), the same services and checks as the admin API.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from controlplane.api.access import actor_of
from tenants import ai, roles
from tenants import secrets as secret_service
from tenants.models import AiConfig
from tenants.selectors import tenant_for
from tenants.services import ServiceError


class SecretForm(forms.Form):
    name = forms.CharField(
        max_length=48,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "MAIL_KEY"}),
        help_text="UPPER_SNAKE_CASE, as the definition's secrets list names it.",
    )
    # render_value=False: a re-rendered form (after an error) never carries the value back
    value = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
        strip=False,
        help_text="At most 8 KB. It cannot be read back, only replaced.",
    )


class AiForm(forms.Form):
    base_url = forms.CharField(
        max_length=500,
        label="API base URL",
        widget=forms.TextInput(attrs={"placeholder": "https://api.openai.com/v1"}),
        help_text="An OpenAI-compatible API: ai steps call {base URL}/chat/completions.",
    )
    model = forms.CharField(max_length=200, label="Default model")
    key_secret = forms.CharField(
        max_length=48, label="Secret holding the API key", initial=AiConfig.DEFAULT_KEY_SECRET
    )
    monthly_token_budget = forms.IntegerField(
        min_value=0, max_value=ai.MAX_BUDGET, label="Monthly token budget", initial=AiConfig.DEFAULT_BUDGET,
        help_text="Per calendar month (UTC). 0 turns ai steps off.",
    )


def _tenant(request, slug):
    tenant = tenant_for(request.user, slug)
    if tenant is None:
        raise Http404("No such tenant.")
    return tenant


def _can_manage(request, tenant) -> bool:
    return request.user.has_perm(roles.perm(roles.SECRETS), tenant)


def _page(request, tenant, secret_form=None, ai_form=None, status=200):
    status_now = ai.ai_status(tenant)
    if ai_form is None:
        initial = {k: status_now[k] for k in ("base_url", "model", "key_secret", "monthly_token_budget")}
        ai_form = AiForm(initial={k: v for k, v in initial.items() if v is not None})
    return render(
        request,
        "console/secrets.html",
        {
            "tenant": tenant,
            "secrets": secret_service.secrets_of(tenant),
            "can_manage": _can_manage(request, tenant),
            "form": secret_form or SecretForm(),
            "ai_form": ai_form,
            "ai": status_now,
        },
        status=status,
    )


@sensitive_post_parameters("value")   # kept out of Django's error reports
@login_required
def tenant_secrets(request, slug):
    tenant = _tenant(request, slug)
    if request.method != "POST":
        return _page(request, tenant, SecretForm(initial={"name": request.GET.get("name", "")}))
    if not _can_manage(request, tenant):
        messages.error(request, "Your role does not allow changing secrets.")
        return redirect("tenant-secrets", slug=slug)
    form = SecretForm(request.POST)
    if form.is_valid():
        try:
            _, created = secret_service.secret_set(
                tenant=tenant, name=form.cleaned_data["name"], value=form.cleaned_data["value"],
                actor=actor_of(request),
            )
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            name = form.cleaned_data["name"]
            messages.success(request, f"Secret {name} {'set' if created else 'replaced'}.")
            return redirect("tenant-secrets", slug=slug)
    return _page(request, tenant, secret_form=form, status=400)


@login_required
@require_POST
def tenant_secret_delete(request, slug, name):
    tenant = _tenant(request, slug)
    if not _can_manage(request, tenant):
        messages.error(request, "Your role does not allow changing secrets.")
        return redirect("tenant-secrets", slug=slug)
    try:
        secret_service.secret_delete(tenant=tenant, name=name, actor=actor_of(request))
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Secret {name} removed.")
    return redirect("tenant-secrets", slug=slug)


@login_required
@require_POST
def tenant_ai(request, slug):
    tenant = _tenant(request, slug)
    if not _can_manage(request, tenant):
        messages.error(request, "Your role does not allow changing the AI settings.")
        return redirect("tenant-secrets", slug=slug)
    form = AiForm(request.POST)
    if form.is_valid():
        try:
            ai.ai_config_set(tenant=tenant, actor=actor_of(request), **form.cleaned_data)
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, "AI settings saved.")
            return redirect("tenant-secrets", slug=slug)
    return _page(request, tenant, ai_form=form, status=400)
