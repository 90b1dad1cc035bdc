"""Settings come from the environment: SQLite and eager Celery by default, PostgreSQL (psycopg 3)
with DATABASE_URL, Redis with REDIS_URL; production refuses to start without them. Each case
imports the settings in a fresh interpreter, as `manage.py` would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROBE = """
import json, django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST", ""),
    "eager": settings.CELERY_TASK_ALWAYS_EAGER, "broker": settings.CELERY_BROKER_URL,
    "tz": settings.TIME_ZONE, "use_tz": settings.USE_TZ, "language": settings.LANGUAGE_CODE,
    "django": django.get_version(),
}))
"""


def settings_for(module: str, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
        and not k.startswith("DJANGO_")
    }
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": module, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def read(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_defaults_are_sqlite_and_eager_celery(tmp_path):
    found = read(settings_for("config.settings.local", PRUDENCIAL_VAR_DIR=str(tmp_path)))
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["name"] == str(tmp_path / "db.sqlite3")
    assert found["eager"] is True and found["broker"] == "memory://"
    assert (found["tz"], found["use_tz"], found["language"]) == ("America/Sao_Paulo", True, "pt-br")
    assert found["django"].startswith("5.2.")


def test_database_url_and_redis_url_switch_to_postgresql_and_redis(tmp_path):
    found = read(
        settings_for(
            "config.settings.local",
            PRUDENCIAL_VAR_DIR=str(tmp_path),
            DATABASE_URL="postgres://ccee@db.example:5432/prudencial",
            REDIS_URL="redis://127.0.0.1:6379/3",
        )
    )
    assert found["engine"] == "django.db.backends.postgresql"
    assert (found["name"], found["host"]) == ("prudencial", "db.example")
    assert found["eager"] is False and found["broker"] == "redis://127.0.0.1:6379/3"


def test_postgresql_driver_is_psycopg_3():
    import psycopg

    assert psycopg.__version__.startswith("3.")


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://ccee@db.example/prudencial"}, "REDIS_URL"),
    ],
)
def test_production_refuses_to_start_without_its_services(tmp_path, env, missing):
    result = settings_for(
        "config.settings.production",
        PRUDENCIAL_VAR_DIR=str(tmp_path),
        DJANGO_SECRET_KEY="x" * 50,
        **env,
    )
    assert result.returncode != 0
    assert f"{missing} must point at" in result.stderr


@pytest.mark.parametrize("entry", ["config.wsgi", "config.celery_app"])
def test_deployment_entry_points_fail_closed_without_a_settings_module(tmp_path, entry):
    """gunicorn and the Celery worker default to production settings: without
    DJANGO_SETTINGS_MODULE and the production secrets they refuse to start, naming what is
    missing, instead of running with DEBUG, a development key and SQLite."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
        and not k.startswith(("DJANGO_", "ENCLAVE_"))
    }
    code = f"import {entry}, django; from django.conf import settings; print(settings.DEBUG)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        env={**clean, "PRUDENCIAL_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr
