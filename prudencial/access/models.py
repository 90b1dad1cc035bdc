"""Expiring API tokens, the access audit (append-only, hash-chained) and the staff-access list."""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from prudencial.models import User


class AccessToken(models.Model):
    """An API token of one person: shown once at creation, stored only as its SHA-256 digest.

    It stops working at ``expires_at`` or when revoked (by its owner or by staff); the row stays,
    so the owner's list and the audit keep what existed. Sent as ``Authorization: Token <key>``.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="access_tokens",
        verbose_name=_("usuário"),
    )
    name = models.CharField(_("nome"), max_length=100, blank=True)
    prefix = models.CharField(
        _("início"), max_length=8, help_text=_("Os primeiros caracteres, para reconhecê-lo.")
    )
    digest = models.CharField(_("SHA-256"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("criado em"), default=timezone.now)
    expires_at = models.DateTimeField(_("expira em"))
    revoked_at = models.DateTimeField(_("revogado em"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("revogado por"),
    )

    class Meta:
        verbose_name = _("token de API")
        verbose_name_plural = _("tokens de API")
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["user", "-created_at"], name="access_token_user_created")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")),
                name="access_token_expires_after_creation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or self.user})"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and self.expires_at > now

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "active" if self.expires_at > timezone.now() else "expired"


class AuditKind(models.TextChoices):
    LOGIN = "login", _("entrada")
    LOGIN_FAILED = "login_failed", _("falha de entrada")
    LOCKOUT = "lockout", _("bloqueio")
    LOGOUT = "logout", _("saída")
    TOKEN_CREATED = "token_created", _("token criado")
    TOKEN_REVOKED = "token_revoked", _("token revogado")
    EMAIL_LINK = "email_link_used", _("link de e-mail usado")
    SECOND_FACTOR_ENROLLED = "second_factor_enrolled", _("segundo fator cadastrado")
    SECOND_FACTOR_INVITED = "second_factor_invited", _("cadastro de segundo fator enviado")
    ADMIN_ACTION = "admin_action", _("ação no admin")


class AuditEvent(models.Model):
    """One access event (trilha de auditoria de acesso). Append-only and chained.

    ``seq`` is the event's position in the chain (1, 2, 3, … without gaps, assigned under a lock);
    ``hash`` is SHA-256 over the canonical fields and ``prev_hash`` (the previous event's hash),
    so altering, removing or reordering a row breaks the chain from there on
    (``manage.py audit_verify``). On PostgreSQL, triggers refuse UPDATE and DELETE and the
    application's role holds only INSERT and SELECT on the table (migration 0002).
    Written only by ``prudencial.access.audit.record``.
    """

    seq = models.BigIntegerField(_("nº"), primary_key=True)
    occurred_at = models.DateTimeField(_("quando"))
    kind = models.CharField(_("evento"), max_length=32, choices=AuditKind.choices)
    # No database constraint: an audited person may be deleted later, and the row must not change.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("pessoa"),
    )
    actor_username = models.CharField(_("login da pessoa"), max_length=150, blank=True)
    username = models.CharField(
        _("login informado"), max_length=150, blank=True, help_text=_("Como digitado na tentativa.")
    )
    ip_address = models.CharField(_("endereço"), max_length=45, blank=True)
    object_type = models.CharField(
        _("tipo de registro"), max_length=100, blank=True, help_text=_("app_label.model")
    )
    object_id = models.CharField(_("id do registro"), max_length=64, blank=True)
    object_repr = models.CharField(_("registro"), max_length=200, blank=True)
    message = models.TextField(_("descrição"), blank=True)
    detail = models.JSONField(_("detalhes"), default=dict, blank=True)
    prev_hash = models.CharField(_("hash anterior"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64, unique=True)

    class Meta:
        verbose_name = _("evento de acesso")
        verbose_name_plural = _("auditoria de acesso")
        ordering = ("-seq",)
        indexes = [
            models.Index(fields=["actor", "-seq"], name="access_audit_actor"),
            models.Index(fields=["object_type", "object_id"], name="access_audit_object"),
            models.Index(fields=["kind", "-seq"], name="access_audit_kind"),
            models.Index(fields=["occurred_at"], name="access_audit_when"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="access_audit_seq_positive")
        ]
        triggers = [
            pgtrigger.Protect(name="audit_no_update", operation=pgtrigger.Update),
            pgtrigger.Protect(name="audit_no_delete", operation=pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.get_kind_display()} {self.actor_username or self.username}"


class StaffAccess(User):
    """Who holds administrative access (staff or superuser): the admin's list for keeping that
    group as small as the seed asks ("número mínimo de pessoas com acesso administrativo")."""

    class Meta:
        proxy = True
        verbose_name = _("acesso de equipe")
        verbose_name_plural = _("quem tem acesso de equipe")
