"""Writes of the weekly closing: its state machine, step by step (docs/closing.md).

    pending → gathering → checking → network → storing → done
                               ╲         ╲
                                delayed (enclave unavailable past CLOSING_ENCLAVE_DELAY_MINUTES)

Each step is a function the Celery tasks call with the closing's id (``prudencial.closing.
tasks``); each moves the state with a conditional UPDATE (``state=X → Y``), and each write is
guarded by a unique constraint (chunks, results, communities), so a repeated delivery of any
task, a worker killed in the middle or an enclave restarted finds its work done or does it
again with the same outcome. The enclave's answers are verified on receipt (the gateway's
client) and here against what was asked (week, closing, chunk, agents), stored with their JWS
and args so readers verify them again (``prudencial.closing.selectors``).

No figure is ever made up here: an agent without an accepted portfolio gets a ``missing``
result; an enclave that stays unavailable makes the closing ``delayed`` (and staff are told),
never an estimate nor last week's figure. The one degraded rule staff may choose
(``DegradedRule.WITHOUT_NETWORK``) closes a week whose FA results are all signed without the
network model.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from enclave_bridge import gateway
from enclave_bridge.wire.protocol import b64url
from prudencial.closing import signals
from prudencial.closing.models import (
    ACTIVE_STATES,
    ChunkState,
    Closing,
    ClosingChunk,
    ClosingState,
    CommunityResult,
    CorrectionNotice,
    DegradedRule,
    LeverageResult,
    NetworkSource,
    ResultStatus,
    TradeNetworkUpload,
)
from prudencial.domain.errors import DomainError
from prudencial.domain.formats import canonical_json
from prudencial.domain.parameters import check_week_parameters
from prudencial.models import Agent, RiskParameters, Week, WeekStatus
from prudencial.services import weeks as week_services
from prudencial.services.parameters import domain_validation_error, parameters_payload
from prudencial.submissions import selectors as submission_selectors
from prudencial.submissions import services as submission_services
from prudencial.submissions.models import Kind, Submission

logger = logging.getLogger(__name__)

PERMISSION = "closing.run_closing"
STAGES = ("gather", "ship", "compute", "verify", "store")


class ClosingError(ValidationError):
    """A staff action refused (wrong state, nothing to correct...): the message says why."""


class EnclaveUnavailable(Exception):
    """The enclave cannot answer now: the task retries (next address) until the delay."""


class AnswerMismatch(Exception):
    """A signed answer that does not answer what was asked (other week, closing, chunk or
    agents): nothing of it is stored."""


# --- settings ------------------------------------------------------------------------------------


def chunk_size() -> int:
    return max(1, int(getattr(settings, "CLOSING_CHUNK_AGENTS", 500)))


def enclave_delay() -> timedelta:
    return timedelta(minutes=int(getattr(settings, "CLOSING_ENCLAVE_DELAY_MINUTES", 60)))


def stall_after() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "CLOSING_STALL_SECONDS", 300)))


UNVERIFIED_RULES = ("fail", "missing")


def unverified_rule() -> str:
    """What the gather does with stored verdicts that no longer verify (CLOSING_UNVERIFIED_VERDICTS):
    "fail" the closing (default: a trust setting out of step with the enclave, or a tampered
    row, must not turn agents who sent their data into "missing" unnoticed), or count those
    agents "missing", the message kept in the closing's ``warnings`` and logged. Checked at
    start-up too (a system check, prudencial.closing.apps)."""
    rule = str(getattr(settings, "CLOSING_UNVERIFIED_VERDICTS", "fail"))
    if rule not in UNVERIFIED_RULES:
        raise ImproperlyConfigured(
            f"CLOSING_UNVERIFIED_VERDICTS={rule!r}: must be one of {', '.join(UNVERIFIED_RULES)}"
        )
    return rule


def network_options() -> dict[str, Any]:
    return dict(getattr(settings, "CLOSING_NETWORK_OPTIONS", {}) or {})


def enclave_addresses() -> list[str]:
    """The enclave processes to fan out over (gateway.enclave_addresses, ENCLAVE_ADDRESSES)."""
    addresses = gateway.enclave_addresses()
    return list(addresses) or [settings.ENCLAVE_ADDRESS]


def address_for(index: int, attempt: int = 0) -> str:
    """Round-robin over the addresses by chunk index; each retry fails over to the next."""
    addresses = enclave_addresses()
    return addresses[(index + attempt) % len(addresses)]


# --- small helpers -------------------------------------------------------------------------------


def _move(closing_id: int, from_states: Iterable[str], to: str, **fields: Any) -> bool:
    """The one way a closing's state changes: UPDATE … WHERE state IN (from): True when this
    call made the move (a repeated delivery finds it made and does nothing)."""
    return bool(
        Closing.objects.filter(pk=closing_id, state__in=list(from_states)).update(
            state=to, updated_at=timezone.now(), progress_at=timezone.now(), **fields
        )
    )


def _add_times(closing_id: int, times: Mapping[str, float]) -> None:
    """Add seconds to the closing's stage times (under its row lock)."""
    with transaction.atomic():
        closing = Closing.objects.select_for_update().only("stage_times").get(pk=closing_id)
        stage_times = dict(closing.stage_times or {})
        for stage, seconds in times.items():
            stage_times[stage] = round(float(stage_times.get(stage, 0.0)) + float(seconds), 3)
        Closing.objects.filter(pk=closing_id).update(stage_times=stage_times)


def parameters_sha256(parameters: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(dict(parameters))).hexdigest()


def _check_staff(by) -> None:
    if by is None or not (by.is_active and by.has_perm(PERMISSION)):
        raise PermissionDenied(
            _("Somente a equipe da CCEE com a permissão %(perm)s inicia ou corrige fechamentos.")
            % {"perm": PERMISSION}
        )


def _dispatch_run(closing_id: int) -> None:
    from prudencial.closing import tasks

    transaction.on_commit(lambda: tasks.send(tasks.run_closing.s(closing_id)))


# --- starting ------------------------------------------------------------------------------------


def closing_start(*, week: Week, by=None) -> Closing:
    """Start the week's original closing (sequence 1), or return it: idempotent — an existing
    closing of the week that has not failed is returned as it is; a failed one starts again
    from the beginning (its chunks and results are dropped: none was ever current)."""
    if by is not None:
        _check_staff(by)
    if week.status in (WeekStatus.SCHEDULED,):
        raise ClosingError(
            _("A semana %(code)s ainda não abriu: não há o que fechar.") % {"code": week.code},
            code="week_not_open",
        )
    with transaction.atomic():
        existing = Closing.objects.select_for_update().filter(week=week, sequence=1).first()
        if existing is not None and existing.state != ClosingState.FAILED:
            return existing
        if existing is not None:
            existing.chunks.all().delete()  # results and their chunk go with it (CASCADE)
            existing.results.all().delete()
            existing.communities.all().delete()
            Closing.objects.filter(pk=existing.pk).update(
                state=ClosingState.PENDING,
                started_by=by,
                agents_total=0,
                agents_done=0,
                stage_times={},
                error_code="",
                error_message="",
                warnings=[],
                delayed_at=None,
                degraded_rule="",
                network={},
                network_token="",
                updated_at=timezone.now(),
            )
            existing.refresh_from_db()
            closing = existing
        else:
            try:
                with transaction.atomic():
                    closing = Closing.objects.create(week=week, sequence=1, started_by=by)
            except IntegrityError:  # a concurrent start won: its closing is the one
                return Closing.objects.get(week=week, sequence=1)
        _dispatch_run(closing.pk)
    logger.info("closing %s of week %s started by user=%s", closing.pk, week.code, by and by.pk)
    return closing


def _apply_parameter_changes(
    base: Mapping[str, Any], changes: Mapping[str, Any] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The corrected parameters and their diff [{field, before, after}] against ``base``; the
    enclave's own checks run on the result (a ValidationError names the field)."""
    corrected = dict(base)
    for field, value in (changes or {}).items():
        if field not in base or field == "week":
            raise ClosingError(
                {
                    "parameters_changes": _("%(field)s não é um parâmetro da semana.")
                    % {"field": field}
                },
                code="unknown_parameter",
            )
        corrected[field] = value
    try:
        check_week_parameters(corrected)
    except DomainError as exc:
        raise domain_validation_error(exc) from exc
    diff = [
        {"field": f, "before": base.get(f), "after": corrected.get(f)}
        for f in sorted(corrected)
        if canonical_json(base.get(f)) != canonical_json(corrected.get(f))
    ]
    return corrected, diff


def closing_correct(
    *, week: Week, by, why: str, parameters_changes: Mapping[str, Any] | None = None
) -> Closing:
    """Re-run the week's closing with corrected parameters and/or the data as it is now: a new
    closing (next sequence) that supersedes the current one when it is done. The earlier
    results stay; the correction notice (what changed, why, who) is written at gathering,
    when the submissions that changed are known."""
    _check_staff(by)
    if not (why or "").strip():
        raise ClosingError(
            {"why": _("Diga por que o fechamento é corrigido.")}, code="why_required"
        )
    with transaction.atomic():
        current = (
            Closing.objects.select_for_update()
            .filter(week=week, is_current=True)
            .select_related("week")
            .first()
        )
        if current is None:
            raise ClosingError(
                _("A semana %(code)s não tem fechamento concluído a corrigir.")
                % {"code": week.code},
                code="nothing_to_correct",
            )
        running = Closing.objects.filter(week=week, state__in=ACTIVE_STATES + ["delayed"]).first()
        if running is not None:
            raise ClosingError(
                _("O fechamento %(ref)s da semana ainda está em andamento (%(state)s).")
                % {"ref": running.reference, "state": ClosingState(running.state).label},
                code="closing_running",
            )
        parameters, _diff = _apply_parameter_changes(current.parameters, parameters_changes)
        sequence = (Closing.objects.filter(week=week).aggregate(m=Max("sequence"))["m"] or 0) + 1
        closing = Closing.objects.create(
            week=week,
            sequence=sequence,
            supersedes=current,
            started_by=by,
            reason=why.strip(),
            # Pinned now when corrected; otherwise gathered from the week's parameters again.
            parameters=parameters if parameters_changes else {},
        )
        _dispatch_run(closing.pk)
    logger.info(
        "closing %s corrects %s (week %s) by user=%s", closing.pk, current.pk, week.code, by.pk
    )
    return closing


# --- gathering -----------------------------------------------------------------------------------


def _parameters_version(week: Week) -> int | None:
    history = RiskParameters.history.filter(week_id=week.pk).order_by("-history_id").first()
    return history.history_id if history is not None else None


def _submission_changes(
    superseded: Closing, items: Mapping[int, Mapping[str, int | None]]
) -> list[dict[str, Any]]:
    """Agents whose shipped submissions differ from the superseded closing's (receipts, not
    content: the host has none)."""
    before: dict[int, dict[str, int | None]] = {
        r["agent_id"]: {
            "portfolio": r["portfolio_submission_id"],
            "counterparties": r["counterparties_submission_id"],
        }
        for r in superseded.results.values(
            "agent_id", "portfolio_submission_id", "counterparties_submission_id"
        )
    }
    ids = {v for row in [*before.values(), *items.values()] for v in row.values() if v}
    receipts = dict(Submission.objects.filter(pk__in=ids).values_list("pk", "receipt"))
    acronyms = dict(
        Agent.objects.filter(pk__in=set(before) | set(items)).values_list("pk", "acronym")
    )
    changes = []
    for agent_id in sorted(set(before) | set(items), key=lambda a: acronyms.get(a, "")):
        was = before.get(agent_id, {})
        now = items.get(agent_id, {})
        for kind in Kind.values:
            if was.get(kind) != now.get(kind):
                changes.append(
                    {
                        "agent": acronyms.get(agent_id),
                        "kind": kind,
                        "before": receipts.get(was.get(kind)),
                        "after": receipts.get(now.get(kind)),
                    }
                )
    return changes


def closing_gather(*, closing_id: int) -> Closing | None:
    """Lock the week and gather: the week's parameters, every eligible agent's current accepted
    (verified) submissions, pinned into chunks of CLOSING_CHUNK_AGENTS; a ``missing`` result for
    each eligible agent without an accepted portfolio. Safe to run again (a crash mid-way):
    chunks and results are written once under their unique constraints."""
    started = time.monotonic()
    if not _move(closing_id, [ClosingState.PENDING], ClosingState.GATHERING):
        closing = Closing.objects.select_related("week").get(pk=closing_id)
        if closing.state != ClosingState.GATHERING:
            return closing  # gathered already (a repeated delivery)
    closing = Closing.objects.select_related("week", "supersedes").get(pk=closing_id)
    week = closing.week
    if week.status == WeekStatus.OPEN:
        if week.deadline > timezone.now() and closing.started_by is None:
            _fail(closing, "week_open", "a semana ainda está aberta")
            return closing
        try:
            week_services.week_close(week=week)
        except week_services.TransitionError:
            week.refresh_from_db()  # closed meanwhile by beat: fine
    week = Week.objects.select_related("parameters").get(pk=week.pk)
    if week.status not in (WeekStatus.CLOSED, WeekStatus.COMPUTED, WeekStatus.PUBLISHED):
        _fail(closing, "week_state", f"week is {week.status}")
        return closing

    if closing.parameters:
        parameters = dict(closing.parameters)
    else:
        try:
            parameters = parameters_payload(week.parameters)
        except (RiskParameters.DoesNotExist, ValidationError) as exc:
            _fail(closing, "parameters", "; ".join(getattr(exc, "messages", [str(exc)])))
            return closing
    options = closing.network_options or network_options()

    agents = list(submission_selectors.eligible_agents(week=week).only("id", "acronym"))
    states = submission_selectors.current_submissions(week=week, agent_ids=[a.pk for a in agents])
    unverified = _unverified_verdicts(agents, states)
    if unverified and unverified_rule() == "fail":
        _fail(closing, "unverified_verdicts", unverified)
        return closing
    items: dict[int, dict[str, int | None]] = {}
    missing: list[int] = []
    for agent in agents:
        portfolio = states.get((agent.pk, Kind.PORTFOLIO))
        if not (portfolio and portfolio["is_current"]):
            missing.append(agent.pk)
            continue
        cps = states.get((agent.pk, Kind.COUNTERPARTIES))
        items[agent.pk] = {
            "portfolio": portfolio["submission_id"],
            "counterparties": cps["submission_id"] if cps and cps["is_current"] else None,
        }
    ids = list(items)  # already in acronym order
    size = chunk_size()
    chunks = [
        ClosingChunk(
            closing_id=closing.pk,
            index=n,
            agent_ids=ids[start : start + size],
            items=[{"agent": a, **items[a]} for a in ids[start : start + size]],
        )
        for n, start in enumerate(range(0, len(ids), size))
    ]
    with transaction.atomic():
        ClosingChunk.objects.bulk_create(chunks, ignore_conflicts=True)
        LeverageResult.objects.bulk_create(
            [
                LeverageResult(closing_id=closing.pk, agent_id=a, status=ResultStatus.MISSING)
                for a in missing
            ],
            ignore_conflicts=True,
        )
        if closing.supersedes_id and not CorrectionNotice.objects.filter(closing=closing).exists():
            diff = [
                {
                    "field": f,
                    "before": closing.supersedes.parameters.get(f),
                    "after": parameters.get(f),
                }
                for f in sorted(set(parameters) | set(closing.supersedes.parameters))
                if canonical_json(parameters.get(f))
                != canonical_json(closing.supersedes.parameters.get(f))
            ]
            CorrectionNotice.objects.create(
                closing=closing,
                supersedes=closing.supersedes,
                what_changed={
                    "parameters": diff,
                    "submissions": _submission_changes(closing.supersedes, items),
                },
                why=closing.reason,
                by=closing.started_by,
            )
        elapsed = time.monotonic() - started
        moved = _move(
            closing.pk,
            [ClosingState.GATHERING],
            ClosingState.CHECKING if chunks else ClosingState.NETWORK,
            parameters=parameters,
            parameters_sha256=parameters_sha256(parameters),
            parameters_version=_parameters_version(week),
            network_options=options,
            agents_total=len(agents),
            agents_done=len(missing),
            stage_times={"gather": round(elapsed, 3)},
            # Rule "missing": the closing goes on, and its page says which verdicts did not count.
            warnings=[{"code": "unverified_verdicts", "message": unverified[:2000]}]
            if unverified
            else [],
        )
    closing.refresh_from_db()
    if moved and unverified:
        logger.error(
            "closing %s goes on without verdicts that do not verify: %s", closing.pk, unverified
        )
    if moved:
        logger.info(
            "closing %s gathered: %s agents, %s missing, %s chunks in %.1fs",
            closing.pk,
            len(agents),
            len(missing),
            len(chunks),
            elapsed,
        )
    return closing


def _unverified_verdicts(agents: list[Agent], states: Mapping[tuple[int, str], Any]) -> str:
    """A message naming the agents (acronyms, kinds, versions) whose stored verdicts do not
    verify, "" when there are none. Acronyms and version numbers are not confidential."""
    found = [
        f"{agent.acronym} {kind} v{','.join(map(str, state['unverified']))}"
        for agent in agents
        for kind in Kind.values
        if (state := states.get((agent.pk, kind))) and state.get("unverified")
    ]
    if not found:
        return ""
    shown = "; ".join(found[:20]) + (f"; … (+{len(found) - 20})" if len(found) > 20 else "")
    return (
        f"{len(found)} envio(s) com veredito armazenado que não confere com a assinatura do "
        "enclave (chave de assinatura não confiável com ENCLAVE_TRUST_ROOT / "
        "ENCLAVE_EXPECTED_PCRS, ou registro alterado): " + shown
    )


def _fail(closing: Closing, code: str, message: str) -> None:
    """A closing that cannot go on for a reason staff must fix (no parameters...): failed, with
    a message that carries no confidential content; staff are told (closing_failed)."""
    moved = _move(
        closing.pk,
        ACTIVE_STATES,
        ClosingState.FAILED,
        error_code=code[:64],
        error_message=message[:2000],
    )
    logger.error("closing %s failed: %s (%s)", closing.pk, code, message)
    if moved:
        failed = Closing.objects.get(pk=closing.pk)
        transaction.on_commit(lambda: signals.closing_failed.send(sender=Closing, closing=failed))


# --- the chunks ----------------------------------------------------------------------------------


def chunk_items(chunk: ClosingChunk) -> list[dict[str, Any]]:
    """The chunk's compute items: each agent's registry binding and its pinned envelopes."""
    ids = {v for row in chunk.items for k, v in row.items() if k != "agent" and v}
    envelopes = dict(Submission.objects.filter(pk__in=ids).values_list("pk", "envelope"))
    agents = {
        a.pk: a
        for a in Agent.objects.filter(pk__in=chunk.agent_ids).only(
            "id", "acronym", "cnpj", "agent_class"
        )
    }
    out = []
    for row in chunk.items:
        agent = agents[row["agent"]]
        out.append(
            {
                "agent": {"acronym": agent.acronym, "cnpj": agent.cnpj, "class": agent.agent_class},
                "portfolio": envelopes[row["portfolio"]],
                "counterparties": envelopes.get(row["counterparties"])
                if row.get("counterparties")
                else None,
            }
        )
    return out


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def result_row(
    closing: Closing, chunk: ClosingChunk, pinned: Mapping[str, Any], entry: Mapping[str, Any]
) -> LeverageResult:
    """One agent's LeverageResult from its entry in the chunk's signed answer."""
    portfolio = entry.get("portfolio") or {}
    leverage = entry.get("leverage") or {}
    concentration = entry.get("concentration") or {}
    error = entry.get("error") or (leverage.get("error") if isinstance(leverage, dict) else None)
    if portfolio.get("status") == "rejected":
        status = ResultStatus.REJECTED
    elif entry.get("error") or portfolio.get("status") == "error" or "error" in leverage:
        status = ResultStatus.ERROR
    elif _float(leverage.get("fa")) is None:
        status = ResultStatus.NO_FA
    else:
        status = ResultStatus.COMPUTED
    computed = status == ResultStatus.COMPUTED
    shares = leverage.get("var_share_by_bucket")
    return LeverageResult(
        closing_id=closing.pk,
        agent_id=pinned["agent"],
        chunk_id=chunk.pk,
        portfolio_submission_id=pinned["portfolio"],
        counterparties_submission_id=pinned.get("counterparties"),
        status=status,
        fa=_float(leverage.get("fa")) if computed else None,
        fa_risk=_float(leverage.get("fa_risk")) if computed else None,
        res_fin_over_pla=_float(leverage.get("res_fin_over_pla")),
        var_share_by_bucket=[_float(s) for s in shares] if isinstance(shares, list) else None,
        concentration_largest=_float(concentration.get("largest_ratio")),
        concentration_top_five=_float(concentration.get("top_five_ratio")),
        breakdown_jwe=entry.get("breakdown") or "",
        error=_plain_error(error),
    )


def _plain_error(error: Any) -> dict[str, Any]:
    if not isinstance(error, dict):
        return {}
    return {
        "code": str(error.get("code") or "error")[:64],
        "message": str(error.get("message") or "")[:500],
    }


def _check_answer(closing: Closing, chunk: ClosingChunk, result: Mapping[str, Any], items) -> None:
    """The signed answer answers this chunk: its week, closing, index and exactly its agents in
    order (the client already checked the signature, request id, nonce and args digest)."""
    if result.get("week") != closing.week.code or result.get("closing") != closing.reference:
        raise AnswerMismatch("answer names another week or closing")
    if result.get("chunk") != chunk.index:
        raise AnswerMismatch("answer names another chunk")
    expected = [(i["agent"]["acronym"], i["agent"]["cnpj"]) for i in items]
    got = [
        ((e.get("agent") or {}).get("acronym"), (e.get("agent") or {}).get("cnpj"))
        for e in result.get("agents") or []
    ]
    if got != expected:
        raise AnswerMismatch("answer covers other agents than the chunk's")


def _enclave_call(run):
    """A gateway call; what means "try later" becomes EnclaveUnavailable (the submissions'
    classification: unreachable, locked, busy, internal_error)."""
    try:
        return submission_services._enclave_call(run)
    except submission_services.EnclaveUnavailable as exc:
        raise EnclaveUnavailable(str(exc)) from exc


def closing_chunk_compute(*, closing_id: int, index: int, address: str | None = None) -> str:
    """Ship one chunk to the enclave at ``address``, verify and store its signed answer and
    its agents' results. Returns "done" (now or before), "skipped" (the closing is not in
    checking) or raises EnclaveUnavailable (the task retries on the next address)."""
    chunk = ClosingChunk.objects.select_related("closing__week").get(
        closing_id=closing_id, index=index
    )
    closing = chunk.closing
    if chunk.state == ChunkState.DONE:
        return "done"
    if closing.state not in (ClosingState.CHECKING, ClosingState.DELAYED):
        return "skipped"
    ClosingChunk.objects.filter(pk=chunk.pk).update(attempts=F("attempts") + 1)
    started = time.monotonic()
    items = chunk_items(chunk)
    digest, entries = submission_services.registry_snapshot()
    shipped = time.monotonic()
    try:
        signed = _enclave_call(
            lambda: gateway.compute_chunk(
                address=address,
                parameters=closing.parameters,
                items=items,
                closing=closing.reference,
                chunk=chunk.index,
                registry_sha256=digest,
                registry=lambda: entries,  # staged only if the enclave lacks it
            )
        )
    except EnclaveUnavailable:
        mark_delayed_if_due(closing_id=closing.pk)
        raise
    answered = time.monotonic()
    result = signed.results
    _check_answer(closing, chunk, result, items)
    verified = time.monotonic()
    enclave_compute = float(sum((result.get("timing_s") or {}).values() or [0.0]) or 0.0)
    pinned = chunk.items
    rows = [
        result_row(closing, chunk, pin, entry)
        for pin, entry in zip(pinned, result.get("agents") or [], strict=True)
    ]
    args = dict(signed.args)
    with transaction.atomic():
        Closing.objects.select_for_update().only("pk").get(pk=closing.pk)  # serialises chunks
        done = ClosingChunk.objects.filter(pk=chunk.pk, state=ChunkState.PENDING).update(
            state=ChunkState.DONE,
            address=address or "",
            token=signed.token,
            args=args,
            args_sha256=signed.args_sha256,
            signing_kid=signed.signing_kid or "",
            request_id=str(signed.request_id),
            nonce=b64url(signed.nonce),
            network_part=result.get("network_part") or "",
            error_code="",
            done_at=timezone.now(),
        )
        if done:
            LeverageResult.objects.bulk_create(rows, ignore_conflicts=True)
            Closing.objects.filter(pk=closing.pk).update(
                agents_done=F("agents_done") + len(rows),
                updated_at=timezone.now(),
                progress_at=timezone.now(),
            )
            # A closing delayed meanwhile moves on as soon as a chunk is answered again.
            _move(closing.pk, [ClosingState.DELAYED], ClosingState.CHECKING)
            last = _move_when_all_chunks_done(closing.pk)
        else:
            last = False
    stored = time.monotonic()
    if done:
        _add_times(
            closing.pk,
            {
                "ship": max(0.0, (answered - shipped) - enclave_compute) + (shipped - started),
                "compute": enclave_compute,
                "verify": verified - answered,
                "store": stored - verified,
            },
        )
    if last:
        _dispatch_network(closing.pk)
    return "done"


def _move_when_all_chunks_done(closing_id: int) -> bool:
    """checking → network when no chunk is pending: the atomic check of the last chunk (called
    with the closing's row locked, so two chunks finishing at once cannot both miss it)."""
    if ClosingChunk.objects.filter(closing_id=closing_id).exclude(state=ChunkState.DONE).exists():
        return False
    return _move(closing_id, [ClosingState.CHECKING], ClosingState.NETWORK)


def _dispatch_network(closing_id: int) -> None:
    from prudencial.closing import tasks

    transaction.on_commit(lambda: tasks.send(tasks.closing_network.s(closing_id)))


def mark_delayed_if_due(*, closing_id: int, now: datetime | None = None) -> bool:
    """Delayed, once: the closing has made no progress for CLOSING_ENCLAVE_DELAY_MINUTES while
    the enclave could not answer. Staff are told (closing_delayed, after commit); nothing is
    estimated."""
    now = now or timezone.now()
    with transaction.atomic():
        moved = bool(
            Closing.objects.filter(
                pk=closing_id,
                state__in=[ClosingState.CHECKING, ClosingState.NETWORK],
                progress_at__lte=now - enclave_delay(),
            ).update(
                state=ClosingState.DELAYED,
                delayed_at=now,
                error_code="enclave_unavailable",
                error_message="o enclave não respondeu dentro do prazo",
                updated_at=now,
            )
        )
        if moved:
            closing = Closing.objects.get(pk=closing_id)
            transaction.on_commit(
                lambda: signals.closing_delayed.send(sender=Closing, closing=closing)
            )
            logger.error("closing %s delayed: the enclave stayed unavailable", closing_id)
    return moved


# --- the network step ----------------------------------------------------------------------------


@dataclass
class ChosenTradeNetwork:
    """What the closing's network step sends: ``uploads`` a single whole upload or one complete
    set in index order (empty: none), and the ids of the newer sets skipped as incomplete."""

    uploads: list[TradeNetworkUpload]
    incomplete_sets: list[str]

    @property
    def envelope(self) -> str | list[str] | None:
        if not self.uploads:
            return None
        if len(self.uploads) == 1 and not self.uploads[0].part_set:
            return self.uploads[0].envelope
        return [u.envelope for u in self.uploads]


def latest_trade_network(week: Week) -> ChosenTradeNetwork:
    """The week's latest complete accepted trade network, its verdicts verified now: a whole
    upload, or a set whose every index 1..n (the count all its parts name) has an accepted
    part; newest first (a set is as new as its newest part). A newer set that is not complete
    is skipped and named in ``incomplete_sets``: never a partial network."""
    from prudencial.closing import trade_network

    keys: dict[str, Any] = {}
    accepted = [
        upload
        for upload in TradeNetworkUpload.objects.filter(week=week, verdict__status="accepted")
        .select_related("week", "verdict")
        .order_by("-submitted_at", "-id")
        if trade_network.checked_verdict(upload, keys=keys).status == "accepted"
    ]
    by_set: dict[str, dict[int, TradeNetworkUpload]] = {}
    for upload in accepted:
        if upload.part_set:
            by_set.setdefault(upload.part_set, {}).setdefault(upload.part_index, upload)
    newest_of_set = dict(
        TradeNetworkUpload.objects.filter(week=week)
        .exclude(part_set="")
        .values("part_set")
        .annotate(newest=Max("submitted_at"))
        .values_list("part_set", "newest")
    )
    candidates: list[tuple[Any, int, str | TradeNetworkUpload]] = [
        (u.submitted_at, u.pk, u) for u in accepted if not u.part_set
    ]
    candidates += [(newest, 0, name) for name, newest in newest_of_set.items()]
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    skipped: list[str] = []
    for _at, _pk, candidate in candidates:
        if isinstance(candidate, TradeNetworkUpload):
            return ChosenTradeNetwork([candidate], skipped)
        parts = by_set.get(candidate, {})
        counts = {u.part_count for u in parts.values()}
        if len(counts) == 1 and set(parts) == set(range(1, counts.pop() + 1)):
            return ChosenTradeNetwork([parts[i] for i in sorted(parts)], skipped)
        skipped.append(candidate)
    return ChosenTradeNetwork([], skipped)


def previous_closing(week: Week) -> Closing | None:
    """The current closing of the latest week before ``week`` (tracking's previous week)."""
    return (
        Closing.objects.filter(is_current=True, week__code__lt=week.code)
        .select_related("week")
        .order_by("-week__code")
        .first()
    )


def community_membership(closing: Closing) -> dict[str, int | None]:
    """{acronym: community} of a closing's stored network figures; an isolated agent (no
    traded volume: no rank) is in no community (None), as the enclave's tracking counts it."""
    rows = closing.results.exclude(network={}).values_list("agent__acronym", "network")
    return membership_from(dict(rows))


def membership_from(network: Mapping[str, Mapping[str, Any]]) -> dict[str, int | None]:
    """{acronym: community or None (isolated)} of {acronym: LeverageResult.network}."""
    return {
        a: n.get("community")
        if isinstance(n.get("community"), int) and n.get("community_rank") is not None
        else None
        for a, n in network.items()
        if n
    }


def previous_communities(week: Week) -> dict[str, int] | None:
    """{acronym: community} of the previous week's current closing (for tracking), if any:
    the agents that were in a community (isolated ones are in none)."""
    previous = previous_closing(week)
    return None if previous is None else _trading_membership(previous)


def _trading_membership(closing: Closing) -> dict[str, int] | None:
    out = {a: c for a, c in community_membership(closing).items() if c is not None}
    return out or None


def network_agents(network: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    agents = network.get("agents") or {}
    if isinstance(agents, dict):
        return {k: dict(v) for k, v in agents.items()}
    return {row["agent"]: dict(row) for row in agents if isinstance(row, dict) and "agent" in row}


def split_measures(network: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Take the systemic measures and the communities' transition out of a network answer
    (they are stored on their own fields; the rest stays ``Closing.network``). Answers of an
    enclave without them give two empty maps."""
    systemic = network.pop("systemic", None)
    tracking = network.pop("tracking", None)
    return (
        dict(systemic) if isinstance(systemic, Mapping) else {},
        dict(tracking) if isinstance(tracking, Mapping) else {},
    )


def systemic_agents(systemic: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{acronym: {scenario: figures}} of the systemic answer's per-agent rows."""
    return {
        row["agent"]: dict(row.get("scenarios") or {})
        for row in systemic.get("agents") or []
        if isinstance(row, Mapping) and isinstance(row.get("agent"), str)
    }


def closing_network_step(*, closing_id: int, address: str | None = None) -> str:
    """The network model over every chunk's network part (and the week's trade network when
    one was accepted), where the whole network is; its answer stored, the communities and each
    agent's figures written. Returns "done", "skipped" or raises EnclaveUnavailable."""
    closing = Closing.objects.select_related("week").get(pk=closing_id)
    if closing.state not in (ClosingState.NETWORK, ClosingState.DELAYED):
        return "skipped"
    if (
        closing.state == ClosingState.DELAYED
        and closing.chunks.exclude(state=ChunkState.DONE).exists()
    ):
        return "skipped"  # the chunks go first (closing_chunk moves it back to checking)
    if closing.network_token or closing.degraded_rule == DegradedRule.WITHOUT_NETWORK:
        _to_storing(closing.pk)
        _dispatch_finish(closing.pk)
        return "done"
    parts = [
        p for p in closing.chunks.order_by("index").values_list("network_part", flat=True) if p
    ]
    if not parts:
        Closing.objects.filter(pk=closing.pk).update(network_source=NetworkSource.NONE)
        _to_storing(closing.pk)
        _dispatch_finish(closing.pk)
        return "done"
    chosen = latest_trade_network(closing.week)
    before = previous_closing(closing.week)
    previous = _trading_membership(before) if before is not None else None
    started = time.monotonic()
    try:
        signed = _enclave_call(
            lambda: gateway.compute_network(
                address=address,
                parameters=closing.parameters,
                parts=parts,
                trade_network=chosen.envelope,
                options=closing.network_options,
                previous=previous,
                previous_week=before.week.code if previous is not None else None,
                closing=closing.reference,
            )
        )
    except EnclaveUnavailable:
        mark_delayed_if_due(closing_id=closing.pk)
        raise
    answered = time.monotonic()
    network = dict(signed.results)
    if network.get("week") != closing.week.code or network.get("closing") not in (
        None,
        closing.reference,
    ):
        raise AnswerMismatch("network answer names another week or closing")
    # The host's own note beside the signed answer (not signed): newer sets left out as
    # incomplete, so a closing never uses a partial network silently.
    network["trade_network_incomplete_sets"] = list(chosen.incomplete_sets)
    source = network.get("source") if not network.get("skipped") else NetworkSource.NONE
    if source not in NetworkSource.values:
        source = NetworkSource.NONE
    systemic, tracking = split_measures(network)
    systemic_by_acronym = systemic_agents(systemic)
    systemic.pop("agents", None)
    by_acronym = network_agents(network)
    with transaction.atomic():
        locked = Closing.objects.select_for_update().get(pk=closing.pk)
        if locked.network_token:
            return "done"  # a repeated delivery stored it first
        args = dict(signed.args)
        Closing.objects.filter(pk=closing.pk).update(
            network=network,
            network_token=signed.token,
            network_args=args,
            network_args_sha256=signed.args_sha256,
            network_signing_kid=signed.signing_kid or "",
            network_request_id=str(signed.request_id),
            network_nonce=b64url(signed.nonce),
            network_source=source,
            systemic=systemic,
            tracking=tracking,
        )
        ids = dict(Agent.objects.filter(acronym__in=list(by_acronym)).values_list("acronym", "pk"))
        CommunityResult.objects.bulk_create(
            [
                CommunityResult(
                    closing_id=closing.pk,
                    community=int(c["community"]),
                    rank=c.get("rank"),
                    size=int(c.get("size") or 0),
                    propagators=int(c.get("propagators") or 0),
                    mean_cvar_intrinsic=_float(c.get("mean_cvar_intrinsic")),
                    mean_cvar_propagated=_float(c.get("mean_cvar_propagated")),
                    mean_cvar_total=_float(c.get("mean_cvar_total")),
                    isolated=c.get("isolated") is True,
                    members=sorted(
                        ids[a]
                        for a, row in by_acronym.items()
                        if row.get("community") == c["community"] and a in ids
                    ),
                )
                for c in network.get("communities") or []
                if isinstance(c, dict) and isinstance(c.get("community"), int)
            ],
            ignore_conflicts=True,
        )
        results = list(
            LeverageResult.objects.filter(closing_id=closing.pk, agent_id__in=ids.values()).only(
                "id", "agent_id", "network", "systemic"
            )
        )
        by_id = {v: k for k, v in ids.items()}
        for result in results:
            result.network = by_acronym[by_id[result.agent_id]]
            result.systemic = systemic_by_acronym.get(by_id[result.agent_id], {})
        LeverageResult.objects.bulk_update(results, ["network", "systemic"], batch_size=1000)
        moved = _to_storing(closing.pk)
    stored = time.monotonic()
    enclave = _enclave_seconds(network)
    _add_times(
        closing.pk,
        {
            "ship": max(0.0, answered - started - enclave),
            "compute": enclave,
            "store": stored - answered,
        },
    )
    if moved:
        _dispatch_finish(closing.pk)
    return "done"


def _enclave_seconds(network: Mapping[str, Any]) -> float:
    """The network answer's own time in the enclave (its `timing_s`: opening the parts and the
    model), so the stage times split compute from shipping."""
    timing = network.get("timing_s") or {}
    values = [v for v in timing.values() if isinstance(v, int | float) and not isinstance(v, bool)]
    return float(sum(values))


def _to_storing(closing_id: int) -> bool:
    return _move(closing_id, [ClosingState.NETWORK, ClosingState.DELAYED], ClosingState.STORING)


def _dispatch_finish(closing_id: int) -> None:
    from prudencial.closing import tasks

    transaction.on_commit(lambda: tasks.send(tasks.closing_finish.s(closing_id)))


# --- done ----------------------------------------------------------------------------------------


def closing_finish(*, closing_id: int) -> Closing:
    """storing → done: the closing becomes the week's current one (the one it supersedes loses
    that in the same transaction, and is marked superseded), the week moves closed → computed,
    and closing_done is sent after commit."""
    with transaction.atomic():
        closing = Closing.objects.select_for_update().select_related("week").get(pk=closing_id)
        if closing.state != ClosingState.STORING:
            return closing
        if closing.supersedes_id:
            Closing.objects.filter(pk=closing.supersedes_id, is_current=True).update(
                is_current=False, state=ClosingState.SUPERSEDED, updated_at=timezone.now()
            )
        _move(
            closing.pk,
            [ClosingState.STORING],
            ClosingState.DONE,
            is_current=True,
            finished_at=timezone.now(),
            error_code="",
            error_message="",
        )
        if closing.week.status == WeekStatus.CLOSED:
            week_services.week_transition(week=closing.week, to=WeekStatus.COMPUTED)
        closing.refresh_from_db()
        transaction.on_commit(lambda: signals.closing_done.send(sender=Closing, closing=closing))
    logger.info("closing %s done (week %s)", closing.pk, closing.week.code)
    return closing


# --- staff: degraded rule, resume ---------------------------------------------------------------


def closing_choose_degraded(*, closing: Closing, rule: str, by) -> Closing:
    """Staff close a delayed week by a documented degraded rule. The only one,
    ``without_network``: every FA result is signed (all chunks done) and only the network model
    could not be computed; the week closes without it (network_source none). Never an estimate
    of an FA: while a chunk is unanswered there is no degraded rule."""
    _check_staff(by)
    if rule not in DegradedRule.values:
        raise ClosingError(
            {"rule": _("Regra degradada desconhecida: %(rule)s.") % {"rule": rule}},
            code="unknown_rule",
        )
    with transaction.atomic():
        locked = Closing.objects.select_for_update().get(pk=closing.pk)
        if locked.state != ClosingState.DELAYED:
            raise ClosingError(
                _("Só um fechamento atrasado admite regra degradada (este está %(state)s).")
                % {"state": ClosingState(locked.state).label},
                code="not_delayed",
            )
        if locked.chunks.exclude(state=ChunkState.DONE).exists():
            raise ClosingError(
                _(
                    "Há partes sem resposta assinada do enclave: sem elas não há FA, e nenhuma "
                    "regra o estima. Aguarde o enclave."
                ),
                code="chunks_pending",
            )
        Closing.objects.filter(pk=locked.pk).update(
            degraded_rule=rule, network_source=NetworkSource.NONE
        )
        _to_storing(locked.pk)
        _dispatch_finish(locked.pk)
    logger.warning("closing %s: degraded rule %s chosen by user=%s", closing.pk, rule, by.pk)
    closing.refresh_from_db()
    return closing


def closing_resume_stalled(*, now: datetime | None = None) -> dict[str, int]:
    """Beat: every closing that has not moved for CLOSING_STALL_SECONDS gets its next step sent
    again (a lost message, a worker gone for good); delayed ones are tried again too, so a
    returning enclave lets them finish. Every step is idempotent, so sending one twice is
    harmless."""
    from prudencial.closing import tasks

    now = now or timezone.now()
    resumed: dict[str, int] = {}
    stalled = Closing.objects.filter(
        Q(state__in=ACTIVE_STATES) | Q(state=ClosingState.DELAYED),
        updated_at__lte=now - stall_after(),
    ).values_list("pk", "state")
    for closing_id, state in stalled:
        if state in (ClosingState.PENDING, ClosingState.GATHERING):
            tasks.send(tasks.run_closing.s(closing_id))
        elif (
            state in (ClosingState.CHECKING, ClosingState.DELAYED)
            and ClosingChunk.objects.filter(closing_id=closing_id)
            .exclude(state=ChunkState.DONE)
            .exists()
        ):
            dispatch_chunks(closing_id)
        elif state in (ClosingState.NETWORK, ClosingState.DELAYED):
            tasks.send(tasks.closing_network.s(closing_id))
        elif state == ClosingState.CHECKING:
            with transaction.atomic():
                Closing.objects.select_for_update().only("pk").get(pk=closing_id)
                if _move_when_all_chunks_done(closing_id):
                    _dispatch_network(closing_id)
        elif state == ClosingState.STORING:
            tasks.send(tasks.closing_finish.s(closing_id))
        Closing.objects.filter(pk=closing_id, state=state).update(updated_at=now)
        resumed[state] = resumed.get(state, 0) + 1
    return resumed


def dispatch_chunks(closing_id: int) -> int:
    """One closing_chunk task per chunk not done yet, as a Celery group, round-robin over the
    enclave addresses (the task picks its address from its index and retry count)."""
    from celery import group

    from prudencial.closing import tasks

    pending = list(
        ClosingChunk.objects.filter(closing_id=closing_id)
        .exclude(state=ChunkState.DONE)
        .order_by("index")
        .values_list("index", flat=True)
    )
    if pending:
        tasks.send(group(tasks.closing_chunk.s(closing_id, index) for index in pending))
    return len(pending)


# --- beat: the week's calendar -------------------------------------------------------------------


def start_due_closings(*, now: datetime | None = None) -> list[str]:
    """Beat: close every open week past its deadline, then start the closing of every closed
    week that has none (closed now, by hand, or by the weeks' own beat entry)."""
    week_services.close_due_weeks(now=now)
    started = []
    for week in Week.objects.filter(status=WeekStatus.CLOSED).exclude(closings__sequence=1):
        closing_start(week=week)
        started.append(week.code)
    return started


def publish_due_weeks(*, now: datetime | None = None) -> list[str]:
    """Beat: a computed week is published at its deadline + CLOSING_PUBLICATION_DELAY_HOURS."""
    now = now or timezone.now()
    delay = timedelta(hours=int(getattr(settings, "CLOSING_PUBLICATION_DELAY_HOURS", 48)))
    published = []
    for week in Week.objects.filter(status=WeekStatus.COMPUTED, deadline__lte=now - delay):
        try:
            week_services.week_transition(week=week, to=WeekStatus.PUBLISHED)
            published.append(week.code)
        except week_services.TransitionError as exc:
            logger.warning("week %s not published: %s", week.code, exc.message)
    return published


def closing_is_delayed(closing_id: int) -> bool:
    return Closing.objects.filter(pk=closing_id, state=ClosingState.DELAYED).exists()
