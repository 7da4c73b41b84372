"""Structured logging: every line is one JSON object carrying the request id and the tenant.

structlog renders both our own events and the standard library's (Django, Celery, gunicorn),
so a log line looks the same whoever wrote it. Context (request_id, tenant, user, run) is
bound in contextvars by the request middleware and the task wrappers.
"""

from __future__ import annotations

import logging.config

import structlog

# Keys whose values never reach a log line, whatever a caller binds.
REDACTED_KEYS = frozenset({"password", "token", "secret", "authorization", "apikey", "key", "value"})


def redact(_logger, _name, event_dict):
    for key in list(event_dict):
        if key.lower() in REDACTED_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structured": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        renderer,
                    ],
                    "foreign_pre_chain": shared,
                }
            },
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "structured"}},
            "root": {"handlers": ["stderr"], "level": level},
            "loggers": {
                "django.server": {"level": "WARNING"},
                # httpx logs every request at INFO with its full URL, query string included:
                # a secret in a query string would reach the logs (runtime/jobs/calls.py)
                "httpx": {"level": "WARNING"},
                "httpcore": {"level": "WARNING"},
                # Django logs every 4xx as a warning with the path; the request line says it.
                "django.request": {"level": "ERROR"},
                "celery": {"level": level},
            },
        }
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
