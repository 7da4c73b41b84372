"""Operations basics: /healthz, structured logs with request id and tenant, the production
refusal of the development secret, and login rate limits."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.conftest import PASSWORD, client_for


def test_healthz_reports_database_and_redis(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["redis"] == "ok"


def test_healthz_answers_503_when_redis_is_unreachable(client, db, monkeypatch):
    from controlplane import health

    health.redis_client.cache_clear()
    monkeypatch.setattr(django_settings, "REDIS_URL", "redis://127.0.0.1:1/0")
    try:
        response = client.get("/healthz")
    finally:
        health.redis_client.cache_clear()
    assert response.status_code == 503
    assert response.json()["redis"].startswith("error")


def test_each_request_logs_one_json_line_with_request_id_user_and_tenant(acme, alice, capsys):
    handler = logging.getLogger().handlers[0]
    stream = handler.stream
    import io

    buffer = io.StringIO()
    handler.setStream(buffer)
    # `make test` runs with LOG_LEVEL=WARNING; the request line is logged at INFO
    request_logger = logging.getLogger("plinth.request")
    level = request_logger.level
    request_logger.setLevel(logging.INFO)
    try:
        client = client_for(alice)
        response = client.get("/api/v1/tenants/acme", HTTP_X_REQUEST_ID="req-123")
    finally:
        handler.setStream(stream)
        request_logger.setLevel(level)
    assert response["X-Request-ID"] == "req-123"
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    request_lines = [line for line in lines if line.get("event") == "request"]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert line["request_id"] == "req-123" and line["tenant"] == "acme" and line["user"] == alice.pk
    assert line["status"] == 200 and line["path"] == "/api/v1/tenants/acme"
    assert "Bearer" not in buffer.getvalue() and "plt_" not in buffer.getvalue()


def test_a_garbage_request_id_is_replaced(client, db):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="x" * 500 + "\n")
    assert len(response["X-Request-ID"]) == 32


def _import_settings(**env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; from django.conf import settings; settings.INSTALLED_APPS"],
        env={**full, "DJANGO_SETTINGS_MODULE": "controlplane.settings"},
        capture_output=True,
        text=True,
    )


def test_production_mode_refuses_the_development_secret_key():
    result = _import_settings(PLINTH_ENV="production", ALLOWED_HOSTS="plinth.example")
    assert result.returncode != 0
    assert "refuses to start with the development SECRET_KEY" in result.stderr


def test_production_mode_starts_with_a_real_secret_and_hosts():
    result = _import_settings(PLINTH_ENV="production", SECRET_KEY="k" * 50, ALLOWED_HOSTS="plinth.example")
    assert result.returncode == 0, result.stderr


def test_production_mode_keeps_job_calls_off_non_public_addresses():
    def outbound(**env) -> str:
        full = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS",
                                                                  "PLINTH_OUTBOUND_PRIVATE")}
        full.update(env, DJANGO_SETTINGS_MODULE="controlplane.settings")
        return subprocess.run([sys.executable, "-c", "from django.conf import settings; print(settings.PLINTH_OUTBOUND_PRIVATE)"],
                              env=full, capture_output=True, text=True, check=True).stdout.strip()

    production = {"PLINTH_ENV": "production", "SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "plinth.example"}
    assert outbound(**production) == "False"
    assert outbound(**production, PLINTH_OUTBOUND_PRIVATE="1") == "True"
    assert outbound(PLINTH_ENV="development") == "True"


def test_production_mode_refuses_wildcard_hosts():
    result = _import_settings(PLINTH_ENV="production", SECRET_KEY="k" * 50, ALLOWED_HOSTS="*")
    assert result.returncode != 0 and "ALLOWED_HOSTS" in result.stderr


def test_login_attempts_are_rate_limited_per_address(alice, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "3/minute"})
    # counters live in Redis for a minute: a fresh address per run (198.18.0.0/15, reserved
    # for benchmarks) keeps a rerun from starting throttled
    octets = secrets.randbelow(2 * 256 * 256)
    address = f"198.{18 + octets // 65536}.{octets // 256 % 256}.{octets % 256}"
    client = APIClient(REMOTE_ADDR=address)
    codes = [
        client.post("/api/v1/auth/token", {"email": alice.email, "password": "nope-nope"}, format="json").status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    throttled = client.post("/api/v1/auth/token", {"email": alice.email, "password": PASSWORD}, format="json")
    assert throttled.status_code == 429 and throttled.json()["code"] == "throttled"
    other = APIClient(REMOTE_ADDR=address.rsplit(".", 1)[0] + f".{(octets + 1) % 256}")
    assert other.post("/api/v1/auth/token", {"email": alice.email, "password": PASSWORD}, format="json").status_code == 201


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/tenants/acme/nope/deeper"])
def test_unknown_api_paths_answer_json_404(client, db, path):
    response = client.get(path)
    assert response.status_code == 404 and response.json()["code"] == "not_found"
