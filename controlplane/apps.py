from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    name = "controlplane"

    def ready(self):
        from controlplane.api import schema  # noqa: F401  registers OpenAPI extensions
