"""The platform's WSGI handler (controlplane/wsgi.py) serves data API paths without Django's
middleware and URL resolver: what those did for such a request it must still do (request
id, ALLOWED_HOSTS, security headers, HTTPS redirect), every other path must reach Django
unchanged, and its answers must be Django's path's answers."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from unittest.mock import patch

import pytest
from django.core import signals
from django.db import close_old_connections
from django.test import Client, RequestFactory, override_settings

from controlplane import wsgi
from controlplane.wsgi import application


def call(path: str, method: str = "GET", keep_connection: bool = True, **extra) -> tuple[int, dict[str, str], bytes]:
    """The WSGI application called as gunicorn calls it: (status, headers, body)."""
    environ = RequestFactory()._base_environ(PATH_INFO=path, REQUEST_METHOD=method, **extra)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    # as Django's test client does: closing "old" connections at the end of the request would
    # close the test's own, inside its transaction (Django's path: the signal; the data
    # API's: the handler's own call)
    signals.request_finished.disconnect(close_old_connections)
    try:
        with patch.object(wsgi, "close_old_connections", lambda: None) if keep_connection else nullcontext():
            chunks = application(environ, start_response)
            body = b"".join(chunks)
            getattr(chunks, "close", lambda: None)()
    finally:
        signals.request_finished.connect(close_old_connections)
    headers = {}
    for key, value in seen["headers"]:
        headers[key.lower()] = value
    return int(seen["status"].split()[0]), headers, body


def test_data_api_answers_carry_the_request_id_cors_and_security_headers(db):
    status, headers, body = call("/t/nope/rest/v1/Todo", HTTP_X_REQUEST_ID="req-123")
    assert status == 404 and json.loads(body)["message"] == "No tenant 'nope'."
    assert headers["x-request-id"] == "req-123"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["content-type"] == "application/json; charset=utf-8"
    _, other, _ = call("/t/nope/rest/v1/Todo")
    assert len(other["x-request-id"]) == 32 and other["x-request-id"] != "req-123"


@pytest.mark.parametrize("path,method,extra", [
    ("/t/nope/rest/v1/Todo", "GET", {}),
    ("/t/anything/rest/v1/Todo", "OPTIONS", {"HTTP_ORIGIN": "https://app.example"}),
    ("/t/acme/graphql/v1", "GET", {}),
    ("/t/acme/rest/v1/Todo", "GET", {"HTTP_APIKEY": "not-a-key"}),
    ("/t/acme/rest/v1/Todo", "GET", {"HTTP_AUTHORIZATION": "Basic abc"}),
    ("/t/acme/", "GET", {}),
])
def test_it_answers_what_djangos_path_answers(acme, path, method, extra):
    status, headers, body = call(path, method, HTTP_X_REQUEST_ID="same", **extra)
    django = Client().generic(method, path, HTTP_X_REQUEST_ID="same", **extra)
    assert (status, body) == (django.status_code, django.content)
    assert headers == {k.lower(): v for k, v in django.items()}


@override_settings(ALLOWED_HOSTS=["api.example.com"])
def test_a_host_not_allowed_is_refused_in_the_error_shape(db):
    status, headers, body = call("/t/nope/rest/v1/Todo", HTTP_HOST="evil.example")
    assert status == 400
    assert set(json.loads(body)) == {"code", "message", "details", "hint"}
    assert headers["access-control-allow-origin"] == "*"
    status, _, _ = call("/t/nope/rest/v1/Todo", HTTP_HOST="api.example.com")
    assert status == 404


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=3600)
def test_https_redirect_and_hsts_as_the_security_middleware_sets_them(db):
    from runtime.api import views

    # the middleware read its settings when made: make it again under these
    views._security.__init__(views._security.get_response)
    try:
        status, headers, _ = call("/t/nope/rest/v1/Todo")
        assert status == 301 and headers["location"] == "https://testserver/t/nope/rest/v1/Todo"
        status, headers, _ = call("/t/nope/rest/v1/Todo", **{"wsgi.url_scheme": "https"})
        assert status == 404 and headers["strict-transport-security"] == "max-age=3600"
    finally:
        with override_settings(SECURE_SSL_REDIRECT=False, SECURE_HSTS_SECONDS=0):
            views._security.__init__(views._security.get_response)


def test_other_paths_reach_django(db):
    status, headers, _ = call("/t/acme")            # no trailing slash: Django's APPEND_SLASH
    assert status == 301 and headers["location"] == "/t/acme/"
    status, _, _ = call("/login")
    assert status == 200


def test_connections_past_their_age_are_closed_after_a_data_api_request(transactional_db):
    from django.db import connection

    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1       # CONN_MAX_AGE is over
    status, _, _ = call("/t/nope/rest/v1/Todo", keep_connection=False)
    assert status == 404
    assert connection.connection is None
