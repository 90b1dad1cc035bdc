"""Writes of the submissions app: receive an envelope or a batch, store the enclave's verdict,
split a batch into submissions.

The rules of a submission, checked in this order before anything is stored (issue 9 item 4):

1. size: the JWE text at most ``PRUDENCIAL_SUBMISSION_MAX_BYTES`` (a batch's at most
   ``PRUDENCIAL_BATCH_MAX_BYTES``), the limit in the message; then the JWE's protected header,
   read on the host without touching the ciphertext (five parts, ``RSA-OAEP-256`` +
   ``A256GCM``, the ``kid`` of an envelope key the enclave published), so garbage is refused at
   once naming the field ``jwe``; then the ``Idempotency-Key`` (the user's own): the same key
   with the same request answers what the first answered, with no second version, even after
   the deadline or a change of permission (a retry of what was stored in time); with another
   request it is refused (422);
2. the week is open and its deadline has not passed (the deadline in Brasília time);
3. the user may submit for the agent (``submit_agent_data`` through
   ``prudencial.selectors.agent_list``); any other agent is "not found", never "forbidden", and a
   batch naming one such agent is refused whole;
4. the agent's reporting cadence has an event in this week (``has_cadence_event``);
5. insert (a new version, 1..n per week, agent and kind), and on commit the validation task.

The host reads nothing of the ciphertext but its header; plaintext never reaches it, so no
message, log line or task argument here can carry a value of a payload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.translation import gettext as _

from enclave_bridge import gateway
from enclave_bridge.models import EnclaveKey
from enclave_bridge.wire.protocol import (
    ENVELOPE_ALG,
    ENVELOPE_ENC,
    ENVELOPE_HEADER_KEYS,
    REPLY_HEADER_KEY,
    JsonRefused,
    b64url,
    b64url_decode,
    registry_sha256,
    reply_key_problem,
    strict_json_loads,
)
from prudencial import selectors as registry_selectors
from prudencial.domain import calendar
from prudencial.domain.errors import DomainError
from prudencial.domain.market import REPORTING_CADENCES
from prudencial.models import Agent, Week, WeekStatus
from prudencial.submissions.models import (
    Batch,
    BatchStatus,
    Channel,
    EnclaveAttempt,
    IdempotencyRecord,
    Kind,
    Submission,
    Verdict,
    VerdictStatus,
)
from prudencial.submissions.timefmt import BRASILIA, deadline_text  # noqa: F401 (BRASILIA re-exported)

logger = logging.getLogger(__name__)

CONTENT_ENC = ENVELOPE_ENC  # the name this module had for it
MAX_HEADER_CHARS = 4096  # as the enclave's (enclave_bridge.enclave.envelope)
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
#: Enclave error codes that mean "try again later", not "this envelope is bad".
TRANSIENT_CODES = frozenset({"busy", "in_progress", "internal_error", "replayed_nonce"})
#: Enclave error codes about the envelope itself: stored as a refusal, never retried.
ENVELOPE_CODES = frozenset(
    {
        "envelope_invalid",
        "unknown_kid",
        "algorithm_not_allowed",
        "decryption_failed",
        "payload_too_large",
        "payload_unreadable",
        "xlsx_invalid",
    }
)


# --- refusals (the API maps each to its HTTP status) -------------------------------------------


class SubmissionRefused(Exception):
    """A rule of a submission refused it; nothing was stored. ``message`` is for people (pt-BR
    or English, the request's language); ``field`` names what to fix when it is the body's."""

    code = "refused"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class TooLarge(SubmissionRefused):
    code = "submission_too_large"


class InvalidEnvelope(SubmissionRefused):
    code = "invalid_envelope"


class WeekNotOpen(SubmissionRefused):
    code = "week_not_open"


class NotPermitted(SubmissionRefused):
    """The agent does not exist or the user may not submit for it (the API says 404)."""

    code = "not_found"


class NoCadenceEvent(SubmissionRefused):
    code = "no_cadence_event"


class IdempotencyConflict(SubmissionRefused):
    code = "idempotency_key_reused"


class TooManyBatches(SubmissionRefused):
    """The user sent PRUDENCIAL_BATCH_MAX_PER_WEEK batches for this week already (429)."""

    code = "too_many_batches"


class EnclaveUnavailable(Exception):
    """The enclave could not answer now (down, locked and not unlockable, busy): retry later."""


class EnclaveFailed(EnclaveUnavailable):
    """The enclave answered ``internal_error``: retried, but counted (EnclaveAttempt) and given
    up after PRUDENCIAL_SUBMISSION_MAX_ATTEMPTS."""


@dataclass(frozen=True)
class Received:
    """What a POST answers (202): the stored object and its public answer. ``replayed`` is True
    when an Idempotency-Key made this the answer of an earlier request."""

    response: dict[str, Any]
    replayed: bool
    submission: Submission | None = None
    batch: Batch | None = None


# --- the checks, in order ----------------------------------------------------------------------


def _check_size(jwe: str, limit: int) -> int:
    size = len(jwe.encode("utf-8"))
    if size > limit:
        raise TooLarge(
            _("O envelope (jwe) tem %(size)s bytes; o limite é %(limit)s bytes.")
            % {"size": size, "limit": limit},
            field="jwe",
        )
    if size == 0:
        raise InvalidEnvelope(_("Envie o envelope JWE (jwe) não vazio."), field="jwe")
    return size


def check_envelope_header(jwe: str) -> dict[str, Any]:
    """The compact JWE's protected header, checked on the host (nothing else of it is read):
    five base64url parts, alg RSA-OAEP-256, enc A256GCM, no compression, no header parameter
    but ``ENVELOPE_HEADER_KEYS`` (what the enclave accepts), and the kid of an
    envelope key the enclave published (current or older: older keys still open)."""

    def refuse(rule: str) -> InvalidEnvelope:
        return InvalidEnvelope(rule, field="jwe")

    parts = jwe.split(".")
    if len(parts) != 5 or not all(_B64URL.fullmatch(p) for p in parts):
        raise refuse(_("O envelope deve ser um JWE compacto: cinco partes base64url com pontos."))
    if not parts[0] or len(parts[0]) > MAX_HEADER_CHARS or not parts[1] or not parts[3]:
        raise refuse(_("O envelope deve ser um JWE compacto com cabeçalho, chave e conteúdo."))
    try:
        # As the enclave reads it: duplicate keys and nesting refused.
        header = strict_json_loads(b64url_decode(parts[0]), max_depth=2)
    except (JsonRefused, ValueError, UnicodeDecodeError):
        raise refuse(_("O cabeçalho protegido do envelope não é JSON em base64url.")) from None
    if not isinstance(header, dict):
        raise refuse(_("O cabeçalho protegido do envelope deve ser um objeto JSON."))
    if header.get("alg") != ENVELOPE_ALG or header.get("enc") != CONTENT_ENC:
        raise refuse(
            _("O envelope deve usar alg %(alg)s e enc %(enc)s.")
            % {"alg": ENVELOPE_ALG, "enc": CONTENT_ENC}
        )
    if "zip" in header:
        raise refuse(_("Envelopes comprimidos (zip) não são aceitos."))
    if not set(header) <= ENVELOPE_HEADER_KEYS:
        raise refuse(
            _("O cabeçalho protegido do envelope só pode ter os parâmetros %(keys)s.")
            % {"keys": ", ".join(sorted(ENVELOPE_HEADER_KEYS))}
        )
    if REPLY_HEADER_KEY in header:
        problem = reply_key_problem(header[REPLY_HEADER_KEY])
        if problem is not None:
            raise refuse(
                _("A chave de resposta (prd_reply) do envelope é inválida: %(rule)s.")
                % {"rule": problem}
            )
    kid = header.get("kid")
    if not isinstance(kid, str) or not _known_envelope_kid(kid):
        raise refuse(
            _(
                "O kid do envelope não é de uma chave do enclave: obtenha a atestação atual "
                "(/api/v1/enclave/attestation/) e cifre para a chave vigente."
            )
        )
    return header


_envelope_kids: set[str] = set()


def _known_envelope_kid(kid: str) -> bool:
    """Whether the enclave published an envelope key with this kid. Keys are never removed
    (older ones stay to open older envelopes), so a kid once seen is remembered by the process;
    an unseen one (a rotation since) is looked up."""
    if kid in _envelope_kids:
        return True
    if len(kid) > 128 or not EnclaveKey.objects.filter(use="enc", kid=kid).exists():
        return False
    _envelope_kids.add(kid)
    return True


def open_week(code: str) -> Week:
    """The week with this code, open and before its deadline (WeekNotOpen otherwise)."""
    # A string that is no week code (a NUL byte...) is not found, never looked up.
    week = Week.objects.filter(code=code).first() if calendar.is_week_code(code) else None
    if week is None:
        raise NotPermitted(_("Semana %(code)s não encontrada.") % {"code": code})
    now = timezone.now()
    if week.status != WeekStatus.OPEN or now < week.opens_at:
        raise WeekNotOpen(
            _(
                "A semana %(code)s não está aberta para envios (situação: %(status)s); o prazo "
                "é %(deadline)s (horário de Brasília)."
            )
            % {
                "code": week.code,
                "status": WeekStatus(week.status).label,
                "deadline": deadline_text(week.deadline),
            }
        )
    if now >= week.deadline:
        raise WeekNotOpen(
            _("O prazo da semana %(code)s terminou em %(deadline)s (horário de Brasília).")
            % {"code": week.code, "deadline": deadline_text(week.deadline)}
        )
    return week


def permitted_agents(*, user, agent_ids: Iterable[int]) -> dict[int, Agent]:
    """The agents among ``agent_ids`` the user may submit for (active ones only)."""
    ids = set(agent_ids)
    agents = registry_selectors.agent_list(user=user, permission="submit_agent_data").filter(
        pk__in=ids, is_active=True
    )
    return {a.pk: a for a in agents}


def _not_found() -> NotPermitted:
    return NotPermitted(_("Não encontrado (ou você não tem acesso a este objeto)."))


def monthly_event_sequence() -> int:
    return int(
        getattr(
            settings,
            "PRUDENCIAL_MONTHLY_EVENT_SEQUENCE",
            calendar.DEFAULT_MONTHLY_EVENT_SEQUENCE,
        )
    )


def cadences_with_event(week: Week) -> list[str]:
    """The reporting cadences that have an event in this week."""
    return [
        c
        for c in REPORTING_CADENCES
        if calendar.has_cadence_event(c, week.code, monthly_sequence=monthly_event_sequence())
    ]


def _check_cadence(agents: Iterable[Agent], week: Week) -> None:
    refused = []
    for agent in agents:
        try:
            ok = calendar.has_cadence_event(
                agent.reporting_cadence, week.code, monthly_sequence=monthly_event_sequence()
            )
        except DomainError:
            ok = False
        if not ok:
            refused.append(agent)
    if not refused:
        return
    names = ", ".join(
        f"{a.acronym} ({_cadence_label(a.reporting_cadence)})"
        for a in sorted(refused, key=lambda a: a.acronym)
    )
    raise NoCadenceEvent(
        _(
            "Sem evento de envio na semana %(code)s para %(agents)s: agentes mensais enviam só "
            "na semana %(sequence)s do mês; agentes isentos (distribuidores) não enviam."
        )
        % {"code": week.code, "agents": names, "sequence": f"{monthly_event_sequence():03d}"}
    )


def _cadence_label(cadence: str) -> str:
    from prudencial.models import ReportingCadence

    try:
        return str(ReportingCadence(cadence).label)
    except ValueError:
        return _("periodicidade desconhecida “%(cadence)s”") % {"cadence": cadence}


def request_sha256(**request: Any) -> str:
    return hashlib.sha256(
        json.dumps(request, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _replay(*, user, key: str, digest: str) -> Received | None:
    record = (
        IdempotencyRecord.objects.filter(user_id=user.pk, key=key)
        .select_related("submission", "batch")
        .first()
    )
    if record is None:
        return None
    if record.request_sha256 != digest:
        raise IdempotencyConflict(
            _(
                "A Idempotency-Key %(key)s já foi usada com outra requisição: use uma chave nova "
                "para um envio novo."
            )
            % {"key": key[:80]}
        )
    return Received(
        response=dict(record.response),
        replayed=True,
        submission=record.submission,
        batch=record.batch,
    )


def receipt_of(jwe: str) -> str:
    """The receipt of an envelope: SHA-256 (hex) of the JWE text."""
    return hashlib.sha256(jwe.encode("utf-8")).hexdigest()


def _next_version(*, week: Week, agent: Agent, kind: str) -> int:
    latest = Submission.objects.filter(week=week, agent=agent, kind=kind).aggregate(
        v=Max("version")
    )["v"]
    return (latest or 0) + 1


# --- one agent's envelope ----------------------------------------------------------------------


def submit_envelope(
    *,
    user,
    week: str,
    agent_id: int,
    kind: str,
    jwe: str,
    channel: str = Channel.API,
    idempotency_key: str | None = None,
) -> Received:
    """Receive one agent's portfolio or counterparties envelope for a week: the checks of the
    module docstring in order, then a new version; the enclave validates it after commit."""
    if kind not in Kind.values:
        raise ValueError(f"unknown kind {kind!r}")
    if channel not in (Channel.API, Channel.WEB):
        raise ValueError(f"channel {channel!r} is not one of a single envelope")
    size = _check_size(jwe, settings.PRUDENCIAL_SUBMISSION_MAX_BYTES)
    check_envelope_header(jwe)
    receipt = receipt_of(jwe)
    digest = request_sha256(op="submission", week=week, agent=agent_id, kind=kind, jwe=receipt)
    if idempotency_key:
        # Before the window, permission and cadence: a retry of a request stored before the
        # deadline gets the first answer, not a 409, whenever it arrives.
        replayed = _replay(user=user, key=idempotency_key, digest=digest)
        if replayed is not None:
            return replayed
    the_week = open_week(week)
    agent = permitted_agents(user=user, agent_ids=[agent_id]).get(agent_id)
    if agent is None:
        raise _not_found()
    _check_cadence([agent], the_week)
    try:
        with transaction.atomic():
            # One writer per agent at a time: versions are 1..n without gaps or races.
            Agent.objects.select_for_update().filter(pk=agent.pk).values_list("pk").first()
            submission = Submission.objects.create(
                week=the_week,
                agent=agent,
                kind=kind,
                version=_next_version(week=the_week, agent=agent, kind=kind),
                channel=channel,
                submitted_by=user,
                size_bytes=size,
                receipt=receipt,
                envelope=jwe,
                idempotency_key=idempotency_key or "",
            )
            response = {
                "id": submission.pk,
                "receipt": receipt,
                "status": "received",
                "version": submission.version,
            }
            if idempotency_key:
                IdempotencyRecord.objects.create(
                    user=user,
                    key=idempotency_key,
                    request_sha256=digest,
                    submission=submission,
                    response=response,
                )
            _dispatch_validation(submission.pk)
    except IntegrityError:
        # The same key raced in from a concurrent retry: its answer is this one's.
        if idempotency_key:
            replayed = _replay(user=user, key=idempotency_key, digest=digest)
            if replayed is not None:
                return replayed
        raise
    logger.info(
        "submission %s received: week=%s agent=%s kind=%s v%s size=%s by user=%s",
        submission.pk,
        the_week.code,
        agent.pk,
        kind,
        submission.version,
        size,
        user.pk,
    )
    return Received(response=response, replayed=False, submission=submission)


def _dispatch_validation(submission_id: int) -> None:
    from prudencial.submissions.tasks import validate_submission

    validate_submission.delay_on_commit(submission_id)


# --- a batch -----------------------------------------------------------------------------------


def submit_batch(
    *,
    user,
    week: str,
    agent_ids: list[int],
    jwe: str,
    idempotency_key: str | None = None,
) -> Received:
    """Receive one envelope covering many agents (JSON batch or the XLSX template). Every listed
    agent must be one the user may submit for, with an event this week, or nothing is stored."""
    size = _check_size(jwe, settings.PRUDENCIAL_BATCH_MAX_BYTES)
    check_envelope_header(jwe)
    ids = list(dict.fromkeys(agent_ids))
    limit = settings.PRUDENCIAL_BATCH_MAX_AGENTS
    if not ids or len(ids) > limit:
        raise InvalidEnvelope(
            _("Liste de 1 a %(limit)s agentes (agents) que o arquivo cobre.") % {"limit": limit},
            field="agents",
        )
    if len(ids) != len(agent_ids):
        raise InvalidEnvelope(_("Cada agente deve aparecer uma vez em agents."), field="agents")
    receipt = receipt_of(jwe)
    digest = request_sha256(op="batch", week=week, agents=sorted(ids), jwe=receipt)
    if idempotency_key:
        # As for one envelope: a retry is answered before the window and permission checks.
        replayed = _replay(user=user, key=idempotency_key, digest=digest)
        if replayed is not None:
            return replayed
    the_week = open_week(week)
    agents = permitted_agents(user=user, agent_ids=ids)
    if len(agents) != len(ids):
        raise _not_found()
    _check_cadence(agents.values(), the_week)
    _check_batch_cap(user=user, week=the_week)
    try:
        with transaction.atomic():
            batch = Batch.objects.create(
                week=the_week,
                submitted_by=user,
                size_bytes=size,
                receipt=receipt,
                envelope=jwe,
                idempotency_key=idempotency_key or "",
            )
            batch.agents.set(list(agents.values()))
            response = {"id": batch.pk, "receipt": receipt, "status": "received"}
            if idempotency_key:
                IdempotencyRecord.objects.create(
                    user=user,
                    key=idempotency_key,
                    request_sha256=digest,
                    batch=batch,
                    response=response,
                )
            from prudencial.submissions.tasks import process_batch

            process_batch.delay_on_commit(batch.pk)
    except IntegrityError:
        if idempotency_key:
            replayed = _replay(user=user, key=idempotency_key, digest=digest)
            if replayed is not None:
                return replayed
        raise
    logger.info(
        "batch %s received: week=%s agents=%s size=%s by user=%s",
        batch.pk,
        the_week.code,
        len(ids),
        size,
        user.pk,
    )
    return Received(response=response, replayed=False, batch=batch)


def _check_batch_cap(*, user, week: Week) -> None:
    """At most PRUDENCIAL_BATCH_MAX_PER_WEEK batches a user per week (each one is split by the
    enclave whole, so their number is bounded like their size)."""
    limit = settings.PRUDENCIAL_BATCH_MAX_PER_WEEK
    if Batch.objects.filter(week=week, submitted_by_id=user.pk).count() >= limit:
        raise TooManyBatches(
            _(
                "Você já enviou %(limit)s lotes na semana %(code)s, o limite por usuário: envie "
                "as correções por agente (portfólio ou contrapartes) ou fale com a CCEE."
            )
            % {"limit": limit, "code": week.code}
        )


# --- what the enclave answers ------------------------------------------------------------------


def week_energy_types(week: Week) -> list[str]:
    """The week parameter ``energy_types`` (its documented default when it has none)."""
    parameters = getattr(week, "parameters", None)
    types = getattr(parameters, "energy_types", None)
    if types:
        return list(types)
    from prudencial.domain.formats import DEFAULT_ENERGY_TYPES

    return list(DEFAULT_ENERGY_TYPES)


def registry_entries() -> list[dict[str, str]]:
    """The public registry the enclave checks counterparties against: acronym and CNPJ of every
    registered (active) agent, as CCEE's public list shows them."""
    return [
        {"cnpj": cnpj, "acronym": acronym}
        for cnpj, acronym in Agent.objects.filter(is_active=True)
        .order_by("cnpj")
        .values_list("cnpj", "acronym")
    ]


_registry_cache: dict[str, Any] = {}


def registry_snapshot() -> tuple[str, list[dict[str, str]]]:
    """(registry_sha256, entries) of the current registry, recomputed in this process only when
    the agents changed (one aggregate query per call otherwise)."""
    from django.db.models import Count
    from django.db.models import Max as MaxOf

    stamp = Agent.objects.aggregate(n=Count("pk"), changed=MaxOf("updated_at"))
    if _registry_cache.get("stamp") != stamp:
        entries = registry_entries()
        _registry_cache.update(stamp=stamp, entries=entries, digest=registry_sha256(entries))
    return _registry_cache["digest"], _registry_cache["entries"]


def week_bucket_labels(week: Week) -> list[str] | None:
    """The labels of the week's seven buckets (MAR/2023 …), when its parameters are set."""
    parameters = getattr(week, "parameters", None)
    if parameters is None:
        return None
    labels = [b.label for b in parameters.buckets.order_by("index")]
    return labels or None


def _enclave_inputs(week: Week) -> dict[str, Any]:
    digest, entries = registry_snapshot()
    return {
        "week": week.code,
        "energy_types": week_energy_types(week),
        "bucket_labels": week_bucket_labels(week),
        "registry_sha256": digest,
        "registry": lambda: entries,  # staged only when the enclave does not hold it yet
    }


def _enclave_call(run):
    """Run a gateway call; what means "try later" becomes EnclaveUnavailable."""
    try:
        return run()
    except (gateway.EnclaveConnectionError, gateway.EnclaveUnlockError) as exc:
        raise EnclaveUnavailable(str(exc)) from exc
    except gateway.EnclaveError as exc:
        if exc.code == "internal_error":
            raise EnclaveFailed(f"{exc.code}: {exc.message}") from exc
        if exc.code in TRANSIENT_CODES or exc.code == "locked":
            raise EnclaveUnavailable(f"{exc.code}: {exc.message}") from exc
        raise


def max_attempts() -> int:
    return max(1, int(getattr(settings, "PRUDENCIAL_SUBMISSION_MAX_ATTEMPTS", 5)))


def _count_failure(*, code: str, submission_id: int | None = None, batch_id: int | None = None):
    """One more failure of the enclave on this submission or batch; the count so far."""
    target = {"submission_id": submission_id} if submission_id else {"batch_id": batch_id}
    for _attempt in range(2):
        try:
            with transaction.atomic():
                row, _created = EnclaveAttempt.objects.select_for_update().get_or_create(**target)
                EnclaveAttempt.objects.filter(pk=row.pk).update(
                    failures=F("failures") + 1, last_code=code[:64], last_at=timezone.now()
                )
                return row.failures + 1
        except IntegrityError:  # a concurrent first failure: count on its row
            continue
    return EnclaveAttempt.objects.get(**target).failures


def _repeated_failure_rule(failures: int) -> str:
    return _(
        "A validação falhou repetidamente no enclave (%(n)s tentativas, erro interno): envie o "
        "envelope novamente."
    ) % {"n": failures}


def _verdict_errors(errors: Any) -> list[dict[str, Any]]:
    """[{field, row, rule}] as the enclave gave them (never a value: it builds none)."""
    out = []
    for error in errors or []:
        if isinstance(error, Mapping):
            out.append(
                {"field": error.get("field"), "row": error.get("row"), "rule": error.get("rule")}
            )
    return out


def _validate_kwargs(submission: Submission) -> dict[str, Any]:
    """The keyword arguments of gateway.validate_envelope for a submission."""
    return {
        "envelope": submission.envelope,
        "kind": submission.kind,
        "agent": {"acronym": submission.agent.acronym, "cnpj": submission.agent.cnpj},
        **_enclave_inputs(submission.week),
    }


def submission_validate(*, submission_id: int) -> Verdict | None:
    """Ask the enclave for the verdict on a submission and store it, once. Idempotent: a
    submission that has a verdict is left as it is. EnclaveUnavailable when it cannot answer
    now (the task retries)."""
    submission = (
        Submission.objects.select_related("week__parameters", "agent")
        .filter(pk=submission_id)
        .first()
    )
    if submission is None:
        logger.warning("submission %s not found: nothing to validate", submission_id)
        return None
    existing = Verdict.objects.filter(submission_id=submission_id).first()
    if existing is not None:
        return existing
    kwargs = _validate_kwargs(submission)
    try:
        signed = _enclave_call(lambda: gateway.validate_envelope(**kwargs))
    except EnclaveFailed:
        failures = _count_failure(code="internal_error", submission_id=submission.pk)
        if failures < max_attempts():
            raise
        logger.warning("submission %s: given up after %s enclave failures", submission.pk, failures)
        return _store_verdict(
            submission,
            status=VerdictStatus.ERROR,
            source=Verdict.Source.REFUSAL,
            errors=[{"field": "jwe", "row": None, "rule": _repeated_failure_rule(failures)}],
        )
    except gateway.EnclaveError as exc:
        if exc.code not in ENVELOPE_CODES:
            raise
        return _store_verdict(
            submission,
            status=VerdictStatus.ERROR,
            source=Verdict.Source.REFUSAL,
            errors=[{"field": "jwe", "row": None, "rule": exc.code}],
        )
    result = signed.verdict
    args = {k: v for k, v in signed.args.items() if k != "envelope"}
    return _store_verdict(
        submission,
        status=result.get("status"),
        source=Verdict.Source.VALIDATE,
        errors=_verdict_errors(result.get("errors")),
        summary=result.get("summary") or {},
        token=signed.token,
        args=args,
        args_sha256=signed.args_sha256,
        signing_kid=signed.signing_kid or "",
        request_id=str(signed.request_id),
        nonce=b64url(signed.nonce),
    )


def _store_verdict(submission: Submission, **fields: Any) -> Verdict:
    try:
        with transaction.atomic():
            verdict = Verdict.objects.create(submission=submission, **fields)
    except IntegrityError:
        # A second run of the same task got here first: keep the stored one.
        return Verdict.objects.get(submission=submission)
    logger.info(
        "submission %s verdict %s (request %s)",
        submission.pk,
        verdict.status,
        verdict.request_id or "-",
    )
    return verdict


# --- splitting a batch -------------------------------------------------------------------------


def _split_kwargs(batch: Batch, agents: list[Agent]) -> dict[str, Any]:
    return {
        "envelope": batch.envelope,
        "agents": [{"acronym": a.acronym, "cnpj": a.cnpj} for a in agents],
        **_enclave_inputs(batch.week),
    }


def batch_process(*, batch_id: int) -> Batch | None:
    """Have the enclave split a received batch, and in one transaction store one submission
    (with the re-encrypted envelope and its verdict) per agent and kind, or mark the batch
    rejected with its file-level errors and store no submission. Idempotent: a processed batch
    is left as it is."""
    batch = Batch.objects.select_related("week__parameters").filter(pk=batch_id).first()
    if batch is None:
        logger.warning("batch %s not found: nothing to process", batch_id)
        return None
    if batch.status != BatchStatus.RECEIVED:
        return batch
    agents = sorted(batch.agents.all(), key=lambda a: a.acronym)
    try:
        signed = _enclave_call(lambda: gateway.split_batch(**_split_kwargs(batch, agents)))
    except EnclaveFailed:
        failures = _count_failure(code="internal_error", batch_id=batch.pk)
        if failures < max_attempts():
            raise
        logger.warning("batch %s: given up after %s enclave failures", batch.pk, failures)
        return _batch_rejected(
            batch,
            errors=[{"field": "jwe", "row": None, "rule": _repeated_failure_rule(failures)}],
            signed=None,
        )
    except gateway.EnclaveError as exc:
        if exc.code not in ENVELOPE_CODES:
            raise
        return _batch_rejected(
            batch, errors=[{"field": "jwe", "row": None, "rule": exc.code}], signed=None
        )
    result = dict(signed.result)
    if result.get("status") != "accepted":
        return _batch_rejected(batch, errors=_verdict_errors(result.get("errors")), signed=signed)
    return _batch_accepted(batch, agents, result, signed)


def _signed_fields(signed) -> dict[str, Any]:
    if signed is None:
        return {}
    return {
        "answer_token": signed.token,
        "args": {k: v for k, v in signed.args.items() if k != "envelope"},
        "args_sha256": signed.args_sha256,
        "request_id": str(signed.request_id),
        "nonce": b64url(signed.nonce),
        "signing_kid": signed.signing_kid or "",
    }


def _batch_rejected(batch: Batch, *, errors: list[dict[str, Any]], signed) -> Batch:
    with transaction.atomic():
        locked = Batch.objects.select_for_update().get(pk=batch.pk)
        if locked.status != BatchStatus.RECEIVED:
            return locked
        Batch.objects.filter(pk=batch.pk).update(
            status=BatchStatus.REJECTED,
            errors=errors,
            processed_at=timezone.now(),
            **_signed_fields(signed),
        )
    logger.info("batch %s rejected (%s file errors)", batch.pk, len(errors))
    return Batch.objects.get(pk=batch.pk)


def _batch_accepted(batch: Batch, agents: list[Agent], result: dict[str, Any], signed) -> Batch:
    """One transaction, a fixed number of statements whatever the batch's size: the agents
    locked together (in id order, as single submissions lock them one at a time), their latest
    versions read once, submissions and verdicts inserted in bulk."""
    by_acronym = {a.acronym: a for a in agents}
    # The split answer says whether the file was the XLSX template ("format": "xlsx").
    channel = Channel.SPREADSHEET if result.get("format") == "xlsx" else Channel.API
    with transaction.atomic():
        locked = Batch.objects.select_for_update().get(pk=batch.pk)
        if locked.status != BatchStatus.RECEIVED:
            return locked
        ids = sorted(a.pk for a in agents)
        list(Agent.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))
        latest = {
            (agent_id, kind): version
            for agent_id, kind, version in Submission.objects.filter(
                week=batch.week, agent_id__in=ids
            )
            .values("agent_id", "kind")
            .annotate(v=Max("version"))
            .values_list("agent_id", "kind", "v")
        }
        submissions: list[Submission] = []
        verdicts: list[dict[str, Any]] = []
        unstored: list[dict[str, Any]] = []
        for entry in result.get("agents") or []:
            agent = by_acronym.get(entry.get("acronym"))
            if agent is None:
                raise ValueError("the split answer names an agent the batch did not declare")
            for kind in Kind.values:
                part = entry.get(kind)
                if not part:
                    continue
                envelope = part.get("envelope")
                verdict = part.get("verdict") or {}
                if not envelope:
                    # Cells the enclave could not even serialise: no ciphertext to keep, so
                    # the refusal is the batch's, under the agent and kind.
                    unstored += [
                        dict(e, field=f"{agent.acronym}.{kind}: {e['field']}")
                        for e in _verdict_errors(verdict.get("errors"))
                    ]
                    continue
                version = latest.get((agent.pk, kind), 0) + 1
                latest[(agent.pk, kind)] = version
                submissions.append(
                    Submission(
                        week=batch.week,
                        agent=agent,
                        kind=kind,
                        version=version,
                        channel=channel,
                        submitted_by=batch.submitted_by,
                        submitted_at=batch.submitted_at,
                        size_bytes=len(envelope.encode("utf-8")),
                        receipt=receipt_of(envelope),
                        envelope=envelope,
                        batch=batch,
                    )
                )
                verdicts.append(verdict)
        Submission.objects.bulk_create(submissions, batch_size=500)
        Verdict.objects.bulk_create(
            [
                Verdict(
                    submission=submission,
                    status=verdict.get("status"),
                    errors=_verdict_errors(verdict.get("errors")),
                    summary=verdict.get("summary") or {},
                    source=Verdict.Source.BATCH,
                    signing_kid=signed.signing_kid or "",
                    request_id=str(signed.request_id),
                )
                for submission, verdict in zip(submissions, verdicts, strict=True)
            ],
            batch_size=500,
        )
        Batch.objects.filter(pk=batch.pk).update(
            status=BatchStatus.ACCEPTED,
            errors=_verdict_errors(result.get("errors")) + unstored,
            file_format=str(result.get("format") or "")[:10],
            processed_at=timezone.now(),
            **_signed_fields(signed),
        )
    logger.info("batch %s accepted: %s submissions", batch.pk, len(submissions))
    return Batch.objects.get(pk=batch.pk)


# --- catching up ---------------------------------------------------------------------------------


def pending_dispatch(*, older_than_seconds: int = 600, limit: int = 1000) -> dict[str, int]:
    """Send again the validations and splits still waiting after ``older_than_seconds`` (their
    task gave up while the enclave was down, or its message was lost). Idempotent like the tasks
    it sends: a row that got its outcome meanwhile is left as it is. Meant for beat."""
    from prudencial.submissions.tasks import process_batch, validate_submission

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    submissions = list(
        Submission.objects.filter(verdict__isnull=True, submitted_at__lt=cutoff)
        .order_by("submitted_at")
        .values_list("pk", flat=True)[:limit]
    )
    batches = list(
        Batch.objects.filter(status=BatchStatus.RECEIVED, submitted_at__lt=cutoff)
        .order_by("submitted_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in submissions:
        validate_submission.delay(pk)
    for pk in batches:
        process_batch.delay(pk)
    if submissions or batches:
        logger.warning(
            "re-sent %s pending validations and %s pending batches", len(submissions), len(batches)
        )
    return {"submissions": len(submissions), "batches": len(batches)}
