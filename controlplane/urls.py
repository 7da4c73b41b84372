from django.conf import settings
from django.contrib.auth.views import LogoutView
from django.urls import include, path

from controlplane.console import runs as console_runs
from controlplane.console import secrets as console_secrets
from controlplane.console import views as console
from controlplane.health import healthz
from runtime.api.views import data_api

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("controlplane.api.urls")),
    path("t/<slug:slug>/", data_api, name="data-api-root"),
    path("t/<slug:slug>/<path:rest>", data_api, name="data-api"),
    path("", console.dashboard, name="dashboard"),
    path("signup", console.signup, name="signup"),
    path("login", console.ConsoleLoginView.as_view(), name="login"),
    path("logout", LogoutView.as_view(), name="logout"),
    path("tenants/<slug:slug>/", console.tenant_detail, name="tenant"),
    path("tenants/<slug:slug>/delete", console.tenant_delete, name="tenant-delete"),
    path("tenants/<slug:slug>/keys", console.tenant_rotate_key, name="tenant-rotate-key"),
    path("tenants/<slug:slug>/definition", console.tenant_definition, name="tenant-definition"),
    path("tenants/<slug:slug>/versions", console.tenant_versions, name="tenant-versions"),
    path("tenants/<slug:slug>/versions/<int:number>", console.tenant_version, name="tenant-version"),
    path("tenants/<slug:slug>/audit", console.tenant_audit, name="tenant-audit"),
    path("tenants/<slug:slug>/secrets", console_secrets.tenant_secrets, name="tenant-secrets"),
    path(
        "tenants/<slug:slug>/secrets/<str:name>/delete",
        console_secrets.tenant_secret_delete,
        name="tenant-secret-delete",
    ),
    path("tenants/<slug:slug>/ai", console_secrets.tenant_ai, name="tenant-ai"),
    path("tenants/<slug:slug>/runs", console_runs.tenant_runs, name="tenant-runs"),
    path("tenants/<slug:slug>/runs/<str:run_id>", console_runs.tenant_run, name="tenant-run"),
    path("tenants/<slug:slug>/runs/<str:run_id>/live", console_runs.tenant_run_live, name="tenant-run-live"),
    path("tenants/<slug:slug>/runs/<str:run_id>/retry", console_runs.tenant_run_retry, name="tenant-run-retry"),
    path("tenants/<slug:slug>/runs/<str:run_id>/cancel", console_runs.tenant_run_cancel, name="tenant-run-cancel"),
    path("tokens", console.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke", console.token_revoke, name="token-revoke"),
]

if settings.PLINTH_BENCH_VIEWS:  # bench/data_api.py only
    urlpatterns.append(path("_bench/", include("bench.baselines.urls")))

handler500 = "controlplane.api.misc.server_error"
