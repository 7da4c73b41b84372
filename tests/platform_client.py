"""`PlatformClient`: Django's test client, serving data API paths (`/t/<slug>/...`) as the
platform's WSGI handler does (controlplane/wsgi.py: `runtime.api.views.serve`, without
Django's middleware and URL resolver). The data API helpers use it, so their tests run
the path production runs; tests using Django's plain `Client` run the view through
Django's own path, which must answer the same."""

from __future__ import annotations

from django.test import Client
from django.test.client import ClientHandler

from runtime.api.views import DATA_API_PATH, serve


class PlatformClientHandler(ClientHandler):
    def get_response(self, request):
        match = DATA_API_PATH.fullmatch(request.path_info)
        if match is None:
            return super().get_response(request)
        response = serve(request, *match.groups())
        response._resource_closers.append(request.close)
        return response


class PlatformClient(Client):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handler = PlatformClientHandler(self.handler.enforce_csrf_checks)
