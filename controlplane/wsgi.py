"""The platform's WSGI application (gunicorn serves it; `make run`).

Django's WSGI handler, except for data API paths (`/t/<slug>/...`), which go straight to
`runtime.api.views.serve`: no middleware chain, no URL resolver (see that module). A data
API answer then ends as Django's would, less what does not apply: connections that are
broken or past their age are closed (`close_old_connections`, what `request_finished` is
for; its other receivers close cache clients, which Django's Redis cache keeps open anyway,
and reset a URL conf, which nothing set here), and the response's headers and cookies
are sent.
"""

import os

from django.db import close_old_connections
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")


class PlinthWSGIHandler(WSGIHandler):
    def __init__(self):
        super().__init__()
        from runtime.api.views import DATA_API_PATH, serve   # once Django is set up

        self.data_api_path, self.serve = DATA_API_PATH, serve

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith("/t/"):
            return super().__call__(environ, start_response)
        request = self.request_class(environ)
        match = self.data_api_path.fullmatch(request.path_info)     # the path decoded as Django does
        if match is None:
            return super().__call__(environ, start_response)
        try:
            response = self.serve(request, *match.groups())
        finally:
            close_old_connections()
        start_response(f"{response.status_code} {response.reason_phrase}", [
            *response.items(), *(("Set-Cookie", c.OutputString()) for c in response.cookies.values())])
        return [response.content]


def _application() -> PlinthWSGIHandler:
    get_wsgi_application()      # django.setup(), as Django's own entry does
    return PlinthWSGIHandler()


application = _application()
