"""Finding 11: production settings pass `check --deploy` with no warning, refuse a missing or short
secret key with ImproperlyConfigured, and share the cache (throttle counters) through Redis.
Each case runs in a fresh interpreter, as `manage.py` would."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DATABASE_URL": "postgres://ccee@db.example:5432/prudencial",
    "REDIS_URL": "redis://cache.example:6379/0",
    "DJANGO_ALLOWED_HOSTS": "prudencial.example",
    "ENCLAVE_EXPECTED_PCRS": "0=" + "a" * 96 + ",1=" + "b" * 96 + ",2=" + "c" * 96,
}
PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "cache": settings.CACHES["default"]["BACKEND"],
    "location": settings.CACHES["default"].get("LOCATION", ""),
    "proxies": settings.PRUDENCIAL_TRUSTED_PROXIES,
    "ssl_redirect": getattr(settings, "SECURE_SSL_REDIRECT", None),
    "proxy_ssl_header": getattr(settings, "SECURE_PROXY_SSL_HEADER", None),
}))
"""


def run(args: list[str], module: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
        and not k.startswith("DJANGO_")
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": module, "PRUDENCIAL_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def secret_key() -> str:
    return secrets.token_urlsafe(50)


def probe(module: str, tmp_path, **env: str) -> dict:
    result = run(["-c", PROBE], module, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_deploy(tmp_path, **env: str) -> subprocess.CompletedProcess:
    return run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        "config.settings.production",
        tmp_path,
        **{**PRODUCTION, "DJANGO_SECRET_KEY": secret_key(), **env},
    )


def test_check_deploy_on_production_settings_has_no_warnings(tmp_path):
    result = check_deploy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("env", "warning"),
    [
        ({"DJANGO_SECURE_SSL_REDIRECT": "0"}, "security.W008"),
        ({"DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "0"}, "security.W005"),
        ({"DJANGO_SECURE_HSTS_PRELOAD": "0"}, "security.W021"),
    ],
)
def test_the_https_settings_are_the_environment_s(tmp_path, env, warning):
    result = check_deploy(tmp_path, **env)
    assert result.returncode != 0 and warning in result.stderr


def test_a_missing_secret_key_is_improperly_configured_naming_it(tmp_path):
    result = run(["-c", PROBE], "config.settings.production", tmp_path, **PRODUCTION)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY must be set in production" in result.stderr
    assert "KeyError" not in result.stderr


def test_a_short_secret_key_is_refused(tmp_path):
    result = run(
        ["-c", PROBE],
        "config.settings.production",
        tmp_path,
        DJANGO_SECRET_KEY="x" * 49,
        **PRODUCTION,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must have at least 50 characters (it has 49)" in result.stderr


def test_production_shares_the_cache_through_redis(tmp_path):
    found = probe(
        "config.settings.production", tmp_path, DJANGO_SECRET_KEY=secret_key(), **PRODUCTION
    )
    assert found["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert found["location"] == PRODUCTION["REDIS_URL"]
    assert found["ssl_redirect"] is True
    assert found["proxy_ssl_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert found["proxies"] == []  # no forwarded address is believed unless configured


def test_elsewhere_the_cache_follows_redis_url(tmp_path):
    assert probe("config.settings.local", tmp_path)["cache"].endswith("LocMemCache")
    found = probe("config.settings.local", tmp_path, REDIS_URL="redis://127.0.0.1:6379/3")
    assert found["cache"].endswith("RedisCache")


def test_trusted_proxies_come_from_the_environment_and_are_checked(tmp_path):
    found = probe("config.settings.local", tmp_path, DJANGO_TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7")
    assert found["proxies"] == ["10.0.0.0/8", "192.0.2.7"]
    result = run(
        ["-c", PROBE], "config.settings.local", tmp_path, DJANGO_TRUSTED_PROXIES="10.0.0.0/33"
    )
    assert result.returncode != 0
    assert (
        "DJANGO_TRUSTED_PROXIES: '10.0.0.0/33' is not a network in CIDR notation" in result.stderr
    )
