"""Representations: which users control or represent which agents, and since when."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

MSG_PERIOD_ORDER = _("A data “válida até” não pode ser anterior à data “válida desde”.")


class RepresentationRole(models.TextChoices):
    """Kinds of link between a user and an agent ("agentes que controla ou representa")."""

    CONTROLS = "controls", _("Controla")
    REPRESENTS = "represents", _("Representa")
    MONITORING = "monitoring", _("Representante do monitoramento prudencial")


class Representation(models.Model):
    """A user's right to act for an agent, from a date to an optional date (inclusive).

    Object permissions are derived from these rows by prudencial.services.representations;
    nothing else grants or revokes them.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="representations",
        verbose_name=_("usuário"),
    )
    agent = models.ForeignKey(
        "prudencial.Agent",
        on_delete=models.CASCADE,
        related_name="representations",
        verbose_name=_("agente"),
    )
    role = models.CharField(_("papel"), max_length=20, choices=RepresentationRole.choices)
    valid_from = models.DateField(_("válida desde"))
    valid_until = models.DateField(_("válida até"), null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("concedida por"),
    )
    external_id = models.CharField(
        _("id no cadastro da CCEE"),
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text=_("Identificador da representação no cadastro da CCEE (feed do cadastro)."),
    )
    created_at = models.DateTimeField(_("criada em"), auto_now_add=True)
    updated_at = models.DateTimeField(_("atualizada em"), auto_now=True)

    history = HistoricalRecords(
        verbose_name=_("histórico da representação"),
        verbose_name_plural=_("históricos de representações"),
    )

    class Meta:
        verbose_name = _("representação")
        verbose_name_plural = _("representações")
        ordering = ["agent__acronym", "user__username", "-valid_from"]
        permissions = [
            (
                "apply_registry_feed",
                _("Pode aplicar o feed de representações do cadastro da CCEE"),
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(valid_until__isnull=True)
                | models.Q(valid_until__gte=models.F("valid_from")),
                name="representation_period_ordered",
                violation_error_message=MSG_PERIOD_ORDER,
            ),
            models.UniqueConstraint(
                fields=["user", "agent", "role", "valid_from"], name="representation_unique_start"
            ),
        ]
        indexes = [models.Index(fields=["valid_until"]), models.Index(fields=["valid_from"])]

    def __str__(self) -> str:
        return f"{self.user} → {self.agent.acronym} ({self.get_role_display()})"

    def clean(self) -> None:
        super().clean()
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValidationError({"valid_until": MSG_PERIOD_ORDER})
