"""The weekly closing: what the host keeps of a week shipped to the enclave and its answers.

A closing (``Closing``) is one run of a week's computation: the week's accepted envelopes are
split into chunks (``ClosingChunk``) that the enclave answers one by one with a signed result
(JWS, kept with the arguments it is bound to so readers verify it again); each agent gets one
``LeverageResult`` per closing, filled from its chunk's answer; the network step's signed
answer is kept on the closing and its communities in ``CommunityResult``. A correction is a new
closing of the same week (``sequence`` ≥ 2) that supersedes the current one when it is done
(``CorrectionNotice`` says what changed, why, who). The host never holds plaintext values:
figures here are the ratios the enclave publishes (FA, shares); R$ amounts travel only inside
``breakdown_jwe``, encrypted to the agent's own reply key.

Invariants are database constraints: one closing per (week, sequence), one current closing per
week, one result per (closing, agent), one chunk per (closing, index), state values. Decisions
on a result (``LeverageDecision``) and trade network uploads with their verdicts are append-only
(pgtrigger ``Protect`` on PostgreSQL, ``AppendOnly`` in the model).
"""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from prudencial.domain.formats import MAX_TRADE_NETWORK_PARTS, TRADE_NETWORK_PART_SET_PATTERN
from prudencial.models import Agent, Week
from prudencial.submissions.models import SHA256_HEX, AppendOnly, Submission


class ClosingState(models.TextChoices):
    """pending → gathering → checking → network → storing → done; delayed (the enclave stayed
    unavailable past CLOSING_ENCLAVE_DELAY_MINUTES), failed, superseded (a correction is done)."""

    PENDING = "pending", _("Aguardando")
    GATHERING = "gathering", _("Reunindo envios")
    CHECKING = "checking", _("Calculando no enclave")
    NETWORK = "network", _("Modelo de rede")
    STORING = "storing", _("Gravando resultados")
    DONE = "done", _("Concluído")
    DELAYED = "delayed", _("Atrasado (enclave indisponível)")
    FAILED = "failed", _("Falhou")
    SUPERSEDED = "superseded", _("Substituído por correção")


# States in which a closing is still moving (beat resumes these when they stall).
ACTIVE_STATES = [
    ClosingState.PENDING,
    ClosingState.GATHERING,
    ClosingState.CHECKING,
    ClosingState.NETWORK,
    ClosingState.STORING,
]


class NetworkSource(models.TextChoices):
    TRADE_NETWORK = "trade_network", _("Rede de contratos enviada pela CCEE")
    COUNTERPARTIES = "counterparties", _("Contrapartes declaradas pelos agentes")
    NONE = "none", _("Sem modelo de rede")


class DegradedRule(models.TextChoices):
    """The documented degraded rules staff may choose for a delayed closing (never an
    estimate of an FA: a figure the enclave did not sign is never stored)."""

    WITHOUT_NETWORK = "without_network", _("Fechar sem o modelo de rede")


class Closing(models.Model):
    """One run of a week's closing (sequence 1) or a correction of it (sequence ≥ 2)."""

    week = models.ForeignKey(
        Week, on_delete=models.PROTECT, related_name="closings", verbose_name=_("semana")
    )
    sequence = models.PositiveIntegerField(_("sequência"), default=1)
    state = models.CharField(
        _("situação"), max_length=12, choices=ClosingState.choices, default=ClosingState.PENDING
    )
    is_current = models.BooleanField(_("vigente"), default=False)
    supersedes = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="superseded_by",
        verbose_name=_("substitui"),
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("iniciado por"),
        help_text=_("Vazio: iniciado pelo agendador (beat)."),
    )
    reason = models.TextField(_("motivo (correção)"), blank=True)
    parameters = models.JSONField(_("parâmetros públicos enviados"), default=dict, blank=True)
    parameters_sha256 = models.CharField(_("SHA-256 dos parâmetros"), max_length=64, blank=True)
    parameters_version = models.BigIntegerField(
        _("versão dos parâmetros (histórico)"), null=True, blank=True
    )
    network_options = models.JSONField(_("opções do modelo de rede"), default=dict, blank=True)
    network_source = models.CharField(
        _("fonte da rede"), max_length=16, choices=NetworkSource.choices, blank=True
    )
    agents_total = models.PositiveIntegerField(_("agentes (total)"), default=0)
    agents_done = models.PositiveIntegerField(_("agentes (calculados)"), default=0)
    # Seconds per stage: {gather, ship, compute, verify, store}.
    stage_times = models.JSONField(_("tempos por etapa (s)"), default=dict, blank=True)
    error_code = models.CharField(_("código do erro"), max_length=64, blank=True)
    error_message = models.TextField(_("mensagem do erro"), blank=True)
    # What the closing went on despite (e.g. CLOSING_UNVERIFIED_VERDICTS = "missing"):
    # [{code, message}], kept for the closing's life (errors are cleared when it is done).
    warnings = models.JSONField(_("avisos"), default=list, blank=True)
    delayed_at = models.DateTimeField(_("atrasado em"), null=True, blank=True)
    degraded_rule = models.CharField(
        _("regra degradada escolhida"), max_length=20, choices=DegradedRule.choices, blank=True
    )
    # The enclave's published network answer and what proves it.
    network = models.JSONField(_("resposta do modelo de rede"), default=dict, blank=True)
    network_token = models.TextField(_("resposta assinada da rede (JWS)"), blank=True)
    network_args = models.JSONField(_("argumentos da rede (sem partes)"), default=dict, blank=True)
    network_args_sha256 = models.CharField(
        _("SHA-256 dos argumentos da rede"), max_length=64, blank=True
    )
    network_signing_kid = models.CharField(
        _("kid da assinatura da rede"), max_length=128, blank=True
    )
    network_request_id = models.CharField(_("id da requisição da rede"), max_length=64, blank=True)
    network_nonce = models.CharField(_("nonce da rede (base64url)"), max_length=128, blank=True)
    # From the same signed network answer (re-verified on read): the systemic measures' closing
    # figures (per stress scenario DebtRank, Eisenberg–Noe, cover-2; the per-agent rows are on
    # LeverageResult.systemic), and last week's communities → this week's (links, flows,
    # events), or {"skipped": reason}. Empty: no network answer (or one from before them).
    systemic = models.JSONField(_("medidas sistêmicas"), default=dict, blank=True)
    tracking = models.JSONField(_("evolução das comunidades"), default=dict, blank=True)
    created_at = models.DateTimeField(_("criado em"), default=timezone.now)
    # updated_at: last touched (beat's resume bumps it, so a stalled step is sent once per
    # CLOSING_STALL_SECONDS); progress_at: last real progress (a state move, a chunk answered),
    # the clock of CLOSING_ENCLAVE_DELAY_MINUTES.
    updated_at = models.DateTimeField(_("atualizado em"), auto_now=True)
    progress_at = models.DateTimeField(_("último avanço em"), default=timezone.now)
    finished_at = models.DateTimeField(_("concluído em"), null=True, blank=True)

    class Meta:
        verbose_name = _("fechamento")
        verbose_name_plural = _("fechamentos")
        ordering = ["-week__code", "-sequence"]
        permissions = [
            ("run_closing", _("Pode iniciar, corrigir e degradar fechamentos")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["week", "sequence"], name="closing_week_sequence"),
            models.UniqueConstraint(
                fields=["week"],
                condition=models.Q(is_current=True),
                name="closing_one_current_per_week",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=[s.value for s in ClosingState]),
                name="closing_state_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(sequence__gte=1), name="closing_sequence_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(network_source__in=["", *[s.value for s in NetworkSource]]),
                name="closing_network_source_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(degraded_rule__in=["", *[r.value for r in DegradedRule]]),
                name="closing_degraded_rule_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(agents_done__lte=models.F("agents_total")),
                name="closing_progress_bounded",
            ),
            # Only a done closing is current.
            models.CheckConstraint(
                condition=models.Q(is_current=False) | models.Q(state="done"),
                name="closing_current_is_done",
            ),
            # A correction names what it supersedes and why; the original does neither.
            models.CheckConstraint(
                condition=models.Q(sequence=1, supersedes__isnull=True)
                | models.Q(sequence__gte=2, supersedes__isnull=False) & ~models.Q(reason=""),
                name="closing_correction_has_reason",
            ),
            models.CheckConstraint(
                condition=models.Q(parameters_sha256="")
                | models.Q(parameters_sha256__regex=SHA256_HEX),
                name="closing_parameters_sha256",
            ),
        ]
        indexes = [models.Index(fields=["state", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.week_id}#{self.sequence} ({self.state})"

    @property
    def reference(self) -> str:
        """The closing's name in the enclave's signed args and answers: week code-sequence
        (e.g. 202303001-1); readers check a chunk's answer names it."""
        return f"{self.week.code}-{self.sequence}"


class ChunkState(models.TextChoices):
    PENDING = "pending", _("Aguardando")
    DONE = "done", _("Concluído")
    FAILED = "failed", _("Falhou")


class ClosingChunk(models.Model):
    """A slice of a closing's agents sent to the enclave in one request, with its signed answer
    (``token`` over ``args`` through ``args_sha256``, verified again on read)."""

    closing = models.ForeignKey(
        Closing, on_delete=models.CASCADE, related_name="chunks", verbose_name=_("fechamento")
    )
    index = models.PositiveIntegerField(_("índice"))
    agent_ids = models.JSONField(_("agentes (ids)"), default=list)
    # The submissions pinned at gathering, one per agent of ``agent_ids`` in order:
    # [{"agent": id, "portfolio": submission id, "counterparties": submission id | null}], so a
    # re-run ships exactly the same envelopes (a verdict arriving later changes nothing).
    items = models.JSONField(_("envios fixados (ids)"), default=list)
    state = models.CharField(
        _("situação"), max_length=8, choices=ChunkState.choices, default=ChunkState.PENDING
    )
    address = models.CharField(_("enclave que respondeu"), max_length=200, blank=True)
    attempts = models.PositiveIntegerField(_("tentativas"), default=0)
    token = models.TextField(_("resposta assinada (JWS)"), blank=True)
    # The request's args as signed, without the envelopes (kept by their submissions).
    args = models.JSONField(_("argumentos (sem os envelopes)"), default=dict, blank=True)
    args_sha256 = models.CharField(_("SHA-256 dos argumentos"), max_length=64, blank=True)
    signing_kid = models.CharField(_("kid da assinatura"), max_length=128, blank=True)
    request_id = models.CharField(_("id da requisição ao enclave"), max_length=64, blank=True)
    nonce = models.CharField(_("nonce (base64url)"), max_length=128, blank=True)
    # Opaque JWE sealed to the enclave key ring: the chunk's input to the network step.
    network_part = models.TextField(_("parte da rede (JWE ao enclave)"), blank=True)
    error_code = models.CharField(_("código do erro"), max_length=64, blank=True)
    done_at = models.DateTimeField(_("concluído em"), null=True, blank=True)

    class Meta:
        verbose_name = _("parte do fechamento")
        verbose_name_plural = _("partes do fechamento")
        ordering = ["closing", "index"]
        constraints = [
            models.UniqueConstraint(fields=["closing", "index"], name="chunk_closing_index"),
            models.CheckConstraint(
                condition=models.Q(state__in=[s.value for s in ChunkState]),
                name="chunk_state_valid",
            ),
            # A done chunk has its signed answer.
            models.CheckConstraint(
                condition=~models.Q(state="done")
                | ~models.Q(token="")
                & models.Q(args_sha256__regex=SHA256_HEX)
                & models.Q(done_at__isnull=False),
                name="chunk_done_is_signed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.closing_id}/{self.index} ({self.state})"


class ResultStatus(models.TextChoices):
    COMPUTED = "computed", _("Calculado")
    NO_FA = "no_fa", _("Sem FA (sem base de cálculo)")
    REJECTED = "rejected", _("Envio recusado")
    ERROR = "error", _("Erro no cálculo")
    MISSING = "missing", _("Sem portfólio aceito")


class LeverageResult(models.Model):
    """One agent's figures in one closing, as the enclave signed them in its chunk's answer."""

    closing = models.ForeignKey(
        Closing, on_delete=models.CASCADE, related_name="results", verbose_name=_("fechamento")
    )
    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="leverage_results", verbose_name=_("agente")
    )
    chunk = models.ForeignKey(
        ClosingChunk,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="results",
        verbose_name=_("parte"),
    )
    portfolio_submission = models.ForeignKey(
        Submission,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("envio de portfólio"),
    )
    counterparties_submission = models.ForeignKey(
        Submission,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("envio de contrapartes"),
    )
    status = models.CharField(_("situação"), max_length=10, choices=ResultStatus.choices)
    fa = models.FloatField(_("FA"), null=True, blank=True)
    fa_risk = models.FloatField(_("FA de risco"), null=True, blank=True)
    res_fin_over_pla = models.FloatField(_("RES_FIN / PLA"), null=True, blank=True)
    var_share_by_bucket = models.JSONField(
        _("participação do VaR por bucket"), null=True, blank=True
    )
    concentration_largest = models.FloatField(_("maior contraparte"), null=True, blank=True)
    concentration_top_five = models.FloatField(_("cinco maiores"), null=True, blank=True)
    breakdown_jwe = models.TextField(_("detalhamento (JWE à chave do agente)"), blank=True)
    network = models.JSONField(_("indicadores de rede"), default=dict, blank=True)
    # The agent's systemic figures per stress scenario ({scenario: {debtrank_impact, …}}), from
    # the closing's signed network answer; shown under the same rule as ``network``.
    systemic = models.JSONField(_("medidas sistêmicas do agente"), default=dict, blank=True)
    error = models.JSONField(_("erro"), default=dict, blank=True)
    created_at = models.DateTimeField(_("criado em"), default=timezone.now)

    class Meta:
        verbose_name = _("resultado de alavancagem")
        verbose_name_plural = _("resultados de alavancagem")
        ordering = ["closing", "agent"]
        constraints = [
            models.UniqueConstraint(fields=["closing", "agent"], name="result_closing_agent"),
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in ResultStatus]),
                name="result_status_valid",
            ),
            # A missing agent sent nothing the enclave could see: no chunk, no figure.
            models.CheckConstraint(
                condition=~models.Q(status="missing")
                | models.Q(chunk__isnull=True, fa__isnull=True, fa_risk__isnull=True),
                name="result_missing_has_no_figures",
            ),
            models.CheckConstraint(
                condition=models.Q(status="computed") | models.Q(fa__isnull=True),
                name="result_fa_only_when_computed",
            ),
        ]
        indexes = [models.Index(fields=["agent", "closing"])]

    def __str__(self) -> str:
        return f"{self.closing_id}/{self.agent_id}: {self.status}"


class DecisionAction(models.TextChoices):
    SENT = "sent", _("Enviado")
    CANCELLED = "cancelled", _("Cancelado")


class LeverageDecision(AppendOnly):
    """The agent's decision on a result: send it to CCEE or cancel it (with a reason). The
    latest row is the current decision; a result without one is pending."""

    result = models.ForeignKey(
        LeverageResult,
        on_delete=models.PROTECT,
        related_name="decisions",
        verbose_name=_("resultado"),
    )
    action = models.CharField(_("ação"), max_length=10, choices=DecisionAction.choices)
    reason = models.TextField(_("motivo"), blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("por"),
    )
    at = models.DateTimeField(_("em"), default=timezone.now)

    class Meta:
        verbose_name = _("decisão sobre o resultado")
        verbose_name_plural = _("decisões sobre resultados")
        ordering = ["result", "-at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action__in=[a.value for a in DecisionAction]),
                name="decision_action_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(action="cancelled") | ~models.Q(reason=""),
                name="decision_cancel_has_reason",
            ),
            # A send is final: at most one per result (a repeated send returns the first).
            models.UniqueConstraint(
                fields=["result"],
                condition=models.Q(action="sent"),
                name="decision_one_sent_per_result",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="decision_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"{self.result_id}: {self.action}"


class CommunityResult(models.Model):
    """A community of the week's network as the enclave published it."""

    closing = models.ForeignKey(
        Closing, on_delete=models.CASCADE, related_name="communities", verbose_name=_("fechamento")
    )
    community = models.IntegerField(_("comunidade"))
    rank = models.PositiveIntegerField(_("posição"), null=True, blank=True)
    size = models.PositiveIntegerField(_("tamanho"), default=0)
    propagators = models.PositiveIntegerField(_("propagadores"), default=0)
    mean_cvar_intrinsic = models.FloatField(_("CVaR intrínseco médio"), null=True, blank=True)
    mean_cvar_propagated = models.FloatField(_("CVaR propagado médio"), null=True, blank=True)
    mean_cvar_total = models.FloatField(_("CVaR total médio"), null=True, blank=True)
    members = models.JSONField(_("membros (ids de agentes)"), default=list)
    # A lone agent without traded volume: not counted in K, ranked after the network's
    # communities (prudencial.risk.network).
    isolated = models.BooleanField(_("isolado (sem volume contratado)"), default=False)

    class Meta:
        verbose_name = _("comunidade")
        verbose_name_plural = _("comunidades")
        ordering = ["closing", "rank", "community"]
        constraints = [
            models.UniqueConstraint(
                fields=["closing", "community"], name="community_closing_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.closing_id}/{self.community}"


class CorrectionNotice(AppendOnly):
    """Why a closing was corrected, by whom, and what changed (parameters diff and submissions
    that changed since the superseded closing)."""

    closing = models.OneToOneField(
        Closing,
        on_delete=models.PROTECT,
        related_name="correction_notice",
        verbose_name=_("fechamento (correção)"),
    )
    supersedes = models.ForeignKey(
        Closing, on_delete=models.PROTECT, related_name="+", verbose_name=_("substitui")
    )
    # {"parameters": [{field, before, after}], "submissions": [{agent, kind, before, after}]}
    what_changed = models.JSONField(_("o que mudou"), default=dict)
    why = models.TextField(_("por quê"))
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("por")
    )
    at = models.DateTimeField(_("em"), default=timezone.now)

    class Meta:
        verbose_name = _("aviso de correção")
        verbose_name_plural = _("avisos de correção")
        constraints = [
            models.CheckConstraint(condition=~models.Q(why=""), name="correction_has_why"),
        ]
        triggers = [
            pgtrigger.Protect(
                name="correction_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"correção {self.closing_id} → {self.supersedes_id}"


class TradeNetworkStatus(models.TextChoices):
    ACCEPTED = "accepted", _("Aceita")
    REJECTED = "rejected", _("Recusada")
    ERROR = "error", _("Erro")


class TradeNetworkUpload(AppendOnly):
    """The CCEE's contracts of a week (``prudencial/contracts/v1``), as a JWE to the enclave.
    Its verdict is the OneToOne ``TradeNetworkVerdict`` (pending while there is none)."""

    week = models.ForeignKey(
        Week, on_delete=models.PROTECT, related_name="trade_networks", verbose_name=_("semana")
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("enviado por"),
    )
    envelope = models.TextField(_("envelope (JWE)"))
    receipt = models.CharField(_("recibo (SHA-256 do JWE)"), max_length=64)
    size_bytes = models.PositiveIntegerField(_("tamanho (bytes)"))
    submitted_at = models.DateTimeField(_("enviado em"), default=timezone.now)
    correction = models.BooleanField(_("para correção"), default=False)
    idempotency_key = models.CharField(_("Idempotency-Key"), max_length=200, blank=True)
    request_sha256 = models.CharField(_("SHA-256 da requisição"), max_length=64, blank=True)
    # A part of a trade network sent in parts (empty set: a whole network); the enclave's
    # verdict holds the document's own ``part`` to these (docs/closing.md, "Trade network").
    part_set = models.CharField(_("conjunto de partes"), max_length=64, blank=True, default="")
    part_index = models.PositiveSmallIntegerField(_("parte"), null=True, blank=True)
    part_count = models.PositiveSmallIntegerField(_("partes do conjunto"), null=True, blank=True)

    class Meta:
        verbose_name = _("rede de contratos")
        verbose_name_plural = _("redes de contratos")
        ordering = ["-submitted_at", "-id"]
        permissions = [
            ("submit_trade_network", _("Pode enviar a rede de contratos da semana")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(receipt__regex=SHA256_HEX), name="trade_network_receipt"
            ),
            models.CheckConstraint(
                condition=models.Q(size_bytes__gt=0), name="trade_network_size_positive"
            ),
            models.UniqueConstraint(
                fields=["submitted_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="trade_network_idempotency_unique",
            ),
            models.UniqueConstraint(
                fields=["week", "part_set", "part_index"],
                condition=~models.Q(part_set=""),
                name="trade_network_part_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(part_set="", part_index__isnull=True, part_count__isnull=True)
                | models.Q(
                    part_set__regex=TRADE_NETWORK_PART_SET_PATTERN,
                    part_index__gte=1,
                    part_count__lte=MAX_TRADE_NETWORK_PARTS,
                    part_index__lte=models.F("part_count"),
                ),
                name="trade_network_part_valid",
            ),
        ]
        indexes = [models.Index(fields=["week", "submitted_at"])]
        triggers = [
            pgtrigger.Protect(
                name="trade_network_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"rede {self.pk} ({self.week_id})"


class TradeNetworkVerdict(AppendOnly):
    """The enclave's signed verdict on an upload (``{status, errors, contracts}``), written once;
    an ``error`` without a token is the host's refusal (the envelope never opened)."""

    upload = models.OneToOneField(
        TradeNetworkUpload,
        on_delete=models.PROTECT,
        related_name="verdict",
        verbose_name=_("rede de contratos"),
    )
    status = models.CharField(_("situação"), max_length=10, choices=TradeNetworkStatus.choices)
    errors = models.JSONField(_("erros"), default=list, blank=True)
    contracts = models.PositiveIntegerField(_("contratos"), default=0)
    token = models.TextField(_("resposta assinada (JWS)"), blank=True)
    args = models.JSONField(_("argumentos (sem o envelope)"), default=dict, blank=True)
    args_sha256 = models.CharField(_("SHA-256 dos argumentos"), max_length=64, blank=True)
    signing_kid = models.CharField(_("kid da assinatura"), max_length=128, blank=True)
    request_id = models.CharField(_("id da requisição ao enclave"), max_length=64, blank=True)
    nonce = models.CharField(_("nonce (base64url)"), max_length=128, blank=True)
    verified_at = models.DateTimeField(_("verificado em"), default=timezone.now)

    class Meta:
        verbose_name = _("parecer da rede de contratos")
        verbose_name_plural = _("pareceres das redes de contratos")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in TradeNetworkStatus]),
                name="trade_network_verdict_status",
            ),
            # Only a signed answer can accept.
            models.CheckConstraint(
                condition=models.Q(status="error", token="")
                | ~models.Q(token="") & models.Q(args_sha256__regex=SHA256_HEX),
                name="trade_network_verdict_signed",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="trade_network_verdict_append_only",
                operation=pgtrigger.Update | pgtrigger.Delete,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.upload_id}: {self.status}"
