"""Settings, all from the environment, with safe defaults for development.

`PLINTH_ENV=production` turns on the production checks: the development secret key, DEBUG
and wildcard hosts are refused at start-up rather than discovered later.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool = False) -> bool:
    return env(name, "1" if default else "0").strip().lower() in ("1", "true", "yes", "on")


def envint(name: str, default: int) -> int:
    try:
        return int(env(name, str(default)))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer") from exc


def database_from_url(url: str) -> dict:
    """A Django DATABASES entry from `postgres://user:pass@host:port/name?host=/socket/dir`."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "plinth",
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        # A socket directory may come as ?host=... (as pgserver's URI does).
        "HOST": query.pop("host", None) or parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", 60),
        # No `SELECT 1` before every request (measured: 13% of a data API read's time); a
        # connection that died fails one request and is then replaced.
        "CONN_HEALTH_CHECKS": envbool("DB_CONN_HEALTH_CHECKS", False),
        "OPTIONS": {"application_name": "plinth", **query},
        # Concurrent test runs on one server need their own test databases.
        "TEST": {"NAME": env("TEST_DATABASE_NAME") or None},
    }


PLINTH_ENV = env("PLINTH_ENV", "development")
PRODUCTION = PLINTH_ENV == "production"

DEV_SECRET_KEY = "plinth-development-secret-key-do-not-use-in-production"
SECRET_KEY = env("SECRET_KEY", DEV_SECRET_KEY)
DEBUG = envbool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = [h for h in env("ALLOWED_HOSTS", "*" if not PRODUCTION else "").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

if PRODUCTION:
    if SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "PLINTH_ENV=production refuses to start with the development SECRET_KEY "
            "(or one shorter than 32 characters): set SECRET_KEY to a long random value."
        )
    if DEBUG:
        raise ImproperlyConfigured("PLINTH_ENV=production refuses to start with DEBUG on.")
    if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
        raise ImproperlyConfigured("PLINTH_ENV=production needs ALLOWED_HOSTS set to the real host names.")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

DATABASE_URL = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/plinth")
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASES = {"default": database_from_url(DATABASE_URL)}

# The role the data API and job steps connect as: it may SET ROLE to tenant roles and has
# no rights of its own (see tenants/provisioning.py). Its password is derived from
# SECRET_KEY unless a full URL is given.
PLINTH_RUNTIME_ROLE = env("PLINTH_RUNTIME_ROLE", "plinth_runtime")
RUNTIME_DATABASE_URL = env("RUNTIME_DATABASE_URL", "")
# The runtime's connections per web or worker process, and how long a request waits for one
# before it answers 503 (runtime/db.py).
RUNTIME_POOL_SIZE = envint("RUNTIME_POOL_SIZE", 10)
RUNTIME_POOL_TIMEOUT = float(env("RUNTIME_POOL_TIMEOUT", "30"))

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "controlplane",
    "guardian",
    "tenants",
    "runtime",
]

MIDDLEWARE = [
    "controlplane.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "controlplane.middleware.SessionMiddleware",  # these three skip /t/ (middleware.py)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "controlplane.middleware.AuthenticationMiddleware",
    "controlplane.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# runtime/ has no Django models; its `migrations` package migrates tenant schemas.
MIGRATION_MODULES = {"runtime": None}

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "plinth"),
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.tokens.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "controlplane.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"auth": env("AUTH_RATE_LIMIT", "20/minute")},
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Plinth admin API",
    "DESCRIPTION": "Accounts, tenants, definitions, keys, secrets, runs and audit.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", "plinth")
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The sweeper also ticks cron schedules (runtime/jobs/sweeper.py); every 2 s by default.
PLINTH_SWEEP_SECONDS = float(env("PLINTH_SWEEP_SECONDS", "2"))
# Finished runs (and their step history) are deleted this many days after they finished.
PLINTH_RUN_RETENTION_DAYS = float(env("PLINTH_RUN_RETENTION_DAYS", "30"))
# How long a worker holds a run between checkpoints before another may take it over.
PLINTH_RUN_LEASE_SECONDS = float(env("PLINTH_RUN_LEASE_SECONDS", "60"))
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "controlplane.tasks.heartbeat", "schedule": 10.0},
    "sweep": {"task": "plinth.jobs.sweep", "schedule": PLINTH_SWEEP_SECONDS, "options": {"expires": 30}},
}

# Where `make run` keeps the embedded servers' data and the demo credentials.
PLINTH_DATA_DIR = Path(env("PLINTH_DATA_DIR", str(BASE_DIR / ".plinth")))
PLINTH_PUBLIC_URL = env("PLINTH_PUBLIC_URL", f"http://127.0.0.1:{env('PORT', '8000')}")
# bench/data_api.py's baseline views under /_bench/ (unauthenticated: never in production)
PLINTH_BENCH_VIEWS = envbool("PLINTH_BENCH_VIEWS") and not PRODUCTION
# May `http` and `ai` steps call loopback, private, link-local (cloud metadata) and other
# non-public addresses? Refused in production unless set: a tenant's job must not reach the
# platform's own network. Development and tests call local servers.
PLINTH_OUTBOUND_PRIVATE = envbool("PLINTH_OUTBOUND_PRIVATE", not PRODUCTION)

LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOG_FORMAT = env("LOG_FORMAT", "json")  # json | console
LOGGING_CONFIG = None
from controlplane.logging import configure_logging  # noqa: E402

configure_logging(LOG_LEVEL, LOG_FORMAT)
