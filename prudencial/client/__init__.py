"""The agent-side client of the Plataforma de Monitoramento Prudencial (library and CLI).

Runs on the agents' machines and imports no server code (no Django, DRF, Celery, models,
services or the enclave program: import-linter contract "agent-client-imports-no-server-code").
The plaintext portfolio leaves the machine only inside a JWE encrypted to a key whose
attestation the client verified itself against the policy pinned in client.toml.

    python -m prudencial.client --help

Library: ``Client`` mirrors the commands; ``attestation.verify_answer``, ``envelope.encrypt``,
``preview.fa_preview`` and ``reply`` (the key the leverage breakdown is sealed to) are the
pieces. See docs/api.md.
"""

from .attestation import VerifiedAttestation, fetch_verified, verify_answer
from .config import ClientConfig, TrustPolicy, load_config
from .envelope import encrypt, read_file, receipt
from .errors import (
    ApiError,
    AttestationRefused,
    ClientError,
    ConfigError,
    ConnectionFailed,
    PayloadError,
    ReplyKeyError,
)
from .preview import Preview, engine_parameters, fa_preview
from .session import Client, Submitted

__all__ = [
    "ApiError",
    "AttestationRefused",
    "Client",
    "ClientConfig",
    "ClientError",
    "ConfigError",
    "ConnectionFailed",
    "PayloadError",
    "Preview",
    "ReplyKeyError",
    "Submitted",
    "TrustPolicy",
    "VerifiedAttestation",
    "encrypt",
    "engine_parameters",
    "fa_preview",
    "fetch_verified",
    "load_config",
    "read_file",
    "receipt",
    "verify_answer",
]
