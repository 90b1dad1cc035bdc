"""Writes of the seal: the catalogue, cycles, evaluations and their moves, decisions, the
agents' answers and evidence, scores and the risk adherence. Every write is one transaction
and leaves a ``DecisionLog`` row naming who and when.

States: draft → under_review → notified → published (and under_review → draft to reopen).
Notifying needs a complete score and starts the response period (the cycle's
``response_days``); publishing is refused before the period ends (here and by a constraint).
The agents' users answer and upload while the evaluation is a draft (gathering evidence) or
within the response period.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enclave_bridge import gateway
from enclave_bridge.wire.protocol import b64url
from prudencial import selectors as registry_selectors
from prudencial.models import Agent, User, Week
from prudencial.services.parameters import parameters_payload
from prudencial.submissions.models import Kind, Submission
from prudencial.submissions.selectors import VerdictChecker, current_submissions
from seal import conf, filetypes, scoring
from seal.evidence import DERIVATIONS, Records
from seal.models import (
    AdherenceResult,
    AgentResponse,
    CatalogueVersion,
    Criterion,
    Cycle,
    Decision,
    DecisionAction,
    DecisionLog,
    DecisionSource,
    Evaluation,
    EvaluationItem,
    EvaluationState,
    Evidence,
    EvidenceKind,
)

S = EvaluationState
TRANSITIONS = {
    S.DRAFT: {S.UNDER_REVIEW},
    S.UNDER_REVIEW: {S.NOTIFIED, S.DRAFT},
    S.NOTIFIED: {S.PUBLISHED},
    S.PUBLISHED: set(),
}
#: States in which staff may still change decisions (the response period may change them).
DECIDABLE = (S.DRAFT, S.UNDER_REVIEW, S.NOTIFIED)
RESPONSE_MAX_CHARS = 5_000
ADHERENCE_WEEKS_SEARCHED = 60


class SealRefused(Exception):
    """A refusal: ``code`` says which rule, ``field`` which input; ``message`` in pt-BR."""

    code = "refused"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotPermitted(SealRefused):
    code = "not_found"  # answered as 404: the agent's existence is not disclosed


class WrongState(SealRefused):
    code = "wrong_state"


class Invalid(SealRefused):
    code = "invalid"


class FileTooLarge(SealRefused):
    code = "too_large"


class FileTypeRefused(SealRefused):
    code = "unsupported_type"


class AdherenceUnavailable(SealRefused):
    code = "adherence_unavailable"


def _log(
    action: str, *, by: User | None, evaluation: Evaluation | None = None, **details: Any
) -> DecisionLog:
    return DecisionLog.objects.create(evaluation=evaluation, action=action, by=by, details=details)


# --- catalogue -----------------------------------------------------------------------------------


def catalogue_current() -> CatalogueVersion:
    """The catalogue in force (the highest version number)."""
    version = CatalogueVersion.objects.order_by("-number").first()
    if version is None:
        raise Invalid(_("Não há catálogo de critérios (rode as migrações do selo)."))
    return version


def _new_version(*, criteria, by: User | None, note: str) -> CatalogueVersion:
    current = catalogue_current()
    version = CatalogueVersion.objects.create(
        number=current.number + 1,
        missed_mandatory_points=current.missed_mandatory_points,
        note=note,
        created_by=by,
    )
    version.criteria.set(criteria)
    return version


@transaction.atomic
def criterion_add(*, by: User | None, **fields: Any) -> Criterion:
    """A new criterion, in a new catalogue version holding the current ones plus it."""
    if (
        fields.get("evidence_kind") == EvidenceKind.PLATFORM
        and fields.get("derivation") not in DERIVATIONS
    ):
        raise Invalid(
            _("Um critério dos registros da plataforma precisa de uma derivação conhecida: %(d)s.")
            % {"d": ", ".join(DERIVATIONS)},
            field="derivation",
        )
    if Criterion.objects.filter(code=fields.get("code")).exists():
        raise Invalid(_("Já existe um critério com este código."), field="code")
    criterion = Criterion.objects.create(created_by=by, **fields)
    current = catalogue_current()
    version = _new_version(
        criteria=[*current.criteria.all(), criterion], by=by, note=f"+ {criterion.code}"
    )
    _log(DecisionAction.CRITERION_ADDED, by=by, criterion=criterion.code, version=version.number)
    return criterion


@transaction.atomic
def criterion_retire(*, criterion: Criterion, by: User | None) -> CatalogueVersion:
    """Retire a criterion: a new catalogue version without it. Evaluations that used an older
    version keep it, with their items and points."""
    criterion = Criterion.objects.select_for_update().get(pk=criterion.pk)
    if criterion.retired_at is not None:
        raise WrongState(_("O critério já foi retirado."), field="criterion")
    criterion.retired_at = timezone.now()
    criterion.retired_by = by
    criterion.save(update_fields=["retired_at", "retired_by"])
    current = catalogue_current()
    version = _new_version(
        criteria=current.criteria.exclude(pk=criterion.pk), by=by, note=f"- {criterion.code}"
    )
    _log(DecisionAction.CRITERION_RETIRED, by=by, criterion=criterion.code, version=version.number)
    return version


# --- cycles and evaluations ----------------------------------------------------------------------


@transaction.atomic
def cycle_create(
    *, code: str, starts_on, ends_on, response_days: int | None = None, by: User | None = None
) -> Cycle:
    """A cycle; ``response_days`` None takes SEAL_RESPONSE_DAYS (a week). Logged with who."""
    if starts_on > ends_on:
        raise Invalid(_("O início do período deve ser anterior ao fim."), field="ends_on")
    if response_days is None:
        response_days = conf.response_days()
    if response_days < 1:
        raise Invalid(_("O prazo de resposta deve ser de pelo menos 1 dia."), field="response_days")
    if Cycle.objects.filter(code=code).exists():
        raise Invalid(_("Já existe um ciclo com este código."), field="code")
    cycle = Cycle.objects.create(
        code=code,
        starts_on=starts_on,
        ends_on=ends_on,
        response_days=response_days,
        created_by=by,
    )
    _log(
        DecisionAction.CYCLE_CREATED,
        by=by,
        cycle=cycle.code,
        starts_on=starts_on.isoformat(),
        ends_on=ends_on.isoformat(),
        response_days=response_days,
    )
    return cycle


def cycle_response_days_locked(cycle: Cycle) -> bool:
    """Once an evaluation of the cycle was notified its response period is running (or over):
    the cycle's ``response_days`` no longer changes."""
    return cycle.evaluations.filter(notified_at__isnull=False).exists()


@transaction.atomic
def evaluation_create(*, agent: Agent, cycle: Cycle, by: User | None = None) -> Evaluation:
    """A draft evaluation with one item per criterion of the catalogue in force, and the
    platform's evidence derived at once."""
    if Evaluation.objects.filter(agent=agent, cycle=cycle).exists():
        raise Invalid(_("O agente já tem avaliação neste ciclo."), field="agent")
    version = catalogue_current()
    evaluation = Evaluation.objects.create(agent=agent, cycle=cycle, catalogue_version=version)
    EvaluationItem.objects.bulk_create(
        EvaluationItem(evaluation=evaluation, criterion=c) for c in version.criteria.all()
    )
    _log(DecisionAction.CREATED, by=by, evaluation=evaluation, version=version.number)
    evaluation_derive(evaluation=evaluation, by=by)
    return evaluation


def _locked(evaluation: Evaluation) -> Evaluation:
    return (
        Evaluation.objects.select_for_update()
        .select_related("cycle", "agent")
        .get(pk=evaluation.pk)
    )


def _require_state(evaluation: Evaluation, states, action: str) -> None:
    if evaluation.state not in states:
        raise WrongState(
            _("Não é possível %(action)s uma avaliação na situação %(state)s.")
            % {"action": action, "state": evaluation.get_state_display()},
            field="state",
        )


@transaction.atomic
def evaluation_derive(*, evaluation: Evaluation, by: User | None = None) -> Evaluation:
    """Derive the platform's evidence again (decisions of platform criteria, with the ids of
    the records): staff run it after new weeks close; a staff override is kept."""
    evaluation = _locked(evaluation)
    _require_state(evaluation, (S.DRAFT, S.UNDER_REVIEW), _("derivar evidências de"))
    items = list(
        evaluation.items.select_related("criterion").filter(
            criterion__evidence_kind=EvidenceKind.PLATFORM
        )
    )
    if not items:
        return evaluation
    records = Records(evaluation)
    now = timezone.now()
    changed = []
    for item in items:
        decision, figures = DERIVATIONS[item.criterion.derivation](records)
        item.derived = figures
        if item.decision_source != DecisionSource.STAFF:
            item.decision = decision or Decision.PENDING
            item.decision_source = DecisionSource.PLATFORM if decision else ""
            item.decided_at = now if decision else None
            item.decided_by = None
        item.save(
            update_fields=["derived", "decision", "decision_source", "decided_at", "decided_by"]
        )
        changed.append({"criterion": item.criterion.code, "decision": item.decision})
    _log(DecisionAction.DERIVED, by=by, evaluation=evaluation, items=changed)
    return evaluation


@transaction.atomic
def item_decide(
    *,
    item: EvaluationItem,
    decision: str,
    by: User,
    units: int | None = None,
    comment: str | None = None,
) -> EvaluationItem:
    """Staff's decision on one criterion (overrides a derived one; logged with the before)."""
    evaluation = _locked(item.evaluation)
    _require_state(evaluation, DECIDABLE, _("decidir critérios de"))
    item = EvaluationItem.objects.select_related("criterion").get(pk=item.pk)
    criterion = item.criterion
    if decision not in Decision.values:
        raise Invalid(_("Decisão desconhecida."), field="decision")
    if decision == Decision.NOT_EVALUATED and criterion.mandatory:
        raise Invalid(
            _("Uma medida obrigatória deve ser decidida: verificada ou não verificada."),
            field="decision",
        )
    units = item.units if units is None else units
    if not 1 <= units <= criterion.max_units:
        raise Invalid(
            _("Unidades devem ir de 1 a %(max)s.") % {"max": criterion.max_units}, field="units"
        )
    before = {"decision": item.decision, "units": item.units, "source": item.decision_source}
    item.decision = decision
    item.units = units
    if comment is not None:
        item.comment = comment
    item.decision_source = DecisionSource.STAFF
    item.decided_by = by
    item.decided_at = timezone.now()
    item.save()
    _log(
        DecisionAction.ITEM_DECIDED,
        by=by,
        evaluation=evaluation,
        criterion=criterion.code,
        before=before,
        after={"decision": decision, "units": units},
        comment=item.comment,
    )
    if evaluation.state == S.NOTIFIED:
        _score(evaluation, by=by)
    return item


def _score(evaluation: Evaluation, *, by: User | None) -> scoring.Score:
    items = list(evaluation.items.select_related("criterion"))
    result = scoring.score(
        [
            scoring.ItemInput(
                code=i.criterion.code,
                points=i.criterion.points,
                mandatory=i.criterion.mandatory,
                decision=i.decision,
                units=i.units,
                max_units=i.criterion.max_units,
                exclusive_group=i.criterion.exclusive_group,
            )
            for i in items
        ],
        cutoffs=conf.level_cutoffs(),
        missed_mandatory_points=evaluation.catalogue_version.missed_mandatory_points,
    )
    by_code = {row["code"]: row for row in result.items}
    for item in items:
        row = by_code[item.criterion.code]
        row["item"] = item.pk
        row["evidence"] = list(item.evidence.values_list("pk", flat=True))
        row["derived_from"] = _record_ids(item.derived)
        awarded = row["awarded"] + row["penalty"]
        if item.points_awarded != awarded:
            item.points_awarded = awarded
            item.save(update_fields=["points_awarded"])
    evaluation.total = result.total
    evaluation.level = result.level
    evaluation.breakdown = {
        **result.as_breakdown(),
        "catalogue_version": evaluation.catalogue_version.number,
    }
    evaluation.scored_at = timezone.now()
    evaluation.save(update_fields=["total", "level", "breakdown", "scored_at"])
    _log(
        DecisionAction.SCORED,
        by=by,
        evaluation=evaluation,
        total=result.total,
        level=result.level,
        complete=result.complete,
    )
    return result


def _record_ids(derived: dict[str, Any]) -> dict[str, Any]:
    """The record ids a derived figure came from (submissions by week or by channel)."""
    if not derived:
        return {}
    if derived.get("records"):
        return {"submissions": [r["submission"] for r in derived["records"] if r.get("submission")]}
    if derived.get("by_channel"):
        return {"submissions_by_channel": derived["by_channel"]}
    return {}


@transaction.atomic
def evaluation_score(*, evaluation: Evaluation, by: User | None = None) -> scoring.Score:
    """Score the evaluation now and store the breakdown with it."""
    evaluation = _locked(evaluation)
    _require_state(evaluation, DECIDABLE, _("pontuar"))
    try:
        return _score(evaluation, by=by)
    except scoring.ScoringError as exc:
        raise Invalid(exc.message, field=exc.field) from None


@transaction.atomic
def evaluation_transition(
    *, evaluation: Evaluation, to: str, by: User | None, now: datetime | None = None
) -> Evaluation:
    """Move an evaluation; every move is logged. Notifying scores it (all criteria decided)
    and opens the response period; publishing needs that period over."""
    now = now or timezone.now()
    evaluation = _locked(evaluation)
    before = evaluation.state
    if to not in TRANSITIONS.get(before, set()):
        raise WrongState(
            _("A avaliação não pode passar de %(before)s para %(to)s.")
            % {
                "before": evaluation.get_state_display(),
                "to": S(to).label if to in S.values else to,
            },
            field="state",
        )
    if to in (S.NOTIFIED, S.PUBLISHED):
        try:
            result = _score(evaluation, by=by)
        except scoring.ScoringError as exc:
            raise Invalid(exc.message, field=exc.field) from None
        if not result.complete:
            pending = [r["code"] for r in result.items if r["decision"] == Decision.PENDING]
            raise Invalid(
                _("Há critérios pendentes de decisão: %(codes)s.") % {"codes": ", ".join(pending)},
                field="items",
            )
    if to == S.NOTIFIED:
        evaluation.notified_at = now
        evaluation.response_ends_at = now + timedelta(days=evaluation.cycle.response_days)
    if to == S.PUBLISHED:
        if now < evaluation.response_ends_at:
            raise WrongState(
                _("O prazo de resposta do agente termina em %(end)s: publicação só depois dele.")
                % {
                    "end": timezone.localtime(evaluation.response_ends_at).strftime(
                        "%d/%m/%Y %H:%M"
                    )
                },
                field="response_ends_at",
            )
        evaluation.published_at = now
    evaluation.state = to
    evaluation.save()
    _log(DecisionAction.STATE, by=by, evaluation=evaluation, before=before, after=to)
    return evaluation


# --- the agents' side ----------------------------------------------------------------------------


def _agent_evaluation(user: User, evaluation_id: int) -> Evaluation:
    """The evaluation, if ``user`` may act for its agent (submit_agent_data); else NotPermitted."""
    permitted = registry_selectors.agent_list(user=user, permission="submit_agent_data")
    evaluation = (
        Evaluation.objects.select_for_update(of=("self",))
        .select_related("cycle", "agent")
        .filter(pk=evaluation_id, agent__in=permitted)
        .first()
    )
    if evaluation is None:
        raise NotPermitted(_("Avaliação não encontrada."))
    return evaluation


def _require_open_for_agent(evaluation: Evaluation, *, now: datetime, responding: bool) -> None:
    if evaluation.state == S.NOTIFIED and now < evaluation.response_ends_at:
        return
    if evaluation.state == S.DRAFT and not responding:
        return
    if evaluation.state == S.NOTIFIED:
        raise WrongState(_("O prazo de resposta terminou."), field="response_ends_at")
    raise WrongState(
        _("A avaliação não está aberta a respostas do agente (situação %(state)s).")
        % {"state": evaluation.get_state_display()},
        field="state",
    )


def _item_of(evaluation: Evaluation, criterion_code: str | None) -> EvaluationItem | None:
    if not criterion_code:
        return None
    item = (
        evaluation.items.select_related("criterion").filter(criterion__code=criterion_code).first()
    )
    if item is None:
        raise Invalid(
            _("A avaliação não tem o critério %(code)s.") % {"code": criterion_code[:40]},
            field="criterion",
        )
    return item


@transaction.atomic
def response_create(
    *, user: User, evaluation_id: int, text: str, criterion: str | None = None
) -> AgentResponse:
    """An agent's user answers its evaluation (on the whole or on one criterion), within the
    response period."""
    now = timezone.now()
    evaluation = _agent_evaluation(user, evaluation_id)
    _require_open_for_agent(evaluation, now=now, responding=True)
    text = (text or "").strip()
    if not text or len(text) > RESPONSE_MAX_CHARS:
        raise Invalid(
            _("A resposta deve ter de 1 a %(max)s caracteres.") % {"max": RESPONSE_MAX_CHARS},
            field="text",
        )
    item = _item_of(evaluation, criterion)
    response = AgentResponse.objects.create(
        evaluation=evaluation, item=item, author=user, text=text, created_at=now
    )
    _log(
        DecisionAction.RESPONSE,
        by=user,
        evaluation=evaluation,
        response=response.pk,
        criterion=item.criterion.code if item else None,
    )
    return response


@transaction.atomic
def evidence_upload(
    *, user: User, evaluation_id: int, criterion: str, file_name: str, content: bytes
) -> Evidence:
    """A document for a criterion evidenced by document (or attestation), its type checked
    from its content (seal.filetypes), stored with its SHA-256."""
    now = timezone.now()
    evaluation = _agent_evaluation(user, evaluation_id)
    _require_open_for_agent(evaluation, now=now, responding=False)
    item = _item_of(evaluation, criterion)
    if item is None:
        raise Invalid(_("Informe o critério."), field="criterion")
    if item.criterion.evidence_kind == EvidenceKind.PLATFORM:
        raise Invalid(
            _("Este critério é comprovado pelos registros da plataforma, não por documento."),
            field="criterion",
        )
    name = (file_name or "").replace("\\", "/").rsplit("/", 1)[-1][:200]
    max_members, max_uncompressed, max_ratio = conf.zip_limits()
    try:
        kind = filetypes.detect(
            content,
            name,
            max_bytes=conf.evidence_max_bytes(),
            max_members=max_members,
            max_uncompressed=max_uncompressed,
            max_ratio=max_ratio,
        )
    except filetypes.FileRefused as exc:
        refusal = FileTooLarge if exc.rule == "size" else FileTypeRefused
        raise refusal(FILE_RULES.get(exc.rule, exc.message), field="file") from None
    evidence = Evidence.objects.create(
        item=item,
        uploaded_by=user,
        uploaded_at=now,
        file_name=name,
        file_type=kind,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
    )
    _log(
        DecisionAction.EVIDENCE,
        by=user,
        evaluation=evaluation,
        criterion=item.criterion.code,
        evidence=evidence.pk,
        sha256=evidence.sha256,
        file_type=kind,
    )
    return evidence


FILE_RULES = {
    "empty": _("O arquivo está vazio."),
    "size": _("O arquivo é maior que o limite permitido."),
    "extension": _("O nome do arquivo deve terminar em .pdf ou .xlsx."),
    "content_type": _("O conteúdo do arquivo não é um PDF nem uma planilha XLSX."),
    "type_mismatch": _("O nome do arquivo não corresponde ao seu conteúdo (tipo declarado falso)."),
    "xlsx_structure": _("O arquivo não tem a estrutura de uma planilha XLSX."),
    "zip_members": _("A planilha XLSX tem entradas demais."),
    "zip_ratio": _("A planilha XLSX tem compressão anormal (possível bomba de zip)."),
    "zip_uncompressed": _("A planilha XLSX se expande além do limite (possível bomba de zip)."),
    "zip_names": _("A planilha XLSX tem nomes de entrada inválidos."),
}


# --- risk adherence ------------------------------------------------------------------------------


def latest_accepted_portfolio(agent: Agent, *, until) -> tuple[Week, Submission] | None:
    """The agent's latest accepted portfolio (verdict verified now) of a week that starts on
    or before ``until`` and has parameters, searching the latest weeks first."""
    checker = VerdictChecker()
    weeks = Week.objects.filter(operation_start__lte=until, parameters__isnull=False).order_by(
        "-code"
    )[:ADHERENCE_WEEKS_SEARCHED]
    for week in weeks:
        state = current_submissions(week=week, agent_ids=[agent.pk], checker=checker).get(
            (agent.pk, Kind.PORTFOLIO)
        )
        if state and state["is_current"]:
            return week, Submission.objects.get(pk=state["submission_id"])
    return None


def adherence_compute(*, evaluation: Evaluation, by: User | None = None) -> AdherenceResult:
    """Ask the enclave for the agent's risk adherence on its latest accepted portfolio (the
    week's stress scenarios, SEAL_ADHERENCE_LIMIT × PLA) and store the signed answer."""
    evaluation = Evaluation.objects.select_related("agent", "cycle").get(pk=evaluation.pk)
    found = latest_accepted_portfolio(evaluation.agent, until=evaluation.cycle.ends_on)
    if found is None:
        raise AdherenceUnavailable(
            _("O agente não tem portfólio aceito até o fim do ciclo: aderência não calculada."),
            field="portfolio",
        )
    week, submission = found
    agent = evaluation.agent
    signed = gateway.risk_adherence(
        envelope=submission.envelope,
        agent={"acronym": agent.acronym, "cnpj": agent.cnpj},
        week=week.code,
        parameters=parameters_payload(week.parameters),
        limit=conf.adherence_limit(),
    )
    result = signed.result
    with transaction.atomic():
        row = AdherenceResult.objects.create(
            evaluation=evaluation,
            week=week,
            submission=submission,
            status=result["status"],
            margin=result.get("margin"),
            limit=result["limit"],
            token=signed.token,
            args=signed.args,
            args_sha256=signed.args_sha256,
            request_id=signed.request_id,
            nonce=b64url(signed.nonce),
            signing_kid=signed.signing_kid,
            requested_by=by,
        )
        _log(
            DecisionAction.ADHERENCE,
            by=by,
            evaluation=evaluation,
            adherence=row.pk,
            week=week.code,
            submission=submission.pk,
            status=row.status,
        )
    return row
