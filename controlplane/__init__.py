"""The Django project: settings, URLs, the Celery app, console and admin API views."""

from controlplane.celery import app as celery_app

__all__ = ["celery_app"]
