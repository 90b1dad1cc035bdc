"""Reads of the enclave key registry (public data: keys and their attestations; sealed sets)."""

from django.db.models import QuerySet

from enclave_bridge.models import EnclaveKey, SealedKeySet


def enclave_key_list() -> QuerySet[EnclaveKey]:
    """Registered keys, current first, then the retired ones that still open older envelopes."""
    return EnclaveKey.objects.order_by("status", "-created_at")


def sealed_key_sets_for_boot(*, kms_key_id: str) -> tuple[SealedKeySet | None, SealedKeySet | None]:
    """What a boot hands back: (the current set sealed under this KMS key, the newest pending
    first-boot set under it)."""
    current = SealedKeySet.objects.filter(is_current=True, kms_key_id=kms_key_id).first()
    pending = (
        SealedKeySet.objects.filter(is_current=False, attested=False, kms_key_id=kms_key_id)
        .order_by("-created_at")
        .first()
    )
    return current, pending
