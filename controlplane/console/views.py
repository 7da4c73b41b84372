"""The web console: server-rendered pages that call the same services as the admin API."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from controlplane.api.access import actor_of
from controlplane.console.forms import DefinitionForm, LoginForm, SignupForm, TenantForm, TokenForm
from controlplane.console.source_lines import line_of, pointer_lines
from tenants.definitions import definition_push, live_version, version_diff
from tenants import roles, services
from tenants.selectors import members_of, role_of, tenant_for, tenants_visible_to

# Keys and tokens are shown once: the creating view stashes them in the session and the
# next page pops them.
_SHOW_ONCE = "plinth_show_once"


def signup(request):
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup(
                email=form.cleaned_data["email"], password=form.cleaned_data["password"], actor_ip=actor_of(request).ip
            )
        except services.ServiceError as exc:
            form.add_error(exc.field, exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("dashboard")
    return render(request, "console/signup.html", {"form": form})


class ConsoleLoginView(LoginView):
    template_name = "console/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


@login_required
def dashboard(request):
    form = TenantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant, keys = services.tenant_create(
                owner=request.user,
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"] or None,
                actor=actor_of(request),
            )
        except services.ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            request.session[_SHOW_ONCE] = {"keys": keys}
            messages.success(request, f"Tenant '{tenant.name}' is ready.")
            return redirect("tenant", slug=tenant.slug)
    tenants = [(t, role_of(request.user, t)) for t in tenants_visible_to(request.user)]
    return render(request, "console/dashboard.html", {"tenants": tenants, "form": form})


def _tenant(request, slug):
    tenant = tenant_for(request.user, slug)
    if tenant is None:
        raise Http404("No such tenant.")
    return tenant


@login_required
def tenant_detail(request, slug):
    tenant = _tenant(request, slug)
    shown = request.session.pop(_SHOW_ONCE, None) or {}
    return render(
        request,
        "console/tenant.html",
        {
            "tenant": tenant,
            "role": role_of(request.user, tenant),
            "members": members_of(tenant),
            "keys": shown.get("keys"),
            "data_api_url": request.build_absolute_uri(f"/t/{tenant.slug}"),
            "can_delete": request.user.has_perm(roles.perm(roles.DELETE), tenant),
            "can_rotate": request.user.has_perm(roles.perm(roles.KEYS), tenant),
            "audit": tenant.audit_events.all()[:20],
        },
    )


@login_required
@require_POST
def tenant_delete(request, slug):
    tenant = _tenant(request, slug)
    if not request.user.has_perm(roles.perm(roles.DELETE), tenant):
        messages.error(request, "Only an owner can delete this tenant.")
        return redirect("tenant", slug=slug)
    if request.POST.get("confirm", "").strip() != tenant.slug:
        messages.error(request, f"Type '{tenant.slug}' to confirm deletion.")
        return redirect("tenant", slug=slug)
    services.tenant_delete(tenant=tenant, actor=actor_of(request))
    messages.success(request, f"Tenant '{tenant.slug}' and all its data were deleted.")
    return redirect("dashboard")


@login_required
@require_POST
def tenant_rotate_key(request, slug):
    tenant = _tenant(request, slug)
    if not request.user.has_perm(roles.perm(roles.KEYS), tenant):
        messages.error(request, "Your role does not allow rotating keys.")
        return redirect("tenant", slug=slug)
    kind = request.POST.get("kind", "")
    try:
        raw = services.key_rotate(tenant=tenant, kind=kind, actor=actor_of(request))
    except services.ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("tenant", slug=slug)
    request.session[_SHOW_ONCE] = {"keys": {kind: raw}}
    messages.success(request, f"The {kind} key was rotated; the old one no longer works.")
    return redirect("tenant", slug=slug)


@login_required
def tokens(request):
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _, raw = services.token_create(user=request.user, name=form.cleaned_data["name"], actor=actor_of(request))
        request.session[_SHOW_ONCE] = {"token": raw}
        return redirect("tokens")
    shown = request.session.pop(_SHOW_ONCE, None) or {}
    return render(
        request,
        "console/tokens.html",
        {"form": form, "tokens": request.user.tokens.all(), "new_token": shown.get("token")},
    )


@login_required
@require_POST
def token_revoke(request, token_id):
    try:
        services.token_revoke(user=request.user, token_id=token_id, actor=actor_of(request))
        messages.success(request, "Token revoked.")
    except services.ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("tokens")


@login_required
def tenant_definition(request, slug):
    """Paste or upload a definition; see every error next to its path and line, or the
    plan; apply it."""
    tenant = _tenant(request, slug)
    can_push = request.user.has_perm(roles.perm(roles.PUSH), tenant)
    live = live_version(tenant)
    form = DefinitionForm(request.POST or None, request.FILES or None, initial={"source": live.source if live else ""})
    result = None
    if request.method == "POST" and form.is_valid():
        if not can_push:
            messages.error(request, "Your role does not allow pushing definitions.")
            return redirect("tenant-definition", slug=slug)
        source = form.source_text()
        result = definition_push(
            tenant=tenant,
            source=source,
            content_type=None,
            dry_run=request.POST.get("action") != "apply",
            allow_destructive=form.cleaned_data["allow_destructive"],
            actor=actor_of(request),
        )
        if result.status == "applied":
            messages.success(request, f"Version {result.version} is live.")
            return redirect("tenant-version", slug=slug, number=result.version)
        lines = pointer_lines(source)
        for error in result.errors:
            error["line"] = line_of(lines, error["path"])
        form = DefinitionForm(initial={"source": source, "allow_destructive": form.cleaned_data["allow_destructive"]})
    return render(
        request,
        "console/definition.html",
        {"tenant": tenant, "form": form, "result": result, "live": live, "can_push": can_push},
    )


@login_required
def tenant_versions(request, slug):
    tenant = _tenant(request, slug)
    return render(request, "console/versions.html", {"tenant": tenant, "versions": tenant.versions.all()})


@login_required
def tenant_version(request, slug, number):
    tenant = _tenant(request, slug)
    version = tenant.versions.filter(number=number).first()
    if version is None:
        raise Http404("No such version.")
    compare_to = request.GET.get("from") or (number - 1 if number > 1 else None)
    diff = None
    if compare_to:
        try:
            diff = version_diff(tenant, int(compare_to), number)
        except (KeyError, ValueError):
            messages.error(request, f"No version {compare_to} to compare with.")
    return render(
        request,
        "console/version.html",
        {"tenant": tenant, "version": version, "diff": diff, "compare_to": compare_to,
         "others": tenant.versions.exclude(number=number).values_list("number", flat=True)},
    )


@login_required
def tenant_audit(request, slug):
    """Both audit trails: platform events (pushes, keys, members) and every data write."""
    from runtime.audit import data_audit

    tenant = _tenant(request, slug)
    entity = request.GET.get("entity") or None
    return render(
        request,
        "console/audit.html",
        {"tenant": tenant, "events": tenant.audit_events.all()[:100], "writes": data_audit(tenant.id, limit=100, entity=entity),
         "entity": entity},
    )
