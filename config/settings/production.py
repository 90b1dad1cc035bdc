"""Production: everything from the environment, secure cookies, no development trust anchors."""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
if not os.environ.get("DATABASE_URL"):
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL in production.")
if not os.environ.get("REDIS_URL"):
    raise ImproperlyConfigured("REDIS_URL must point at Redis in production.")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 31536000
SECURE_CONTENT_TYPE_NOSNIFF = True

# Attestation must chain to the AWS Nitro root: refuse to start with the development PKI.
from enclave_bridge.attestation.verify import AWS_NITRO_ROOT_SHA256  # noqa: E402

ENCLAVE_ROOT_SHA256 = os.environ.get("ENCLAVE_ROOT_SHA256", AWS_NITRO_ROOT_SHA256).lower()
if ENCLAVE_ROOT_SHA256 != AWS_NITRO_ROOT_SHA256:
    raise ImproperlyConfigured(
        "ENCLAVE_ROOT_SHA256 must be the AWS Nitro root's fingerprint in production; "
        "a development trust root is not accepted."
    )
ENCLAVE_TRUST_ROOT = "aws"  # the packaged AWS root, checked against the pinned fingerprint
if env_bool("ENCLAVE_ALLOW_DEBUG", False):  # noqa: F405
    raise ImproperlyConfigured("Debug-mode enclaves (zero PCRs) are never accepted in production.")
if ENCLAVE_EXPECTED_PCRS == "measure":  # noqa: F405
    raise ImproperlyConfigured(
        "Set ENCLAVE_EXPECTED_PCRS to the PCRs of the released enclave image."
    )
if ENCLAVE_KMS_ENDPOINT:  # noqa: F405
    raise ImproperlyConfigured(
        "ENCLAVE_KMS_ENDPOINT points at a simulated KMS; production uses AWS KMS."
    )
ENCLAVE_PASS_AWS_CREDENTIALS = env_bool("ENCLAVE_PASS_AWS_CREDENTIALS", True)  # noqa: F405
