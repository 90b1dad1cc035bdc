"""CCEE staff view of the enclave's key registry: read-only, since only the enclave mints keys."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from enclave_bridge.models import EnclaveKey, SealedKeySet


class ReadOnlyAdmin(admin.ModelAdmin):
    """Keys and sealed sets come from the enclave through services, never from a form."""

    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(EnclaveKey)
class EnclaveKeyAdmin(ReadOnlyAdmin):
    list_display = ["kid", "use", "status", "debug_mode", "attested_at", "expires_at"]
    list_filter = ["use", "status", "debug_mode"]
    search_fields = ["kid", "module_id"]
    readonly_fields = [
        "kid",
        "use",
        "status",
        "public_jwk",
        "module_id",
        "pcrs",
        "debug_mode",
        "attested_at",
        "verified_at",
        "expires_at",
        "attestation_size",
        "created_at",
    ]
    exclude = ["attestation"]

    @admin.display(description=_("tamanho da atestação (bytes)"))
    def attestation_size(self, obj: EnclaveKey) -> int:
        return len(obj.attestation or b"")


@admin.register(SealedKeySet)
class SealedKeySetAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "reason", "kms_key_id", "is_current", "attested", "blob_size"]
    list_filter = ["reason", "is_current", "attested"]
    exclude = ["blob"]
    readonly_fields = ["reason", "kms_key_id", "is_current", "attested", "created_at", "blob_size"]

    @admin.display(description=_("tamanho (bytes)"))
    def blob_size(self, obj: SealedKeySet) -> int:
        return len(obj.blob or b"")
