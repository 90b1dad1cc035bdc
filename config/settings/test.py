"""Test settings: fast password hashing; the database and broker come from the environment."""

import os

from .base import *  # noqa: F403
from .base import CACHES, REST_FRAMEWORK, VAR_DIR

VAR_DIR.mkdir(parents=True, exist_ok=True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {
        **REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],  # the submissions' and batches' defaults
        "auth": "1000/minute",
        "attestation": "1000/minute",
    },
}
LANGUAGE_CODE = "pt-br"
# With REDIS_URL the cache is Redis, shared with other runs and xdist workers: a prefix of this
# process keeps throttle counters from leaking between them (keys expire within the minute).
CACHES = {"default": {**CACHES["default"], "KEY_PREFIX": f"test-{os.getpid()}"}}
