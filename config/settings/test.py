"""Test settings: fast password hashing; the database and broker come from the environment."""

from .base import *  # noqa: F403
from .base import REST_FRAMEWORK, VAR_DIR

VAR_DIR.mkdir(parents=True, exist_ok=True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"auth": "1000/minute", "attestation": "1000/minute"},
}
LANGUAGE_CODE = "pt-br"
