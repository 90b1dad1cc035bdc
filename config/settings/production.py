"""Production: everything from the environment, secure cookies, no development trust anchors.

`manage.py check --deploy` passes with no warning (tests/api/test_deploy_settings.py); the HTTPS
settings below are env-driven with the defaults documented in docs/api.md § Deployment.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env_bool

DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set in production (50 or more random characters)."
    )
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY must have at least 50 characters (it has {len(SECRET_KEY)}); "
        "generate one with django.core.management.utils.get_random_secret_key()."
    )
if not os.environ.get("DATABASE_URL"):
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL in production.")
if not os.environ.get("REDIS_URL"):
    # Also the cache (base.py): throttle counters shared by every worker, not one per process.
    raise ImproperlyConfigured("REDIS_URL must point at Redis in production.")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# HTTPS only: plain HTTP is redirected (W008). Turn off only where the TLS proxy redirects itself.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Behind a TLS-terminating proxy, which must set X-Forwarded-Proto and overwrite a client's own.
# Off (DJANGO_SECURE_PROXY_SSL_HEADER=0) when Django terminates TLS itself.
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "31536000"))
# Every subdomain of the platform's host is HTTPS too (W005), and the header asks browsers' preload
# lists to include the host (W021); submitting it to a list is a separate, manual step.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True

# E-mail (access links, forgotten logins) over SMTP, from the environment (docs/accounts.md).
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "10"))
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("Set one of EMAIL_USE_TLS and EMAIL_USE_SSL, not both.")

# Attestation must chain to the AWS Nitro root: refuse to start with the development PKI.
from enclave_bridge.attestation.verify import AWS_NITRO_ROOT_SHA256  # noqa: E402

ENCLAVE_ROOT_SHA256 = os.environ.get("ENCLAVE_ROOT_SHA256", AWS_NITRO_ROOT_SHA256).lower()
if ENCLAVE_ROOT_SHA256 != AWS_NITRO_ROOT_SHA256:
    raise ImproperlyConfigured(
        "ENCLAVE_ROOT_SHA256 must be the AWS Nitro root's fingerprint in production; "
        "a development trust root is not accepted."
    )
ENCLAVE_TRUST_ROOT = "aws"  # the packaged AWS root, checked against the pinned fingerprint
if not env_bool("ACCESS_ADMIN_REQUIRE_SECOND_FACTOR", True):
    raise ImproperlyConfigured(
        "The admin's second factor (TOTP) cannot be turned off in production."
    )
if env_bool("ENCLAVE_ALLOW_DEBUG", False):
    raise ImproperlyConfigured("Debug-mode enclaves (zero PCRs) are never accepted in production.")
if ENCLAVE_EXPECTED_PCRS == "measure":  # noqa: F405
    raise ImproperlyConfigured(
        "Set ENCLAVE_EXPECTED_PCRS to the PCRs of the released enclave image."
    )
# The alias Dockerfile.enclave launches the enclave with (--kms-key-id).
ENCLAVE_KMS_KEY_ID = os.environ.get("ENCLAVE_KMS_KEY_ID", "alias/prudencial-enclave")
ENCLAVE_PASS_AWS_CREDENTIALS = env_bool("ENCLAVE_PASS_AWS_CREDENTIALS", True)
