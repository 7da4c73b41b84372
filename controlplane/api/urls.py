from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from controlplane.api import auth, definitions, runs, secrets, tenants
from controlplane.api.misc import not_found

urlpatterns = [
    path("auth/signup", auth.SignupView.as_view(), name="api-signup"),
    path("auth/token", auth.TokenView.as_view(), name="api-token"),
    path("auth/tokens", auth.TokenListView.as_view(), name="api-tokens"),
    path("auth/tokens/<int:token_id>", auth.TokenDetailView.as_view(), name="api-token-detail"),
    path("definition-schema", definitions.DefinitionSchemaView.as_view(), name="api-definition-schema"),
    path("tenants", tenants.TenantListView.as_view(), name="api-tenants"),
    path("tenants/<slug:slug>", tenants.TenantDetailView.as_view(), name="api-tenant"),
    path("tenants/<slug:slug>/keys", tenants.KeysView.as_view(), name="api-tenant-keys"),
    path("tenants/<slug:slug>/members", tenants.MemberListView.as_view(), name="api-tenant-members"),
    path("tenants/<slug:slug>/members/<str:email>", tenants.MemberDetailView.as_view(), name="api-tenant-member"),
    path("tenants/<slug:slug>/definition", definitions.DefinitionView.as_view(), name="api-tenant-definition"),
    path("tenants/<slug:slug>/definition/versions", definitions.VersionListView.as_view(), name="api-tenant-versions"),
    path(
        "tenants/<slug:slug>/definition/versions/<int:number>",
        definitions.VersionDetailView.as_view(),
        name="api-tenant-version",
    ),
    path("tenants/<slug:slug>/audit", tenants.AuditView.as_view(), name="api-tenant-audit"),
    path("tenants/<slug:slug>/secrets", secrets.SecretListView.as_view(), name="api-tenant-secrets"),
    path("tenants/<slug:slug>/secrets/<str:name>", secrets.SecretDetailView.as_view(), name="api-tenant-secret"),
    path("tenants/<slug:slug>/ai", secrets.AiView.as_view(), name="api-tenant-ai"),
    path("tenants/<slug:slug>/runs", runs.RunListView.as_view(), name="api-tenant-runs"),
    path("tenants/<slug:slug>/runs/<str:run_id>", runs.RunDetailView.as_view(), name="api-tenant-run"),
    path("tenants/<slug:slug>/runs/<str:run_id>/retry", runs.RunRetryView.as_view(), name="api-tenant-run-retry"),
    path("tenants/<slug:slug>/runs/<str:run_id>/cancel", runs.RunCancelView.as_view(), name="api-tenant-run-cancel"),
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="api-schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema", authentication_classes=[], permission_classes=[]),
        name="api-docs",
    ),
    re_path(r"^.*$", not_found),
]
