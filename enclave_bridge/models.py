"""Host-side registry of the enclave's keys, their attestations and the sealed key sets.

The host never holds a private key: it keeps the enclave's public keys (JWK) with the attestation
that bound them, and the key set sealed under a KMS data key, which it hands back at boot.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class EnclaveKey(models.Model):
    """A public key published by the enclave, with the attestation document that binds it."""

    class Use(models.TextChoices):
        ENCRYPTION = "enc", _("Cifragem de envelopes (RSA-OAEP-256)")
        SIGNATURE = "sig", _("Assinatura de resultados (ES256)")

    class Status(models.TextChoices):
        CURRENT = "current", _("Vigente")
        RETIRED = "retired", _("Aposentada")

    kid = models.CharField(_("kid"), max_length=128, unique=True)
    use = models.CharField(_("uso"), max_length=3, choices=Use.choices)
    public_jwk = models.JSONField(_("JWK público"))
    status = models.CharField(
        _("situação"), max_length=10, choices=Status.choices, default=Status.CURRENT
    )
    attestation = models.BinaryField(_("documento de atestação"))
    module_id = models.CharField(_("módulo do enclave"), max_length=200, blank=True)
    pcrs = models.JSONField(_("PCRs (hex)"), default=dict)
    attested_at = models.DateTimeField(_("atestado em"))
    verified_at = models.DateTimeField(_("verificado em"))
    expires_at = models.DateTimeField(_("atestação expira em"))
    debug_mode = models.BooleanField(_("enclave em modo debug"), default=False)
    created_at = models.DateTimeField(_("criada em"), auto_now_add=True)

    class Meta:
        verbose_name = _("chave do enclave")
        verbose_name_plural = _("chaves do enclave")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(use__in=["enc", "sig"]), name="enclave_key_use_valid"
            ),
            models.UniqueConstraint(
                fields=["use"],
                condition=models.Q(status="current"),
                name="enclave_key_one_current_per_use",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.get_use_display()}, {self.get_status_display()})"


class SealedKeySet(models.Model):
    """The enclave's private keys sealed under a KMS data key: opaque to the host."""

    blob = models.BinaryField(_("conjunto selado"))
    kms_key_id = models.CharField(_("chave KMS"), max_length=200)
    reason = models.CharField(
        _("motivo"),
        max_length=20,
        choices=[("init", _("Primeira inicialização")), ("rotate", _("Rotação"))],
    )
    is_current = models.BooleanField(_("vigente"), default=True)
    # False while a first-boot set waits for its enclave's attestation to be verified: only an
    # attested set becomes current, so whatever answered `init` cannot displace the real one.
    attested = models.BooleanField(_("atestado"), default=True)
    created_at = models.DateTimeField(_("criado em"), auto_now_add=True)

    class Meta:
        verbose_name = _("conjunto de chaves selado")
        verbose_name_plural = _("conjuntos de chaves selados")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_current"],
                condition=models.Q(is_current=True),
                name="sealed_key_set_one_current",
            ),
            models.CheckConstraint(
                condition=~models.Q(is_current=True, attested=False),
                name="sealed_key_set_current_is_attested",
                violation_error_message=_("Um conjunto vigente precisa estar atestado."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} — {self.created_at:%d/%m/%Y %H:%M}"
