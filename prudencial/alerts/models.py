"""Cases opened by a closing's breaches, their history and the e-mails they sent.

A ``Case`` is one figure of one agent's result (closing.LeverageResult) beyond the week's rule
(prudencial.domain.alerts): unique (leverage_result, figure), so a repeated signal or a retried
task opens it once. Its ``CaseEvent`` rows are the history (opened, assigned, comment, answered,
closed, note), append-only (PostgreSQL triggers refuse UPDATE and DELETE; the model refuses
them too, for SQLite). An ``AlertEmail`` row is claimed before an e-mail is sent and marked sent
after: unique per (case, recipient, kind), or per (closing, recipient, kind) for the delayed
closing's e-mail, so a retry sends no second e-mail.

Figures are ratios (FA, exposure / PLA), never R$; staff see a case's value only once the agent
sent the result (services.value_visible), as with the results themselves.
"""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from prudencial.domain import alerts as rules
from prudencial.models import Agent, Week


class Figure(models.TextChoices):
    FA = rules.FIGURE_FA, _("Fator de alavancagem")
    CONCENTRATION_LARGEST = (
        rules.FIGURE_CONCENTRATION_LARGEST,
        _("Concentração na maior contraparte"),
    )
    CONCENTRATION_TOP_FIVE = (
        rules.FIGURE_CONCENTRATION_TOP_FIVE,
        _("Concentração nas cinco maiores contrapartes"),
    )


class CaseState(models.TextChoices):
    OPEN = "open", _("Aberto")
    ANSWERED = "answered", _("Respondido")
    CLOSED = "closed", _("Encerrado")


class Decision(models.TextChoices):
    """How staff close a case (the reasons are written in ``decision_text``)."""

    JUSTIFIED = "justified", _("Justificado pelo agente")
    REGULARIZED = "regularized", _("Regularizado pelo agente")
    REFERRED = "referred", _("Encaminhado à fiscalização")
    NO_ACTION = "no_action", _("Arquivado sem providências")


#: Band codes staff read in their language; another code is shown as it is.
BAND_LABELS = {"attention": _("atenção"), "alert": _("alerta")}


def band_label(code: str) -> str:
    return str(BAND_LABELS.get(code, code))


class Case(models.Model):
    """One breach of one agent's result, from opening to the closing decision."""

    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="cases", verbose_name=_("agente")
    )
    week = models.ForeignKey(
        Week, on_delete=models.PROTECT, related_name="cases", verbose_name=_("semana")
    )
    closing = models.ForeignKey(
        "closing.Closing",
        on_delete=models.PROTECT,
        related_name="cases",
        verbose_name=_("fechamento"),
    )
    leverage_result = models.ForeignKey(
        "closing.LeverageResult",
        on_delete=models.PROTECT,
        related_name="cases",
        verbose_name=_("resultado"),
    )
    figure = models.CharField(_("indicador"), max_length=32, choices=Figure.choices)
    value = models.FloatField(_("valor"))
    band = models.CharField(
        _("faixa"),
        max_length=32,
        blank=True,
        help_text=_("Código da faixa do FA; vazio num limite."),
    )
    threshold = models.FloatField(
        _("início da faixa / limite"),
        help_text=_(
            "O início da faixa do FA, ou o limite de concentração excedido (fração do PLA)."
        ),
    )
    opened_at = models.DateTimeField(_("aberto em"), default=timezone.now)
    response_due = models.DateTimeField(_("prazo de resposta"))
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_cases",
        verbose_name=_("responsável"),
    )
    state = models.CharField(
        _("situação"), max_length=10, choices=CaseState.choices, default=CaseState.OPEN
    )
    decision = models.CharField(_("decisão"), max_length=16, choices=Decision.choices, blank=True)
    decision_text = models.TextField(_("fundamentação da decisão"), blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="decided_cases",
        verbose_name=_("decidido por"),
    )
    decided_at = models.DateTimeField(_("decidido em"), null=True, blank=True)
    updated_at = models.DateTimeField(_("atualizado em"), auto_now=True)

    class Meta:
        verbose_name = _("caso")
        verbose_name_plural = _("casos")
        ordering = ["response_due", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["leverage_result", "figure"],
                name="case_one_per_result_figure",
                violation_error_message=_("Já há um caso deste indicador para este resultado."),
            ),
            models.CheckConstraint(
                condition=models.Q(figure__in=[f.value for f in Figure]),
                name="case_figure_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=[s.value for s in CaseState]),
                name="case_state_valid",
            ),
            # An FA case names its band; a concentration case names none (its limit is threshold).
            models.CheckConstraint(
                condition=(models.Q(figure=rules.FIGURE_FA) & ~models.Q(band=""))
                | (~models.Q(figure=rules.FIGURE_FA) & models.Q(band="")),
                name="case_band_only_for_fa",
            ),
            # Closed ⇔ a decision with its reasons, who and when.
            models.CheckConstraint(
                condition=(
                    models.Q(state=CaseState.CLOSED)
                    & ~models.Q(decision="")
                    & ~models.Q(decision_text="")
                    & models.Q(decided_by__isnull=False, decided_at__isnull=False)
                )
                | (
                    ~models.Q(state=CaseState.CLOSED)
                    & models.Q(decision="", decided_by__isnull=True, decided_at__isnull=True)
                ),
                name="case_closed_with_decision",
                violation_error_message=_(
                    "Um caso encerrado tem decisão, fundamentação, autor e data; um caso aberto "
                    "não tem nenhum deles."
                ),
            ),
            models.CheckConstraint(
                condition=models.Q(response_due__gt=models.F("opened_at")),
                name="case_due_after_opening",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "response_due"]),
            models.Index(fields=["agent", "-opened_at"]),
            models.Index(fields=["week", "figure"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.figure}"

    @property
    def is_overdue(self) -> bool:
        return self.state == CaseState.OPEN and self.response_due < timezone.now()

    @property
    def band_display(self) -> str:
        return band_label(self.band) if self.band else ""


class EventKind(models.TextChoices):
    OPENED = "opened", _("Aberto")
    ASSIGNED = "assigned", _("Atribuído")
    COMMENT = "comment", _("Comentário")
    ANSWERED = "answered", _("Respondido pelo agente")
    CLOSED = "closed", _("Encerrado")
    NOTE = "note", _("Nota do sistema")


class Side(models.TextChoices):
    STAFF = "staff", _("Equipe CCEE")
    AGENT = "agent", _("Agente")
    SYSTEM = "system", _("Sistema")


class CaseEvent(models.Model):
    """One entry of a case's history, never edited nor deleted."""

    case = models.ForeignKey(
        Case, on_delete=models.PROTECT, related_name="events", verbose_name=_("caso")
    )
    kind = models.CharField(_("tipo"), max_length=10, choices=EventKind.choices)
    side = models.CharField(_("lado"), max_length=10, choices=Side.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="case_events",
        verbose_name=_("autor"),
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("atribuído a"),
    )
    text = models.TextField(_("texto"), blank=True)
    #: A system event written once per cause ("opened", "superseded:<closing id>"): a retry
    #: writes no second one.
    key = models.CharField(_("chave"), max_length=64, blank=True)
    at = models.DateTimeField(_("em"), default=timezone.now)

    class Meta:
        verbose_name = _("evento do caso")
        verbose_name_plural = _("histórico dos casos")
        ordering = ["at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "key"],
                condition=~models.Q(key=""),
                name="case_event_once_per_key",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=[k.value for k in EventKind]),
                name="case_event_kind_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(side__in=[s.value for s in Side]),
                name="case_event_side_valid",
            ),
            # A person writes comments and answers; the system writes nothing in someone's name.
            models.CheckConstraint(
                condition=models.Q(side=Side.SYSTEM, author__isnull=True)
                | (~models.Q(side=Side.SYSTEM) & models.Q(author__isnull=False)),
                name="case_event_author_side",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="case_event_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case_id} {self.kind} {self.at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("CaseEvent rows are append-only: never edited")
        return super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("CaseEvent rows are append-only: never deleted")


class EmailKind(models.TextChoices):
    CASE_AGENT = "case_agent", _("Caso aberto (usuários do agente)")
    CASE_STAFF = "case_staff", _("Caso aberto (equipe CCEE)")
    CLOSING_DELAYED = "closing_delayed", _("Fechamento atrasado (equipe CCEE)")
    CLOSING_FAILED = "closing_failed", _("Fechamento com falha (equipe CCEE)")


CLOSING_KINDS = (EmailKind.CLOSING_DELAYED, EmailKind.CLOSING_FAILED)


class AlertEmail(models.Model):
    """One e-mail to one address about one case (or one delayed or failed closing): claimed
    (sent_at empty) before it is sent, marked sent after. The address is the one written to.
    ``occurrence`` tells apart two delays or two failures of the same closing (it is started
    again after a failure, resumed after a delay): the moment the state was entered."""

    closing = models.ForeignKey(
        "closing.Closing",
        on_delete=models.PROTECT,
        related_name="alert_emails",
        verbose_name=_("fechamento"),
    )
    case = models.ForeignKey(
        Case,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="emails",
        verbose_name=_("caso"),
    )
    recipient = models.EmailField(_("destinatário"))
    kind = models.CharField(_("tipo"), max_length=20, choices=EmailKind.choices)
    language = models.CharField(_("idioma"), max_length=8, default="pt-br")
    created_at = models.DateTimeField(_("registrado em"), default=timezone.now)
    sent_at = models.DateTimeField(_("enviado em"), null=True, blank=True)
    occurrence = models.CharField(_("ocorrência"), max_length=40, blank=True, default="")

    class Meta:
        verbose_name = _("e-mail de alerta")
        verbose_name_plural = _("e-mails de alerta")
        ordering = ["-created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "recipient", "kind"],
                condition=models.Q(case__isnull=False),
                name="alert_email_once_per_case",
            ),
            models.UniqueConstraint(
                fields=["closing", "recipient", "kind", "occurrence"],
                condition=models.Q(case__isnull=True),
                name="alert_email_once_per_closing",
            ),
            models.CheckConstraint(
                # A closing's own e-mails (delayed, failed) name no case; a case's always do.
                condition=(
                    models.Q(kind__in=CLOSING_KINDS) & models.Q(case__isnull=True)
                    | ~models.Q(kind__in=CLOSING_KINDS) & models.Q(case__isnull=False)
                ),
                name="alert_email_case_by_kind",
            ),
            # The address is stored as written to, lower case, so one address is one row.
            models.CheckConstraint(
                condition=models.Q(recipient=Lower("recipient")),
                name="alert_email_recipient_lower",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.recipient}"
