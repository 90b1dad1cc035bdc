"""WSGI entry point (gunicorn config.wsgi). Defaults to production settings: see below."""

import os

from django.core.wsgi import get_wsgi_application

# Fail closed: a deployment that forgets DJANGO_SETTINGS_MODULE gets production settings
# (which refuse to start without their secrets), never DEBUG, SQLite and eager tasks.
# manage.py alone defaults to local settings, for development.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()
