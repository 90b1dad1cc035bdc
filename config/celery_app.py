"""Celery application: configured from Django settings (namespace CELERY), tasks autodiscovered."""

import os

from celery import Celery

# Fail closed: a deployment that forgets DJANGO_SETTINGS_MODULE gets production settings
# (which refuse to start without their secrets), never DEBUG, SQLite and eager tasks.
# manage.py alone defaults to local settings, for development.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("prudencial")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
