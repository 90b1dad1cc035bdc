"""SIMULATED AWS KMS for development and tests: moto plus the attested-Recipient behaviour.

Not AWS KMS: keys live in a local process (optionally a state file); see docs/attestation.md.
"""

from typing import Any

from .policy import attestation_key_policy, is_allowed
from .server import (
    ADMIN_CREDENTIALS,
    FAKE_CREDENTIALS,
    INSTANCE_ROLE_ARN,
    KEY_ADMIN_ROLE_ARN,
    REGION,
    RecipientMiddleware,
    build_app,
    make_kms_server,
    start_kms_sim,
)

__all__ = [
    "INSTANCE_ROLE_ARN",
    "KEY_ADMIN_ROLE_ARN",
    "REGION",
    "RecipientMiddleware",
    "attestation_key_policy",
    "build_app",
    "create_attested_key",
    "is_allowed",
    "kms_admin_client",
    "kms_client",
    "make_kms_server",
    "start_kms_sim",
]


def _client(endpoint_url: str, credentials: dict[str, str]) -> Any:
    import boto3

    return boto3.client("kms", endpoint_url=endpoint_url, region_name=REGION, **credentials)


def kms_client(endpoint_url: str) -> Any:
    """A boto3 KMS client for the simulator as the PARENT INSTANCE ROLE (access key "testing"):
    what the host and the enclave use; only attested Decrypt/GenerateDataKey(Pair) work."""
    return _client(endpoint_url, FAKE_CREDENTIALS)


def kms_admin_client(endpoint_url: str) -> Any:
    """A boto3 KMS client for the simulator as the KEY ADMINISTRATOR (access key "kms-admin"):
    creates keys and manages their policies, cannot use them cryptographically."""
    return _client(endpoint_url, ADMIN_CREDENTIALS)


def create_attested_key(client: Any, pcrs: dict[int, str], *, description: str = "") -> str:
    """Create a symmetric key whose policy releases data keys only to enclaves with `pcrs`.

    `client` must be the key administrator's (kms_admin_client): the simulated KMS, like the
    production IAM set-up, refuses CreateKey to the instance role (AccessDeniedException).
    """
    response = client.create_key(
        Policy=attestation_key_policy(pcrs),
        Description=description or "enclave sealing key (attested)",
        KeyUsage="ENCRYPT_DECRYPT",
        KeySpec="SYMMETRIC_DEFAULT",
    )
    return response["KeyMetadata"]["KeyId"]
