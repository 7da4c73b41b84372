"""/healthz: is the database reachable, is Redis reachable, when did a worker last run a
beat tick. Answers 200 when the first two hold, 503 otherwise, always JSON."""

from __future__ import annotations

import time
from functools import lru_cache

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

HEARTBEAT_KEY = "plinth:heartbeat"


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def _check_database() -> str:
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure is the answer, not a 500
        return f"error: {type(exc).__name__}"


def _check_redis() -> tuple[str, float | None]:
    try:
        client = redis_client()
        client.ping()
        beat = client.get(HEARTBEAT_KEY)
        return "ok", (round(time.time() - float(beat), 1) if beat else None)
    except Exception as exc:
        return f"error: {type(exc).__name__}", None


def healthz(request):
    database = _check_database()
    redis_state, heartbeat_age = _check_redis()
    healthy = database == "ok" and redis_state == "ok"
    body = {
        "status": "ok" if healthy else "unavailable",
        "database": database,
        "redis": redis_state,
        # informational: seconds since a worker last ran beat's heartbeat (null: never seen)
        "worker_heartbeat_age_s": heartbeat_age,
    }
    return JsonResponse(body, status=200 if healthy else 503)
