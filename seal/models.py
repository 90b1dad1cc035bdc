"""The trust seal (selo de confiança, after B3's seal for the electricity market).

- ``Criterion``: one measure of the rule (line of action, measure, points — negative for the
  discrepancy —, mandatory, how it is evidenced). Its content never changes (a database
  trigger refuses it); staff retire a criterion and add another instead.
- ``CatalogueVersion``: the set of criteria in force, numbered; every addition or retirement
  makes a new version. An evaluation keeps the version it used, so a retired criterion leaves
  older evaluations as they were.
- ``Cycle``: a seal cycle (the period evaluated and the response period's length); its
  creation is logged (``cycle_created``).
- ``Evaluation``: an agent in a cycle, draft → under_review → notified → published. The
  response period ends ``response_ends_at``; publication before it is refused by the service
  and by a constraint.
- ``EvaluationItem``: per criterion of the version, the decision (staff's or derived from the
  platform's records, with the record ids), comments and the points it gave.
- ``Evidence``: a file an agent's user uploaded for an item (PDF or XLSX, type from content),
  stored in the database with its SHA-256. ``AgentResponse``: an agent's answer.
- ``AdherenceResult``: the enclave's signed risk-adherence answer, verified again when read.
- ``DecisionLog``: append-only, who did what and when.
"""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from prudencial.models import Agent, Week
from prudencial.submissions.models import SHA256_HEX, AppendOnly, Submission


class EvidenceKind(models.TextChoices):
    DOCUMENT = "document", _("Documento enviado pelo agente")
    PLATFORM = "platform", _("Registros da plataforma")
    ATTESTATION = "attestation", _("Atestado pela equipe")


class EvaluationState(models.TextChoices):
    DRAFT = "draft", _("Rascunho")
    UNDER_REVIEW = "under_review", _("Em análise")
    NOTIFIED = "notified", _("Notificada (prazo de resposta)")
    PUBLISHED = "published", _("Publicada")


class Decision(models.TextChoices):
    PENDING = "pending", _("Pendente")
    ACHIEVED = "achieved", _("Verificada")  # the measure holds (for −15: a discrepancy found)
    NOT_ACHIEVED = "not_achieved", _("Não verificada")
    NOT_EVALUATED = "not_evaluated", _("Não avaliada (sem dados)")


class DecisionSource(models.TextChoices):
    STAFF = "staff", _("Equipe")
    PLATFORM = "platform", _("Registros da plataforma")


class Criterion(models.Model):
    """One measure of the seal's rule and its points."""

    code = models.SlugField(_("código"), max_length=40, unique=True)
    line_of_action = models.CharField(_("linha de ação"), max_length=200)
    measure = models.CharField(_("medida"), max_length=300)
    points = models.IntegerField(_("pontos"), help_text=_("Negativo para uma penalidade."))
    mandatory = models.BooleanField(_("obrigatória"), default=False)
    evidence_kind = models.CharField(
        _("como se comprova"), max_length=12, choices=EvidenceKind.choices
    )
    # "+5 (cada uma)": the points count once per unit (quarterly statements), up to max_units.
    max_units = models.PositiveSmallIntegerField(_("máximo de unidades"), default=1)
    # Measures of one group are tiers of one another: only the highest achieved counts.
    exclusive_group = models.SlugField(_("grupo exclusivo"), max_length=40, blank=True)
    # Which platform figure decides it (seal.evidence.DERIVATIONS), when evidence is platform.
    derivation = models.SlugField(_("derivação"), max_length=40, blank=True)
    position = models.PositiveSmallIntegerField(_("ordem"), default=0)
    created_at = models.DateTimeField(_("criado em"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("criado por"),
    )
    retired_at = models.DateTimeField(_("retirado em"), null=True, blank=True)
    retired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("retirado por"),
    )

    class Meta:
        verbose_name = _("critério")
        verbose_name_plural = _("critérios")
        ordering = ["position", "code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(evidence_kind__in=[k.value for k in EvidenceKind]),
                name="seal_criterion_evidence_kind_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(max_units__gte=1), name="seal_criterion_units_positive"
            ),
            # A mandatory measure is an obligation, not a penalty.
            models.CheckConstraint(
                condition=~models.Q(mandatory=True, points__lt=0),
                name="seal_criterion_mandatory_not_penalty",
            ),
            models.CheckConstraint(
                condition=~models.Q(evidence_kind="platform", derivation=""),
                name="seal_criterion_platform_has_derivation",
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="seal_criterion_never_deleted", operation=pgtrigger.Delete),
            pgtrigger.ReadOnly(
                name="seal_criterion_content_read_only",
                fields=[
                    "code",
                    "line_of_action",
                    "measure",
                    "points",
                    "mandatory",
                    "evidence_kind",
                    "max_units",
                    "exclusive_group",
                    "derivation",
                    "created_at",
                ],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.measure} ({self.points:+d})"


class CatalogueVersion(models.Model):
    """The criteria in force from ``created_at`` on; ``missed_mandatory_points`` is what each
    missed mandatory measure costs (−10 in the rule)."""

    number = models.PositiveIntegerField(_("versão"), unique=True)
    criteria = models.ManyToManyField(
        Criterion, related_name="versions", verbose_name=_("critérios")
    )
    missed_mandatory_points = models.IntegerField(
        _("pontos por medida obrigatória não cumprida"), default=-10
    )
    note = models.TextField(_("o que mudou"), blank=True)
    created_at = models.DateTimeField(_("criada em"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("criada por"),
    )

    class Meta:
        verbose_name = _("versão do catálogo")
        verbose_name_plural = _("versões do catálogo")
        ordering = ["-number"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(missed_mandatory_points__lte=0),
                name="seal_catalogue_missed_mandatory_not_positive",
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="seal_catalogue_never_deleted", operation=pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"v{self.number}"


class Cycle(models.Model):
    """A seal cycle: the period whose records are evaluated."""

    code = models.SlugField(_("código"), max_length=20, unique=True)
    starts_on = models.DateField(_("início do período avaliado"))
    ends_on = models.DateField(_("fim do período avaliado"))
    response_days = models.PositiveSmallIntegerField(_("prazo de resposta (dias)"))
    created_at = models.DateTimeField(_("criado em"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("criado por"),
    )

    class Meta:
        verbose_name = _("ciclo do selo")
        verbose_name_plural = _("ciclos do selo")
        ordering = ["-starts_on"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(starts_on__lte=models.F("ends_on")),
                name="seal_cycle_period_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(response_days__gte=1), name="seal_cycle_response_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.code


class Evaluation(models.Model):
    """An agent's evaluation in a cycle."""

    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="seal_evaluations", verbose_name=_("agente")
    )
    cycle = models.ForeignKey(
        Cycle, on_delete=models.PROTECT, related_name="evaluations", verbose_name=_("ciclo")
    )
    catalogue_version = models.ForeignKey(
        CatalogueVersion,
        on_delete=models.PROTECT,
        related_name="evaluations",
        verbose_name=_("versão do catálogo"),
    )
    state = models.CharField(
        _("situação"),
        max_length=12,
        choices=EvaluationState.choices,
        default=EvaluationState.DRAFT,
    )
    total = models.IntegerField(_("pontuação total"), null=True, blank=True)
    level = models.PositiveSmallIntegerField(_("nível"), null=True, blank=True)
    breakdown = models.JSONField(_("composição da pontuação"), default=dict, blank=True)
    scored_at = models.DateTimeField(_("pontuada em"), null=True, blank=True)
    notified_at = models.DateTimeField(_("notificada em"), null=True, blank=True)
    response_ends_at = models.DateTimeField(_("fim do prazo de resposta"), null=True, blank=True)
    published_at = models.DateTimeField(_("publicada em"), null=True, blank=True)
    created_at = models.DateTimeField(_("criada em"), default=timezone.now)

    class Meta:
        verbose_name = _("avaliação do selo")
        verbose_name_plural = _("avaliações do selo")
        ordering = ["cycle", "agent__acronym"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "cycle"], name="seal_evaluation_once"),
            models.CheckConstraint(
                condition=models.Q(state__in=[s.value for s in EvaluationState]),
                name="seal_evaluation_state_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(level__isnull=True) | models.Q(level__in=[1, 2, 3]),
                name="seal_evaluation_level_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(state__in=["notified", "published"])
                | models.Q(
                    notified_at__isnull=False,
                    response_ends_at__isnull=False,
                    level__isnull=False,
                ),
                name="seal_evaluation_notified_scored",
            ),
            # No publication before the response period ends.
            models.CheckConstraint(
                condition=~models.Q(state="published")
                | models.Q(published_at__gte=models.F("response_ends_at")),
                name="seal_evaluation_published_after_response",
            ),
        ]
        indexes = [models.Index(fields=["state", "published_at"])]
        # Publishing makes a level public: a permission of its own beyond change_evaluation.
        permissions = [("publish_evaluation", _("Pode publicar avaliações do selo"))]

    def __str__(self) -> str:
        return f"{self.cycle_id}/{self.agent_id} ({self.state})"


class EvaluationItem(models.Model):
    """One criterion of an evaluation: its decision, evidence and points."""

    evaluation = models.ForeignKey(
        Evaluation, on_delete=models.CASCADE, related_name="items", verbose_name=_("avaliação")
    )
    criterion = models.ForeignKey(
        Criterion, on_delete=models.PROTECT, related_name="+", verbose_name=_("critério")
    )
    decision = models.CharField(
        _("decisão"), max_length=14, choices=Decision.choices, default=Decision.PENDING
    )
    decision_source = models.CharField(
        _("origem da decisão"), max_length=10, choices=DecisionSource.choices, blank=True
    )
    units = models.PositiveSmallIntegerField(_("unidades"), default=1)
    comment = models.TextField(_("comentários da equipe"), blank=True)
    # The platform's figures and the ids of the records they came from (seal.evidence).
    derived = models.JSONField(_("evidência derivada"), default=dict, blank=True)
    points_awarded = models.IntegerField(_("pontos atribuídos"), default=0)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decidido por"),
    )
    decided_at = models.DateTimeField(_("decidido em"), null=True, blank=True)

    class Meta:
        verbose_name = _("item da avaliação")
        verbose_name_plural = _("itens da avaliação")
        ordering = ["evaluation", "criterion__position"]
        constraints = [
            models.UniqueConstraint(
                fields=["evaluation", "criterion"], name="seal_item_once_per_criterion"
            ),
            models.CheckConstraint(
                condition=models.Q(decision__in=[d.value for d in Decision]),
                name="seal_item_decision_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.evaluation_id}/{self.criterion.code}: {self.decision}"


class EvidenceType(models.TextChoices):
    PDF = "pdf", "PDF"
    XLSX = "xlsx", "XLSX"


class Evidence(AppendOnly):
    """A file uploaded for an item. Its type is the one found in its content."""

    item = models.ForeignKey(
        EvaluationItem, on_delete=models.PROTECT, related_name="evidence", verbose_name=_("item")
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("enviado por"),
    )
    uploaded_at = models.DateTimeField(_("enviado em"), default=timezone.now)
    file_name = models.CharField(_("nome do arquivo"), max_length=200)
    file_type = models.CharField(
        _("tipo (pelo conteúdo)"), max_length=8, choices=EvidenceType.choices
    )
    size_bytes = models.PositiveIntegerField(_("tamanho (bytes)"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    content = models.BinaryField(_("conteúdo"))

    class Meta:
        verbose_name = _("evidência")
        verbose_name_plural = _("evidências")
        ordering = ["-uploaded_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sha256__regex=SHA256_HEX), name="seal_evidence_sha256"
            ),
            models.CheckConstraint(
                condition=models.Q(size_bytes__gt=0), name="seal_evidence_size_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(file_type__in=[t.value for t in EvidenceType]),
                name="seal_evidence_type_valid",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="seal_evidence_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.file_type}, {self.sha256[:12]})"


class AgentResponse(AppendOnly):
    """An agent's user's answer to its evaluation, during the response period."""

    evaluation = models.ForeignKey(
        Evaluation, on_delete=models.PROTECT, related_name="responses", verbose_name=_("avaliação")
    )
    item = models.ForeignKey(
        EvaluationItem,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="responses",
        verbose_name=_("item"),
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("autor"),
    )
    text = models.TextField(_("resposta"))
    created_at = models.DateTimeField(_("enviada em"), default=timezone.now)

    class Meta:
        verbose_name = _("resposta do agente")
        verbose_name_plural = _("respostas do agente")
        ordering = ["created_at"]
        triggers = [
            pgtrigger.Protect(
                name="seal_response_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"{self.evaluation_id}: {self.author_id} {self.created_at:%Y-%m-%d}"


class AdherenceStatus(models.TextChoices):
    ADHERENT = "adherent", _("Aderente")
    NOT_ADHERENT = "not_adherent", _("Não aderente")
    REJECTED = "rejected", _("Portfólio recusado pelo enclave")


class AdherenceResult(AppendOnly):
    """The enclave's signed answer to `adherence` for an evaluation (the latest one counts).
    ``args`` is the request without the envelope (the submission's own), so the digest the
    answer is bound to is recomputed when read."""

    evaluation = models.ForeignKey(
        Evaluation, on_delete=models.PROTECT, related_name="adherence", verbose_name=_("avaliação")
    )
    week = models.ForeignKey(
        Week, on_delete=models.PROTECT, related_name="+", verbose_name=_("semana")
    )
    submission = models.ForeignKey(
        Submission, on_delete=models.PROTECT, related_name="+", verbose_name=_("portfólio")
    )
    status = models.CharField(_("resultado"), max_length=14, choices=AdherenceStatus.choices)
    margin = models.FloatField(_("margem (fração do PLA)"), null=True, blank=True)
    limit = models.FloatField(_("limite (fração do PLA)"))
    token = models.TextField(_("resposta assinada (JWS)"))
    args = models.JSONField(_("argumentos (sem o envelope)"), default=dict)
    args_sha256 = models.CharField(_("SHA-256 dos argumentos"), max_length=64)
    request_id = models.CharField(_("id da requisição ao enclave"), max_length=64)
    nonce = models.CharField(_("nonce (base64url)"), max_length=128)
    signing_kid = models.CharField(_("kid da assinatura"), max_length=128)
    computed_at = models.DateTimeField(_("calculado em"), default=timezone.now)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("pedido por"),
    )

    class Meta:
        verbose_name = _("aderência ao risco")
        verbose_name_plural = _("aderências ao risco")
        ordering = ["-computed_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in AdherenceStatus]),
                name="seal_adherence_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(args_sha256__regex=SHA256_HEX), name="seal_adherence_sha256"
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="seal_adherence_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"{self.evaluation_id}: {self.status}"


class DecisionAction(models.TextChoices):
    CREATED = "created", _("Avaliação criada")
    DERIVED = "derived", _("Evidência derivada dos registros")
    ITEM_DECIDED = "item_decided", _("Decisão sobre um critério")
    SCORED = "scored", _("Pontuação calculada")
    STATE = "state", _("Mudança de situação")
    RESPONSE = "response", _("Resposta do agente")
    EVIDENCE = "evidence", _("Evidência enviada")
    ADHERENCE = "adherence", _("Aderência ao risco calculada")
    CRITERION_ADDED = "criterion_added", _("Critério incluído")
    CRITERION_RETIRED = "criterion_retired", _("Critério retirado")
    CYCLE_CREATED = "cycle_created", _("Ciclo criado")


class DecisionLog(AppendOnly):
    """Who did what, when (append-only). ``details`` never holds a confidential figure."""

    evaluation = models.ForeignKey(
        Evaluation,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="log",
        verbose_name=_("avaliação"),
    )
    action = models.CharField(_("ação"), max_length=20, choices=DecisionAction.choices)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("por"),
    )
    at = models.DateTimeField(_("em"), default=timezone.now)
    details = models.JSONField(_("detalhes"), default=dict, blank=True)

    class Meta:
        verbose_name = _("registro de decisão")
        verbose_name_plural = _("registros de decisões")
        ordering = ["-at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action__in=[a.value for a in DecisionAction]),
                name="seal_log_action_valid",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="seal_log_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action}"
