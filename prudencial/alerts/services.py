"""Writes of the alerts: cases opened from a closing's results, their assignment, comments,
answers and closing decision, and the e-mails they send.

Idempotent by constraint, not by checks in code: a case is unique per (leverage_result, figure),
its "opened" event per (case, key), an e-mail per (case, recipient, kind) — so the task that
``closing_done`` enqueues may run twice, or be redelivered after a worker died, and still opens
one case and sends one e-mail per recipient. An e-mail row is claimed (locked) before the
message is handed to Django's e-mail backend and marked sent in the same transaction: a worker
killed between the hand-over and the commit re-sends that one message on the retry (at least
once, never silently dropped).

Nothing confidential is written: figures are ratios (FA, exposure / PLA); e-mails name the
agent, week, figure and band or limit, never the value (agents read it in the platform).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from prudencial.accounts.services import email_is_confirmed
from prudencial.alerts.models import (
    AlertEmail,
    Case,
    CaseEvent,
    CaseState,
    Decision,
    EmailKind,
    EventKind,
    Side,
    band_label,
)
from prudencial.closing.models import Closing, LeverageResult
from prudencial.domain import alerts as rules
from prudencial.exceptions import TransitionError
from prudencial.models import Agent, AgentUserObjectPermission, RiskParameters
from prudencial.services.parameters import alert_parameters
from prudencial.services.representations import effective_q
from prudencial.submissions.timefmt import BRASILIA

logger = logging.getLogger(__name__)

COMMENT_MAX_CHARS = 5000
#: The closing states whose results open cases: only a current, done closing's.
DONE = "done"
COMPUTED = "computed"


# --- parameters and deadlines ----------------------------------------------------------------


def closing_alert_parameters(closing: Closing) -> rules.AlertParameters:
    """The alert parameters of the version the closing used (``parameters_version``, the
    RiskParameters history id), else the week's current ones."""
    row = None
    version = getattr(closing, "parameters_version", None)
    if version:
        row = RiskParameters.history.filter(history_id=version).first()
    if row is None:
        row = RiskParameters.objects.get(week_id=closing.week_id)
    return alert_parameters(row)


def response_due(opened_at: datetime, days: int) -> datetime:
    """The end (23:59:59, Brasília) of the ``days``-th business day after the opening day."""
    day = rules.add_business_days(opened_at.astimezone(BRASILIA).date(), days)
    return datetime.combine(day, time(23, 59, 59), tzinfo=BRASILIA)


# --- recipients ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    address: str
    language: str


def _language(user) -> str:
    """The user's chosen language when the platform knows it (it keeps none per user today: the
    switcher is a cookie), else pt-BR."""
    chosen = getattr(user, "language", "") if user is not None else ""
    codes = {code for code, _name in settings.LANGUAGES}
    return chosen if chosen in codes else settings.LANGUAGE_CODE


def agent_recipients(agent: Agent) -> list[Recipient]:
    """The agent's users who hold ``view_agent`` through a representation in force today, are
    active and confirmed their e-mail address (an unconfirmed address may not be theirs)."""
    today = timezone.localdate()
    roles = [
        r for r, codes in settings.PRUDENCIAL_PERMISSIONS_BY_ROLE.items() if "view_agent" in codes
    ]
    user_ids = AgentUserObjectPermission.objects.filter(
        effective_q(today, prefix="content_object__representations__"),
        content_object=agent,
        permission__codename="view_agent",
        content_object__representations__user_id=F("user_id"),
        content_object__representations__role__in=roles,
    ).values("user_id")
    users = get_user_model().objects.filter(pk__in=user_ids, is_active=True).exclude(email="")
    return _unique(
        Recipient(u.email.strip().lower(), _language(u))
        for u in users.order_by("pk")
        if email_is_confirmed(u)
    )


def staff_recipients() -> list[Recipient]:
    """``ALERTS_STAFF_EMAILS`` when set; otherwise the active members of the staff group
    (``ALERTS_STAFF_GROUP``, "Equipe CCEE") with an address."""
    listed = [a.strip().lower() for a in settings.ALERTS_STAFF_EMAILS if a.strip()]
    if listed:
        return _unique(Recipient(a, settings.LANGUAGE_CODE) for a in listed)
    users = (
        get_user_model()
        .objects.filter(groups__name=settings.ALERTS_STAFF_GROUP, is_active=True, is_staff=True)
        .exclude(email="")
        .order_by("pk")
        .distinct()
    )
    return _unique(Recipient(u.email.strip().lower(), _language(u)) for u in users)


def _unique(recipients: Iterable[Recipient]) -> list[Recipient]:
    seen: dict[str, Recipient] = {}
    for r in recipients:
        seen.setdefault(r.address, r)
    return list(seen.values())


# --- e-mail ----------------------------------------------------------------------------------


def _site(path: str) -> str:
    base = getattr(settings, "ACCOUNTS_SITE_URL", "") or ""
    return base.rstrip("/") + path


def _case_message(case: Case, kind: str) -> tuple[str, str]:
    """Subject and body of a case's e-mail in the active language (no value, only the rule)."""
    figure = case.get_figure_display()
    if case.band:
        rule = _("faixa %(band)s (FA a partir de %(start)s)") % {
            "band": band_label(case.band),
            "start": _number(case.threshold),
        }
    else:
        rule = _("acima do limite de %(limit)s do PLA") % {"limit": _percent(case.threshold)}
    values = {
        "number": case.pk,
        "agent": case.agent.acronym,
        "week": case.week.code,
        "figure": figure,
        "rule": rule,
        "due": timezone.localtime(case.response_due, BRASILIA).strftime("%d/%m/%Y %H:%M"),
    }
    subject = _("Caso %(number)s: %(agent)s, semana %(week)s — %(figure)s") % values
    lines = [
        _(
            "O fechamento da semana %(week)s abriu o caso %(number)s para o agente %(agent)s: "
            "%(figure)s, %(rule)s."
        )
        % values,
        _("Prazo de resposta: %(due)s (horário de Brasília).") % values,
        "",
    ]
    if kind == EmailKind.CASE_AGENT:
        lines += [
            _("Veja o valor e responda pela plataforma:"),
            _site(reverse("api:case-comments", kwargs={"pk": case.pk})),
        ]
    else:
        lines += [
            _("Fila de casos:"),
            _site(reverse("admin:alerts_case_change", args=[case.pk])),
        ]
    lines += ["", _("Esta mensagem foi enviada automaticamente; não a responda.")]
    return " ".join(subject.split()), "\n".join(lines) + "\n"


def _closing_message(closing: Closing, subject: str, lines: list[str]) -> tuple[str, str]:
    """Subject and body of an e-mail about a closing itself: the lines, then its admin page."""
    lines = [
        *lines,
        "",
        _site(_admin_path("admin:closing_closing_change", closing.pk)),
        "",
        _("Esta mensagem foi enviada automaticamente; não a responda."),
    ]
    return " ".join(subject.split()), "\n".join(lines) + "\n"


def _delayed_message(closing: Closing) -> tuple[str, str]:
    values = {"week": closing.week.code, "sequence": closing.sequence}
    subject = _("Fechamento da semana %(week)s atrasado") % values
    lines = [
        _(
            "O fechamento %(sequence)s da semana %(week)s passou do prazo sem resposta do "
            "enclave e foi marcado como atrasado."
        )
        % values,
        _(
            "Nenhum valor foi estimado nem reaproveitado de semanas anteriores; a equipe pode "
            "aguardar o enclave ou escolher uma regra degradada documentada."
        ),
    ]
    return _closing_message(closing, subject, lines)


def _failed_message(closing: Closing) -> tuple[str, str]:
    values = {"week": closing.week.code, "sequence": closing.sequence}
    subject = _("Fechamento da semana %(week)s com falha") % values
    lines = [
        _("O fechamento %(sequence)s da semana %(week)s falhou e não continuará sozinho.") % values,
        f"{closing.error_code}: {closing.error_message}",
        "",
        _(
            "Corrija a causa e inicie o fechamento de novo: na lista de fechamentos, ação "
            "“Iniciar de novo (fechamento com falha)”, ou manage.py run_closing; nenhum valor "
            "foi publicado."
        ),
    ]
    return _closing_message(closing, subject, lines)


def _admin_path(name: str, pk: int) -> str:
    """The admin page of a row, or the admin's index while that model has no admin page."""
    try:
        return reverse(name, args=[pk])
    except NoReverseMatch:
        return reverse("admin:index")


def _number(value: float) -> str:
    return f"{value:g}".replace(".", ",") if translation.get_language() != "en" else f"{value:g}"


def _percent(value: float) -> str:
    text = f"{value * 100:g}"
    return (text if translation.get_language() == "en" else text.replace(".", ",")) + " %"


def _deliver(
    *,
    closing: Closing,
    case: Case | None,
    kind: str,
    recipient: Recipient,
    compose,
    occurrence: str = "",
) -> bool:
    """Send one e-mail once: claim the (case or closing, recipient, kind) row, send, mark sent.
    Returns whether this call sent it."""
    with transaction.atomic():
        row, _created = AlertEmail.objects.select_for_update().get_or_create(
            closing=closing,
            case=case,
            recipient=recipient.address,
            kind=kind,
            occurrence=occurrence,
            defaults={"language": recipient.language},
        )
        if row.sent_at is not None:
            return False
        with translation.override(row.language):
            subject, body = compose()
        send_mail(subject, body, None, [row.recipient])
        row.sent_at = timezone.now()
        row.save(update_fields=["sent_at"])
    return True


def case_emails_send(
    *,
    case: Case,
    agents: list[Recipient] | None = None,
    staff: list[Recipient] | None = None,
) -> int:
    """E-mail a case to the agent's users and to staff; each address once per kind.
    ``agents`` and ``staff`` are the recipients when the caller already looked them up."""
    sent = 0
    for kind, recipients in (
        (EmailKind.CASE_AGENT, agent_recipients(case.agent) if agents is None else agents),
        (EmailKind.CASE_STAFF, staff_recipients() if staff is None else staff),
    ):
        for recipient in recipients:
            sent += _deliver(
                closing=case.closing,
                case=case,
                kind=kind,
                recipient=recipient,
                compose=lambda kind=kind: _case_message(case, kind),
            )
    return sent


def _closing_staff_emails(
    closing: Closing, kind: str, compose, what: str, occurrence: datetime | None
) -> int:
    """One e-mail about the closing itself to each staff address, once per closing, kind,
    occurrence (when the closing entered that state) and address: a repeated signal or a
    retried task sends nothing more, a second failure after a restart is told again."""
    mark = occurrence.isoformat() if occurrence is not None else ""
    sent = sum(
        _deliver(
            closing=closing, case=None, kind=kind, recipient=r, compose=compose, occurrence=mark
        )
        for r in staff_recipients()
    )
    logger.info("closing %s %s: %s e-mails sent", closing.pk, what, sent)
    return sent


def closing_delayed_notify(*, closing_id: int) -> int:
    """E-mail staff that a closing is delayed, once per closing and address. A closing no
    longer delayed is left alone."""
    closing = Closing.objects.select_related("week").get(pk=closing_id)
    if closing.state != "delayed" and closing.delayed_at is None:
        logger.info("closing %s is not delayed: no e-mail", closing.pk)
        return 0
    return _closing_staff_emails(
        closing,
        EmailKind.CLOSING_DELAYED,
        lambda: _delayed_message(closing),
        "delayed",
        closing.delayed_at,
    )


def closing_failed_notify(*, closing_id: int) -> int:
    """E-mail staff that a closing failed and why (its error code and message, which carry no
    confidential content), once per closing and address. A closing no longer failed (started
    again meanwhile) is left alone."""
    closing = Closing.objects.select_related("week").get(pk=closing_id)
    if closing.state != "failed":
        logger.info("closing %s is not failed: no e-mail", closing.pk)
        return 0
    return _closing_staff_emails(
        closing,
        EmailKind.CLOSING_FAILED,
        lambda: _failed_message(closing),
        "failed",
        closing.updated_at,  # set when it moved to failed (a restart moves it again)
    )


# --- opening cases ---------------------------------------------------------------------------


def _figures(result: LeverageResult) -> dict[str, float | None]:
    return {figure: getattr(result, figure) for figure in rules.FIGURES}


def _open_case(
    *, result: LeverageResult, breach: rules.Breach, params, closing
) -> tuple[Case, bool]:
    opened_at = timezone.now()
    with transaction.atomic():
        case, created = Case.objects.get_or_create(
            leverage_result=result,
            figure=breach.figure,
            defaults={
                "agent_id": result.agent_id,
                "week_id": closing.week_id,
                "closing": closing,
                "value": breach.value,
                "band": breach.band,
                "threshold": breach.threshold,
                "opened_at": opened_at,
                "response_due": response_due(opened_at, params.case_response_days),
            },
        )
        if created:
            CaseEvent.objects.create(
                case=case, kind=EventKind.OPENED, side=Side.SYSTEM, key="opened", at=opened_at
            )
    return case, created


def _note_superseded(*, closing: Closing) -> int:
    """The cases of the closing this one supersedes stay as they are (their history is the
    record of what was decided on the figures then published), each with a note naming the
    correction; the correction's own breaches open new cases."""
    if not closing.supersedes_id:
        return 0
    noted = 0
    key = f"superseded:{closing.pk}"
    text = _(
        "Resultado substituído pela correção %(sequence)s do fechamento da semana %(week)s."
    ) % {
        "sequence": closing.sequence,
        "week": closing.week.code,
    }
    for case in Case.objects.filter(closing_id=closing.supersedes_id).exclude(events__key=key):
        with transaction.atomic():
            _event, created = CaseEvent.objects.get_or_create(
                case=case,
                key=key,
                defaults={"kind": EventKind.NOTE, "side": Side.SYSTEM, "text": text},
            )
        noted += created
    return noted


def cases_open_for_closing(*, closing_id: int) -> list[Case]:
    """Open the cases of a done, current closing's computed results and e-mail them.

    Only ``computed`` results count (no_fa, rejected, error and missing have no figure to
    judge); a closing that is not (or no longer) the week's current one opens nothing. Safe to
    run any number of times: existing cases are found, not duplicated, and e-mails already
    sent are not sent again (those a crash left unsent are sent now)."""
    closing = Closing.objects.select_related("week").get(pk=closing_id)
    if closing.state != DONE or not closing.is_current:
        logger.info(
            "closing %s is %s (current=%s): no cases", closing.pk, closing.state, closing.is_current
        )
        return []
    params = closing_alert_parameters(closing)
    results = (
        LeverageResult.objects.filter(closing=closing, status=COMPUTED)
        .select_related("agent")
        .order_by("pk")
    )
    cases: list[Case] = []
    created_count = 0
    for result in results.iterator(chunk_size=500):
        for breach in rules.breaches(_figures(result), params):
            case, created = _open_case(result=result, breach=breach, params=params, closing=closing)
            cases.append(case)
            created_count += created
    noted = _note_superseded(closing=closing)
    sent = 0
    staff = staff_recipients()
    by_agent: dict[int, list[Recipient]] = {}
    for case in Case.objects.filter(closing=closing).select_related("agent", "week", "closing"):
        if case.agent_id not in by_agent:
            by_agent[case.agent_id] = agent_recipients(case.agent)
        sent += case_emails_send(case=case, agents=by_agent[case.agent_id], staff=staff)
    logger.info(
        "closing %s: %s cases (%s new), %s superseded notes, %s e-mails sent",
        closing.pk,
        len(cases),
        created_count,
        noted,
        sent,
    )
    return cases


# --- staff and agents acting on a case ---------------------------------------------------------


def _locked(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


def _refuse_closed(case: Case) -> None:
    if case.state == CaseState.CLOSED:
        raise TransitionError(
            _("O caso %(number)s já foi encerrado: não aceita mais alterações.")
            % {"number": case.pk},
            code="case_closed",
        )


def _is_staff_member(user) -> bool:
    return bool(user is not None and user.is_active and user.is_staff)


@transaction.atomic
def case_assign(*, case: Case, assignee, by) -> Case:
    """Assign a case to a staff member (who must be active staff); history records who did."""
    case = _locked(case)
    _refuse_closed(case)
    if not _is_staff_member(assignee):
        raise ValidationError(
            {"assignee": _("O responsável deve ser um membro ativo da equipe CCEE.")},
            code="assignee_not_staff",
        )
    if case.assignee_id == assignee.pk:
        return case
    case.assignee = assignee
    case.save(update_fields=["assignee", "updated_at"])
    CaseEvent.objects.create(
        case=case, kind=EventKind.ASSIGNED, side=Side.STAFF, author=by, assignee=assignee
    )
    return case


def _text(text: str, field: str = "text") -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError({field: _("Escreva o texto.")}, code="required")
    if len(text) > COMMENT_MAX_CHARS:
        raise ValidationError(
            {field: _("O texto pode ter até %(n)s caracteres.") % {"n": COMMENT_MAX_CHARS}},
            code="too_long",
        )
    return text


@transaction.atomic
def case_comment(*, case: Case, by, text: str, side: str, answer: bool = False) -> CaseEvent:
    """A comment on a case by staff or by one of the agent's users (the caller decides the side
    from who may act: selectors.case_side). ``answer`` (agents only) is the agent's response:
    an open case becomes answered."""
    case = _locked(case)
    _refuse_closed(case)
    text = _text(text)
    if side not in (Side.STAFF, Side.AGENT):
        raise ValueError(f"unknown side {side!r}")
    if answer and side != Side.AGENT:
        raise ValidationError(
            {"answer": _("Só os usuários do agente respondem a um caso.")}, code="answer_not_agent"
        )
    kind = EventKind.ANSWERED if answer else EventKind.COMMENT
    event = CaseEvent.objects.create(case=case, kind=kind, side=side, author=by, text=text)
    if answer and case.state == CaseState.OPEN:
        case.state = CaseState.ANSWERED
        case.save(update_fields=["state", "updated_at"])
    return event


@transaction.atomic
def case_close(*, case: Case, by, decision: str, text: str) -> Case:
    """Close a case with a decision and its reasons (staff); final."""
    case = _locked(case)
    _refuse_closed(case)
    if decision not in Decision.values:
        raise ValidationError(
            {
                "decision": _("Escolha uma das decisões: %(allowed)s.")
                % {"allowed": ", ".join(Decision.values)}
            },
            code="decision_invalid",
        )
    text = _text(text, "decision_text")
    now = timezone.now()
    case.state = CaseState.CLOSED
    case.decision = decision
    case.decision_text = text
    case.decided_by = by
    case.decided_at = now
    case.save(
        update_fields=[
            "state",
            "decision",
            "decision_text",
            "decided_by",
            "decided_at",
            "updated_at",
        ]
    )
    CaseEvent.objects.create(
        case=case,
        kind=EventKind.CLOSED,
        side=Side.STAFF,
        author=by,
        text=text,
        at=now,
    )
    return case
