"""The files a newcomer and an operator rely on: docker-compose.yml is valid and wires the
platform's processes to real PostgreSQL 16 and Redis 7; the lock files pin every package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def test_docker_compose_config_passes():
    command = _compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine (make test installs Debian's docker-compose as root)")
    result = subprocess.run(
        [*command, "config", "-q"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "SECRET_KEY": "x" * 50},
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_web_worker_and_beat_from_one_image_against_postgres_16_and_redis_7():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in ("web", "worker", "beat"):
        assert services[name]["build"] == "."
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")
        assert env["PLINTH_ENV"] == "production"
    assert "gunicorn" in services["web"]["command"]
    assert "worker" in services["worker"]["command"] and "beat" in services["beat"]["command"]


@pytest.mark.parametrize("lock", ["requirements/base.txt", "requirements/dev.txt"])
def test_lock_files_pin_every_package_with_hashes(lock):
    text = (ROOT / lock).read_text()
    requirements = re.findall(r"^([A-Za-z0-9_.\-]+)(==[^ ]+)? \\$", text, flags=re.M)
    assert len(requirements) > 20
    assert all(version for _, version in requirements), [name for name, version in requirements if not version]
    assert text.count("--hash=sha256:") >= len(requirements)
