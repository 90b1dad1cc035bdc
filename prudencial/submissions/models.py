"""Submissions of the weekly reporting events: what the host keeps of them.

The host holds no plaintext: a submission is the agent's JWE text (ciphertext), its size and
SHA-256 receipt, who sent it when, through which channel; the enclave's verdict is kept in its
own table with the signed answer (JWS) and the arguments it is bound to, and is verified again
whenever it is read (``prudencial.submissions.selectors``).

Append-only: a submission and a verdict are never edited or deleted. On PostgreSQL database
triggers (django-pgtrigger ``Protect``) refuse any UPDATE or DELETE of their rows; on SQLite
(demo) there are no triggers: the models refuse to save an existing row or delete one
(``AppendOnly``), and the services never write those rows twice; a raw UPDATE would pass
there. A batch's row changes once, from received to its outcome, and never after.
"""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from prudencial.models import Agent, Week

SHA256_HEX = r"^[0-9a-f]{64}$"


class Kind(models.TextChoices):
    PORTFOLIO = "portfolio", _("Portfólio")
    COUNTERPARTIES = "counterparties", _("Contrapartes")


class Channel(models.TextChoices):
    API = "api", _("API")
    WEB = "web", _("Página web")
    SPREADSHEET = "spreadsheet", _("Planilha (lote)")


class VerdictStatus(models.TextChoices):
    ACCEPTED = "accepted", _("Aceito")
    REJECTED = "rejected", _("Recusado")
    ERROR = "error", _("Erro")


class BatchStatus(models.TextChoices):
    RECEIVED = "received", _("Recebido")
    ACCEPTED = "accepted", _("Aceito")
    REJECTED = "rejected", _("Recusado")


class AppendOnly(models.Model):
    """Rows written once: saving an existing row or deleting one is refused here too, so the
    rule holds on SQLite (no triggers) for everything that goes through the model."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError(f"{type(self).__name__} rows are append-only: never edited")
        return super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(f"{type(self).__name__} rows are append-only: never deleted")


class Batch(models.Model):
    """One envelope holding many agents' payloads (JSON or the XLSX template), split by the
    enclave into one submission per agent and kind, or rejected whole (no submission stored)."""

    week = models.ForeignKey(
        Week, on_delete=models.PROTECT, related_name="batches", verbose_name=_("semana")
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="batches",
        verbose_name=_("enviado por"),
    )
    submitted_at = models.DateTimeField(_("enviado em"), default=timezone.now)
    size_bytes = models.PositiveIntegerField(_("tamanho (bytes)"))
    receipt = models.CharField(_("recibo (SHA-256 do JWE)"), max_length=64)
    envelope = models.TextField(_("envelope (JWE)"))
    agents = models.ManyToManyField(Agent, related_name="+", verbose_name=_("agentes declarados"))
    status = models.CharField(
        _("situação"), max_length=10, choices=BatchStatus.choices, default=BatchStatus.RECEIVED
    )
    # File-level refusals [{field, row, rule}] (never a value).
    errors = models.JSONField(_("erros do arquivo"), default=list, blank=True)
    file_format = models.CharField(_("formato do arquivo"), max_length=10, blank=True)
    # The enclave's signed split answer, and what it is bound to.
    answer_token = models.TextField(_("resposta assinada (JWS)"), blank=True)
    # The split request's args without the envelope (which is the batch's own): the digest is
    # recomputed from them and ``envelope`` when the answer is read, and they name the week and
    # agents the answer is about.
    args = models.JSONField(_("argumentos (sem o envelope)"), default=dict, blank=True)
    args_sha256 = models.CharField(_("SHA-256 dos argumentos"), max_length=64, blank=True)
    request_id = models.CharField(_("id da requisição ao enclave"), max_length=64, blank=True)
    nonce = models.CharField(_("nonce (base64url)"), max_length=128, blank=True)
    signing_kid = models.CharField(_("kid da assinatura"), max_length=128, blank=True)
    processed_at = models.DateTimeField(_("processado em"), null=True, blank=True)
    idempotency_key = models.CharField(_("Idempotency-Key"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("lote")
        verbose_name_plural = _("lotes")
        ordering = ["-submitted_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(receipt__regex=SHA256_HEX), name="batch_receipt_sha256"
            ),
            models.CheckConstraint(
                condition=models.Q(size_bytes__gt=0), name="batch_size_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in BatchStatus]),
                name="batch_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status="received") | models.Q(processed_at__isnull=False),
                name="batch_processed_has_time",
            ),
        ]
        indexes = [models.Index(fields=["week", "status"])]
        triggers = [
            pgtrigger.Protect(name="batch_never_deleted", operation=pgtrigger.Delete),
            # The outcome is written once: a processed batch never changes again.
            pgtrigger.Protect(
                name="batch_outcome_final",
                operation=pgtrigger.Update,
                condition=pgtrigger.Q(old__status__in=["accepted", "rejected"]),
            ),
            pgtrigger.ReadOnly(
                name="batch_upload_read_only",
                fields=[
                    "week",
                    "submitted_by",
                    "submitted_at",
                    "size_bytes",
                    "receipt",
                    "envelope",
                    "idempotency_key",
                ],
            ),
        ]

    def __str__(self) -> str:
        return f"lote {self.pk} ({self.week_id}, {self.status})"


class Submission(AppendOnly):
    """One version of an agent's portfolio or counterparties for a week: the JWE only."""

    week = models.ForeignKey(
        Week, on_delete=models.PROTECT, related_name="submissions", verbose_name=_("semana")
    )
    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="submissions", verbose_name=_("agente")
    )
    kind = models.CharField(_("tipo"), max_length=20, choices=Kind.choices)
    version = models.PositiveIntegerField(_("versão"))
    channel = models.CharField(_("canal"), max_length=20, choices=Channel.choices)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="submissions",
        verbose_name=_("enviado por"),
    )
    submitted_at = models.DateTimeField(_("enviado em"), default=timezone.now)
    size_bytes = models.PositiveIntegerField(_("tamanho (bytes)"))
    receipt = models.CharField(_("recibo (SHA-256 do JWE)"), max_length=64)
    envelope = models.TextField(_("envelope (JWE)"))
    batch = models.ForeignKey(
        Batch,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="submissions",
        verbose_name=_("lote"),
    )
    idempotency_key = models.CharField(_("Idempotency-Key"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("envio")
        verbose_name_plural = _("envios")
        ordering = ["week", "agent", "kind", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["week", "agent", "kind", "version"], name="submission_version_unique"
            ),
            # A batch makes at most one submission per agent and kind (process_batch reruns).
            models.UniqueConstraint(
                fields=["batch", "agent", "kind"],
                condition=models.Q(batch__isnull=False),
                name="submission_once_per_batch",
            ),
            models.CheckConstraint(
                condition=models.Q(version__gte=1), name="submission_version_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=[k.value for k in Kind]), name="submission_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(channel__in=[c.value for c in Channel]),
                name="submission_channel_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(receipt__regex=SHA256_HEX), name="submission_receipt_sha256"
            ),
            models.CheckConstraint(
                condition=models.Q(size_bytes__gt=0), name="submission_size_positive"
            ),
            # A spreadsheet only arrives inside a batch.
            models.CheckConstraint(
                condition=~models.Q(channel="spreadsheet") | models.Q(batch__isnull=False),
                name="submission_spreadsheet_in_batch",
            ),
        ]
        indexes = [models.Index(fields=["week", "kind", "agent"])]
        triggers = [
            pgtrigger.Protect(
                name="submission_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"{self.week_id}/{self.agent_id}/{self.kind} v{self.version}"


class Verdict(AppendOnly):
    """The enclave's verdict on one submission, with what proves it.

    ``source`` "validate": ``token`` is the JWS of the enclave's `validate` answer, bound to
    ``args`` (the request args without the envelope, which is the submission's) through
    ``args_sha256``. ``source`` "batch": the verdict came inside the batch's signed split answer
    (``Batch.answer_token``), under the agent's entry. ``source`` "refusal": the enclave refused
    the envelope itself (it does not open, unknown kid...): no token, never accepted."""

    class Source(models.TextChoices):
        VALIDATE = "validate", _("Validação do envelope")
        BATCH = "batch", _("Divisão do lote")
        REFUSAL = "refusal", _("Recusa do envelope")

    submission = models.OneToOneField(
        Submission, on_delete=models.PROTECT, related_name="verdict", verbose_name=_("envio")
    )
    status = models.CharField(_("situação"), max_length=10, choices=VerdictStatus.choices)
    errors = models.JSONField(_("erros"), default=list, blank=True)  # [{field, row, rule}]
    summary = models.JSONField(_("resumo"), default=dict, blank=True)
    source = models.CharField(_("origem"), max_length=10, choices=Source.choices)
    token = models.TextField(_("resposta assinada (JWS)"), blank=True)
    args = models.JSONField(_("argumentos (sem o envelope)"), default=dict, blank=True)
    args_sha256 = models.CharField(_("SHA-256 dos argumentos"), max_length=64, blank=True)
    signing_kid = models.CharField(_("kid da assinatura"), max_length=128, blank=True)
    request_id = models.CharField(_("id da requisição ao enclave"), max_length=64, blank=True)
    nonce = models.CharField(_("nonce (base64url)"), max_length=128, blank=True)
    verified_at = models.DateTimeField(_("verificado em"), default=timezone.now)

    class Meta:
        verbose_name = _("parecer do enclave")
        verbose_name_plural = _("pareceres do enclave")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in VerdictStatus]),
                name="verdict_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(source__in=["validate", "batch", "refusal"]),
                name="verdict_source_valid",
            ),
            # Only a signed answer can say "accepted"; a refusal of the envelope never does.
            models.CheckConstraint(
                condition=models.Q(source="refusal", status="error")
                | models.Q(source="validate", status__in=["accepted", "rejected"])
                & ~models.Q(token="")
                & models.Q(args_sha256__regex=SHA256_HEX)
                | models.Q(source="batch", status__in=["accepted", "rejected"]),
                name="verdict_signed_unless_refusal",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="verdict_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"{self.submission_id}: {self.status}"


class IdempotencyRecord(models.Model):
    """An ``Idempotency-Key`` a user sent, the digest of the request it came with, and what it
    made: the same key with the same request gets the same answer (no second version); with
    another request it is refused (422)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("usuário"),
    )
    key = models.CharField(_("Idempotency-Key"), max_length=200)
    request_sha256 = models.CharField(_("SHA-256 da requisição"), max_length=64)
    submission = models.ForeignKey(
        Submission, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    response = models.JSONField(_("resposta"), default=dict)
    created_at = models.DateTimeField(_("criado em"), default=timezone.now)

    class Meta:
        verbose_name = _("chave de idempotência")
        verbose_name_plural = _("chaves de idempotência")
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique"),
            models.CheckConstraint(
                condition=models.Q(request_sha256__regex=SHA256_HEX),
                name="idempotency_request_sha256",
            ),
            models.CheckConstraint(
                condition=models.Q(submission__isnull=False, batch__isnull=True)
                | models.Q(submission__isnull=True, batch__isnull=False),
                name="idempotency_one_result",
            ),
        ]
        triggers = [pgtrigger.Protect(name="idempotency_never_updated", operation=pgtrigger.Update)]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class EnclaveAttempt(models.Model):
    """How many times the enclave answered a submission's validation or a batch's split with
    a failure of its own (``internal_error``) instead of a verdict. Past
    PRUDENCIAL_SUBMISSION_MAX_ATTEMPTS the submission gets a refusal verdict, the batch is
    rejected: either leaves the set beat re-sends, and its sender is asked to send again.
    An unreachable, locked or busy enclave is not counted (that is waiting, not failing)."""

    submission = models.OneToOneField(
        Submission,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("envio"),
    )
    batch = models.OneToOneField(
        Batch, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    failures = models.PositiveIntegerField(_("falhas"), default=0)
    last_code = models.CharField(_("último código do enclave"), max_length=64, blank=True)
    last_at = models.DateTimeField(_("última falha em"), default=timezone.now)

    class Meta:
        verbose_name = _("falha do enclave")
        verbose_name_plural = _("falhas do enclave")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(submission__isnull=False, batch__isnull=True)
                | models.Q(submission__isnull=True, batch__isnull=False),
                name="enclave_attempt_one_target",
            ),
        ]

    def __str__(self) -> str:
        target = f"envio {self.submission_id}" if self.submission_id else f"lote {self.batch_id}"
        return f"{target}: {self.failures}"
