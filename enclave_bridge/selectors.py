"""Reads of the enclave key registry (public data: keys and their attestations)."""

from django.db.models import QuerySet

from enclave_bridge.models import EnclaveKey


def enclave_key_list() -> QuerySet[EnclaveKey]:
    """Registered keys, current first, then the retired ones that still open older envelopes."""
    return EnclaveKey.objects.order_by("status", "-created_at")
