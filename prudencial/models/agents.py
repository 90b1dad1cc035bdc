"""Market agents (agentes) and their object-permission tables."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
from simple_history.models import HistoricalRecords

from prudencial.domain import market
from prudencial.domain.identifiers import CNPJ_PATTERN, format_cnpj
from prudencial.models.fields import AcronymField, CnpjField
from prudencial.validators import validate_cnpj


class AgentClass(models.TextChoices):
    """Classe do agente na CCEE (the names are prudencial.domain.market's)."""

    GENERATOR = market.GENERATOR, _("Gerador")
    TRADER = market.TRADER, _("Comercializador")
    SELF_PRODUCER = market.SELF_PRODUCER, _("Autoprodutor")
    FREE_CONSUMER = market.FREE_CONSUMER, _("Consumidor livre")
    SPECIAL_CONSUMER = market.SPECIAL_CONSUMER, _("Consumidor especial")
    DISTRIBUTOR = market.DISTRIBUTOR, _("Distribuidor")


class ReportingCadence(models.TextChoices):
    """How often the agent must report (evento semanal ou mensal); distributors are exempt."""

    WEEKLY = market.WEEKLY, _("Semanal")
    MONTHLY = market.MONTHLY, _("Mensal")
    EXEMPT = market.EXEMPT, _("Isento")


MSG_DISTRIBUTOR_EXEMPT = _(
    "Distribuidores são isentos: a periodicidade de envio deve ser “Isento”."
)


def cadence_for_class(agent_class: str) -> str:
    """The reporting cadence the class implies: settings.PRUDENCIAL_CADENCE_BY_CLASS, whose
    default is prudencial.domain.market.DEFAULT_CADENCE_BY_CLASS. An unknown class raises
    DomainError naming it (never a silent "monthly")."""
    table = getattr(settings, "PRUDENCIAL_CADENCE_BY_CLASS", None)
    return market.cadence_for_class(agent_class, table)


class Agent(models.Model):
    """A CCEE market participant: generator, trader, consumer or distributor."""

    acronym = AcronymField(_("sigla"), max_length=20, unique=True)
    cnpj = CnpjField(
        _("CNPJ"),
        max_length=14,
        unique=True,
        validators=[validate_cnpj],
        help_text=_("Numérico ou alfanumérico (a partir de julho/2026), com ou sem máscara."),
    )
    legal_name = models.CharField(_("razão social"), max_length=200)
    agent_class = models.CharField(_("classe"), max_length=20, choices=AgentClass.choices)
    reporting_cadence = models.CharField(
        _("periodicidade de envio"), max_length=10, choices=ReportingCadence.choices
    )
    is_active = models.BooleanField(_("ativo"), default=True)
    created_at = models.DateTimeField(_("criado em"), auto_now_add=True)
    updated_at = models.DateTimeField(_("atualizado em"), auto_now=True)

    history = HistoricalRecords(
        verbose_name=_("histórico do agente"), verbose_name_plural=_("históricos de agentes")
    )

    class Meta:
        verbose_name = _("agente")
        verbose_name_plural = _("agentes")
        ordering = ["acronym"]
        permissions = [
            ("submit_agent_data", _("Pode enviar dados de portfólio e contrapartes do agente")),
            ("send_leverage_result", _("Pode validar e enviar o fator de alavancagem do agente")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cnpj__regex=CNPJ_PATTERN),
                name="agent_cnpj_normalized",
                violation_error_message=_(
                    "O CNPJ deve ter 12 caracteres alfanuméricos e 2 dígitos verificadores, sem máscara."
                ),
            ),
            models.CheckConstraint(
                condition=~models.Q(agent_class="distributor")
                | models.Q(reporting_cadence="exempt"),
                name="agent_distributor_exempt",
                violation_error_message=MSG_DISTRIBUTOR_EXEMPT,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.acronym} — {self.legal_name}"

    def clean(self) -> None:
        """Distributors are exempt: the rule spans class and cadence; the cadence is what to fix."""
        super().clean()
        if (
            self.agent_class == AgentClass.DISTRIBUTOR
            and self.reporting_cadence
            and self.reporting_cadence != ReportingCadence.EXEMPT
        ):
            raise ValidationError({"reporting_cadence": MSG_DISTRIBUTOR_EXEMPT})

    @property
    def cnpj_display(self) -> str:
        return format_cnpj(self.cnpj)


class AgentUserObjectPermission(UserObjectPermissionBase):
    """Direct-FK guardian table: visibility subqueries stay on one indexed table."""

    content_object = models.ForeignKey(Agent, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = _("permissão de usuário sobre agente")
        verbose_name_plural = _("permissões de usuários sobre agentes")


class AgentGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Agent, on_delete=models.CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        verbose_name = _("permissão de grupo sobre agente")
        verbose_name_plural = _("permissões de grupos sobre agentes")
