"""The Celery app. Messages are only wake-ups: Postgres holds the truth about work
(DESIGN.md, Jobs and workflows), so workers ack late and take one message at a time."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["controlplane", "tenants", "runtime", "runtime.jobs"])


@setup_logging.connect
def _keep_our_logging(**_kwargs):
    """Our settings module configured structured logging; stop Celery replacing it."""
