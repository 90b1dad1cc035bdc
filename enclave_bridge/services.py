"""Host-side enclave services: boot with the sealed keys, attest, verify and register keys.

Every key the host trusts comes from an attestation document verified here with the settings'
trust anchor (the AWS Nitro root in production, the development PKI's root otherwise), and every
answer the host stores is verified against the registered signing key by EnclaveClient.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from enclave_bridge.attestation.nsm import measure_pcrs
from enclave_bridge.attestation.verify import aws_nitro_root
from enclave_bridge.client import (
    Attestation,
    EnclaveClient,
    EnclaveError,
    KeySet,
    check_attestation,
)
from enclave_bridge.enclave import APP_DIR
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
    """PCRs the enclave must report: from settings ("0=hex,1=hex") or measured from the source."""
    value = settings.ENCLAVE_EXPECTED_PCRS
    if value == "measure":
        return {0: measure_pcrs(APP_DIR)[0]}
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


def verify_attestation_of(attestation: Attestation, *, now: dt.datetime | None = None):
    """Check an attestation with this deployment's trust settings (raises on any failure)."""
    return check_attestation(
        attestation,
        trusted_root=trusted_root(),
        root_sha256=settings.ENCLAVE_ROOT_SHA256 or None,
        expected_pcrs=expected_pcrs(),
        max_age=dt.timedelta(seconds=settings.ENCLAVE_ATTESTATION_MAX_AGE),
        allow_debug=settings.ENCLAVE_ALLOW_DEBUG,
        now=now,
    )


@transaction.atomic
def register_attestation(*, attestation: Attestation) -> list[EnclaveKey]:
    """Verify an attestation and record the keys it binds; older keys become retired."""
    doc = verify_attestation_of(attestation)
    now = timezone.now()
    pcrs = {str(i): v.hex() for i, v in sorted(doc.pcrs.items()) if any(v)}
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
                "module_id": doc.module_id,
                "pcrs": pcrs,
                "attested_at": doc.timestamp,
                "verified_at": now,
                "expires_at": doc.certificate.not_valid_after_utc,
                "debug_mode": doc.is_debug,
            },
        )
        keys.append(obj)
    logger.info(
        "enclave keys registered: current=%s signing=%s", attestation.kid, attestation.signing_kid
    )
    return keys


@transaction.atomic
def _store_sealed(
    keys: KeySet, *, reason: str, kms_key_id: str, attested: bool = True
) -> SealedKeySet:
    """Keep a sealed set; an attested one becomes the current set at once."""
    if attested:
        SealedKeySet.objects.filter(is_current=True).update(is_current=False)
    return SealedKeySet.objects.create(
        blob=keys.sealed_keys,
        kms_key_id=kms_key_id,
        reason=reason,
        is_current=attested,
        attested=attested,
    )


@transaction.atomic
def _promote(sealed: SealedKeySet) -> None:
    """A pending first-boot set whose enclave's attestation has just been verified."""
    SealedKeySet.objects.filter(is_current=True).exclude(pk=sealed.pk).update(is_current=False)
    SealedKeySet.objects.filter(pk=sealed.pk).update(is_current=True, attested=True)


@dataclass(frozen=True)
class EnclaveBoot:
    """What enclave_boot did: "unsealed" (the current set), "unsealed_pending" (a first-boot set
    whose attestation had not verified yet) or "initialised" (new keys, sealed set stored)."""

    action: str
    keys: list[EnclaveKey]


def enclave_boot(*, client: EnclaveClient, kms_key_id: str) -> EnclaveBoot:
    """Unlock a (re)started enclave: hand back the current sealed key set when it was sealed
    under this KMS key, else let the enclave create keys (first boot) and keep the sealed set.
    Then attest, verify and register the keys.

    A first-boot set is committed at once but only as *pending*: it becomes current when the
    attestation of the enclave that made it verifies. So a boot whose attestation is refused (a
    wrong PCR setting, say) does not lose the keys the enclave now holds (the next boot unseals
    the pending set), and whatever answered `init` without being the attested image cannot
    displace the current set. No key is trusted until register_attestation has verified it."""
    sealed = SealedKeySet.objects.filter(is_current=True, kms_key_id=kms_key_id).first()
    pending = None
    action = "unsealed"
    if sealed is not None:
        client.unseal(bytes(sealed.blob), aws_credentials=parent_aws_credentials())
        logger.info("enclave unsealed with key set of %s", sealed.created_at.isoformat())
    else:
        action = "unsealed_pending"
        pending = (
            SealedKeySet.objects.filter(is_current=False, attested=False, kms_key_id=kms_key_id)
            .order_by("-created_at")
            .first()
        )
        if pending is not None:
            try:
                client.unseal(bytes(pending.blob), aws_credentials=parent_aws_credentials())
                logger.info("enclave unsealed with the pending key set of %s", pending.created_at)
            except EnclaveError as exc:
                logger.warning("pending sealed key set does not unseal (%s): first boot", exc.code)
                pending = None
        if pending is None:
            action = "initialised"
            keys = client.init(aws_credentials=parent_aws_credentials())
            pending = _store_sealed(keys, reason="init", kms_key_id=kms_key_id, attested=False)
    attestation = client.attest()
    registered = register_attestation(attestation=attestation)
    if pending is not None:
        _promote(pending)
    client.register_signing_key(attestation.signing_jwk)
    return EnclaveBoot(action, registered)


def enclave_rotate(
    *, client: EnclaveClient, kms_key_id: str, rotate_signing: bool = False
) -> list[EnclaveKey]:
    """New envelope key (new kid); older keys stay in the sealed set to open older envelopes.
    The rotate answer is signed by the attested signing key, so its sealed set is current at
    once, and kept even if the attestation that follows fails."""
    keys = client.rotate(rotate_signing=rotate_signing, aws_credentials=parent_aws_credentials())
    _store_sealed(keys, reason="rotate", kms_key_id=kms_key_id)
    attestation = client.attest()
    return register_attestation(attestation=attestation)
