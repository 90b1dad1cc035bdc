"""Host-side enclave registry services: the deployment's trust settings, and the writes that
record what the gateway verified — attested keys and sealed key sets.

Nothing here talks to the enclave: `enclave_bridge.gateway` does (boot, attest, rotate) and
calls these to record the outcome. Every key recorded comes from an attestation document the
gateway verified with the settings' trust anchor (the AWS Nitro root in production, the
development PKI's root otherwise).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from enclave_bridge.attestation.nsm import measure_pcrs
from enclave_bridge.attestation.verify import aws_nitro_root
from enclave_bridge.models import EnclaveKey, SealedKeySet

logger = logging.getLogger(__name__)


def trusted_root() -> bytes | object:
    """The attestation trust anchor named by settings.ENCLAVE_TRUST_ROOT ("aws" or a PEM path)."""
    if settings.ENCLAVE_TRUST_ROOT == "aws":
        return aws_nitro_root()
    path = Path(settings.ENCLAVE_TRUST_ROOT)
    if not path.exists():
        raise ImproperlyConfigured(
            f"ENCLAVE_TRUST_ROOT {path} does not exist: run `manage.py run_enclave` (development) "
            "or set it to the AWS Nitro root."
        )
    return path.read_bytes()


def expected_pcrs() -> dict[int, bytes]:
    """PCRs the enclave must report: from settings ("0=hex,1=hex") or measured from the source
    (development: the image manifest's files under the project root)."""
    value = settings.ENCLAVE_EXPECTED_PCRS
    if value == "measure":
        return {0: measure_pcrs(settings.BASE_DIR)[0]}
    pcrs = {}
    for item in value.split(","):
        index, _, hexdigest = item.strip().partition("=")
        pcrs[int(index)] = bytes.fromhex(hexdigest)
    return pcrs


def parent_aws_credentials() -> dict[str, str] | None:
    """The parent instance's temporary AWS credentials, handed to the enclave with init, unseal
    and rotate: an enclave cannot read instance metadata, so on Nitro its KMS calls have no
    credentials of their own. None unless settings.ENCLAVE_PASS_AWS_CREDENTIALS (on by default
    in production). Used for that call only; never stored or logged."""
    if not settings.ENCLAVE_PASS_AWS_CREDENTIALS:
        return None
    import boto3

    found = boto3.Session().get_credentials()
    if found is None:
        raise ImproperlyConfigured(
            "ENCLAVE_PASS_AWS_CREDENTIALS is on but the host has no AWS credentials "
            "(the parent instance's IAM role)."
        )
    frozen = found.get_frozen_credentials()
    credentials = {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key}
    if frozen.token:
        credentials["session_token"] = frozen.token
    return credentials


def current_signing_key() -> EnclaveKey | None:
    """The registered result-signing key every answer is checked against (None before a boot)."""
    return EnclaveKey.objects.filter(
        use=EnclaveKey.Use.SIGNATURE, status=EnclaveKey.Status.CURRENT
    ).first()


@transaction.atomic
def attested_keys_record(*, attestation: Any, document: Any) -> list[EnclaveKey]:
    """Record the keys an attestation binds; older keys become retired.

    ``document`` must be what the gateway's verification returned for this very ``attestation``
    (``gateway.verify_attestation_of``): call it only through ``gateway.register_attestation``."""
    now = timezone.now()
    pcrs = {str(i): v.hex() for i, v in sorted(document.pcrs.items()) if any(v)}
    current = {attestation.kid, attestation.signing_kid}
    keys = []
    EnclaveKey.objects.filter(status=EnclaveKey.Status.CURRENT).exclude(kid__in=current).update(
        status=EnclaveKey.Status.RETIRED
    )
    for key in attestation.jwks["keys"]:
        status = EnclaveKey.Status.CURRENT if key["kid"] in current else EnclaveKey.Status.RETIRED
        obj, _ = EnclaveKey.objects.update_or_create(
            kid=key["kid"],
            defaults={
                "use": key["use"],
                "public_jwk": key,
                "status": status,
                "attestation": attestation.document,
                "module_id": document.module_id,
                "pcrs": pcrs,
                "attested_at": document.timestamp,
                "verified_at": now,
                "expires_at": document.certificate.not_valid_after_utc,
                "debug_mode": document.is_debug,
            },
        )
        keys.append(obj)
    logger.info(
        "enclave keys registered: current=%s signing=%s", attestation.kid, attestation.signing_kid
    )
    return keys


@transaction.atomic
def sealed_key_set_store(
    *, blob: bytes, reason: str, kms_key_id: str, attested: bool = True
) -> SealedKeySet:
    """Keep a sealed set; an attested one becomes the current set at once."""
    if attested:
        SealedKeySet.objects.filter(is_current=True).update(is_current=False)
    return SealedKeySet.objects.create(
        blob=blob, kms_key_id=kms_key_id, reason=reason, is_current=attested, attested=attested
    )


@transaction.atomic
def sealed_key_set_promote(sealed: SealedKeySet) -> None:
    """A pending first-boot set whose enclave's attestation has just been verified."""
    SealedKeySet.objects.filter(is_current=True).exclude(pk=sealed.pk).update(is_current=False)
    SealedKeySet.objects.filter(pk=sealed.pk).update(is_current=True, attested=True)
