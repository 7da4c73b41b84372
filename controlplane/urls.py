from django.urls import path

from controlplane.health import healthz

urlpatterns = [path("healthz", healthz, name="healthz")]
