from django.conf import settings
from django.contrib.auth.views import LogoutView
from django.urls import include, path

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
    path("tokens", console.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke", console.token_revoke, name="token-revoke"),
]

if settings.PLINTH_BENCH_VIEWS:  # bench/data_api.py only
    urlpatterns.append(path("_bench/", include("bench.baselines.urls")))

handler500 = "controlplane.api.misc.server_error"
