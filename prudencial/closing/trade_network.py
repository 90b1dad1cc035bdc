"""The week's trade network (the registered bilateral contracts, ``prudencial/contracts/v1``),
uploaded encrypted by a CCEE staff client through the same envelope path as the agents'
submissions, and validated by the enclave.

The rules of an upload, checked in this order before anything is stored:

1. the user holds ``closing.submit_trade_network`` (CCEE staff; 403 otherwise);
2. size: the JWE text at most ``CLOSING_TRADE_NETWORK_MAX_BYTES`` (the limit in the message),
   then the JWE's protected header read on the host without touching the ciphertext
   (``submissions.services.check_envelope_header``: five parts, RSA-OAEP-256 + A256GCM, the kid
   of an envelope key the enclave published), naming the field ``jwe``;
3. the ``Idempotency-Key`` (the user's own): the same key with the same request answers what the
   first answered, with no second upload; with another request it is refused (422);
4. the week exists (404) and is open or closed but not yet computed; once computed (or
   published) only an upload marked ``correction`` is taken, for a correction closing
   (``closing_correct``) to use (409 otherwise, naming the week's state);
5. a part of a set (``part_set``, ``part_index``, ``part_count``: all three or none; the set
   1–64 characters of ``[A-Za-z0-9_-]``, 1 ≤ index ≤ count ≤ ``MAX_TRADE_NETWORK_PARTS``),
   each index of a set taken once per week (409 ``part_taken``); the enclave's verdict holds
   the document's own ``part`` to these, so the host's grouping is the signed truth;
6. insert, and on commit the validation task (``tasks_trade_network``), whose only argument is
   the upload's id.

The host reads nothing of the ciphertext but its header, so no message, log line or task
argument here can carry a contract's value. The enclave's signed verdict (``{status, errors,
contracts}``) is stored once and verified again whenever it is read (``checked_verdict``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from jwcrypto import jwk

from enclave_bridge import gateway
from enclave_bridge.wire.protocol import (
    AnswerVerificationError,
    args_sha256,
    b64url,
    b64url_decode,
    verify_answer,
)
from prudencial.domain import calendar, formats
from prudencial.models import Week, WeekStatus
from prudencial.submissions import services as submission_services
from prudencial.submissions.services import (
    ENVELOPE_CODES,
    EnclaveFailed,
    EnclaveUnavailable,
    IdempotencyConflict,
    InvalidEnvelope,
    NotPermitted,
    SubmissionRefused,
    TooLarge,
    WeekNotOpen,
    check_envelope_header,
    receipt_of,
    request_sha256,
)
from prudencial.submissions.timefmt import deadline_text

logger = logging.getLogger(__name__)

PERMISSION = "closing.submit_trade_network"
#: Week states in which an upload is taken as it is.
OPEN_STATES = (WeekStatus.OPEN, WeekStatus.CLOSED)
#: Week states in which only a correction's upload is taken.
CORRECTION_STATES = (WeekStatus.COMPUTED, WeekStatus.PUBLISHED)
RECEIVED = "pending"
UNVERIFIED = "unverified"
NO_SKEW_LIMIT = float("inf")  # a stored answer is old by design; its binding is what counts

__all__ = [
    "EnclaveFailed",
    "EnclaveUnavailable",
    "IdempotencyConflict",
    "InvalidEnvelope",
    "NotPermitted",
    "PERMISSION",
    "Forbidden",
    "PartTaken",
    "SubmissionRefused",
    "TooLarge",
    "WeekNotOpen",
    "checked_verdict",
    "max_bytes",
    "trade_network_submit",
    "trade_network_validate",
    "uploads_for_week",
]


class Forbidden(SubmissionRefused):
    """The user does not hold closing.submit_trade_network (the API says 403)."""

    code = "permission_denied"


class PartTaken(SubmissionRefused):
    """This index of this set was already uploaded for the week (the API says 409)."""

    code = "part_taken"


@dataclass(frozen=True)
class Part:
    """A part of a trade network sent in parts (``set``, ``index`` of ``count``)."""

    set: str
    index: int
    count: int

    def as_dict(self) -> dict[str, Any]:
        return {"set": self.set, "index": self.index, "count": self.count}


def part_of(upload) -> dict[str, Any] | None:
    """The upload's ``part`` as the enclave's args carry it (None: a whole network)."""
    if not upload.part_set:
        return None
    return Part(upload.part_set, upload.part_index, upload.part_count).as_dict()


def _check_part(part_set: str | None, index: Any, count: Any) -> Part | None:
    given = {
        "part_set": bool(part_set),
        "part_index": index is not None,
        "part_count": count is not None,
    }
    if not any(given.values()):
        return None
    for field, present in given.items():
        if not present:
            raise InvalidEnvelope(
                _("Uma parte da rede de contratos leva part_set, part_index e part_count juntos."),
                field=field,
            )
    errors = formats.contracts_part_errors({"set": part_set, "index": index, "count": count})
    if errors:
        field = {"part.set": "part_set", "part.index": "part_index", "part.count": "part_count"}
        raise InvalidEnvelope(
            _(
                "Parte inválida: part_set com 1 a 64 caracteres [A-Za-z0-9_-] e "
                "1 ≤ part_index ≤ part_count ≤ %(max)s."
            )
            % {"max": formats.MAX_TRADE_NETWORK_PARTS},
            field=field.get(errors[0]["field"], "part_set"),
        )
    return Part(str(part_set), int(index), int(count))


@dataclass(frozen=True)
class Uploaded:
    """What a POST answers (202). ``replayed``: an Idempotency-Key made this the answer of an
    earlier request."""

    response: dict[str, Any]
    replayed: bool
    upload: Any


def max_bytes() -> int:
    return int(settings.CLOSING_TRADE_NETWORK_MAX_BYTES)


def _models():
    from prudencial.closing.models import TradeNetworkUpload

    return TradeNetworkUpload


def _check_permission(user) -> None:
    if not (user is not None and user.is_active and user.has_perm(PERMISSION)):
        raise Forbidden(
            _(
                "Somente a equipe da CCEE com a permissão %(perm)s envia a rede de contratos "
                "da semana."
            )
            % {"perm": PERMISSION}
        )


def _check_size(jwe: str) -> int:
    size = len(jwe.encode("utf-8"))
    limit = max_bytes()
    if size > limit:
        raise TooLarge(
            _("O envelope (jwe) tem %(size)s bytes; o limite é %(limit)s bytes.")
            % {"size": size, "limit": limit},
            field="jwe",
        )
    if size == 0:
        raise InvalidEnvelope(_("Envie o envelope JWE (jwe) não vazio."), field="jwe")
    return size


def _week_for_upload(code: str, *, correction: bool) -> Week:
    week = Week.objects.filter(code=code).first() if calendar.is_week_code(code) else None
    if week is None:
        raise NotPermitted(_("Semana %(code)s não encontrada.") % {"code": code})
    if week.status in OPEN_STATES:
        return week
    if week.status in CORRECTION_STATES and correction:
        return week
    state = WeekStatus(week.status).label
    if week.status in CORRECTION_STATES:
        raise WeekNotOpen(
            _(
                "A semana %(code)s já foi calculada (situação: %(status)s): a rede de contratos "
                "só é aceita para uma correção (correction: true), usada por um novo fechamento."
            )
            % {"code": week.code, "status": state}
        )
    raise WeekNotOpen(
        _(
            "A semana %(code)s não recebe a rede de contratos (situação: %(status)s): só "
            "enquanto aberta ou encerrada e ainda não calculada; o prazo é %(deadline)s "
            "(horário de Brasília)."
        )
        % {"code": week.code, "status": state, "deadline": deadline_text(week.deadline)}
    )


def _response(upload) -> dict[str, Any]:
    return {
        "id": upload.pk,
        "week": upload.week.code,
        "receipt": upload.receipt,
        "status": "received",
        "correction": bool(getattr(upload, "correction", False)),
        "part": part_of(upload),
    }


def _replay(*, user, key: str, digest: str):
    model = _models()
    upload = (
        model.objects.filter(submitted_by_id=user.pk, idempotency_key=key)
        .select_related("week")
        .defer("envelope")
        .first()
    )
    if upload is None:
        return None
    if upload.request_sha256 != digest:
        raise IdempotencyConflict(
            _(
                "A Idempotency-Key %(key)s já foi usada com outra requisição: use uma chave nova "
                "para um envio novo."
            )
            % {"key": key[:80]}
        )
    return Uploaded(response=_response(upload), replayed=True, upload=upload)


def trade_network_submit(
    *,
    user,
    week: str,
    jwe: str,
    idempotency_key: str | None = None,
    correction: bool = False,
    part_set: str | None = None,
    part_index: int | None = None,
    part_count: int | None = None,
) -> Uploaded:
    """Receive the week's encrypted trade network (or one part of it) from a CCEE staff client:
    the checks of the module docstring in order, then one upload row; the enclave validates it
    after commit."""
    _check_permission(user)
    size = _check_size(jwe)
    check_envelope_header(jwe)
    part = _check_part(part_set, part_index, part_count)
    receipt = receipt_of(jwe)
    fields: dict[str, Any] = {"correction": correction}
    if part is not None:
        fields["part"] = part.as_dict()
    digest = request_sha256(op="trade_network", week=week, jwe=receipt, **fields)
    if idempotency_key:
        replayed = _replay(user=user, key=idempotency_key, digest=digest)
        if replayed is not None:
            return replayed
    the_week = _week_for_upload(week, correction=correction)
    model = _models()
    try:
        with transaction.atomic():
            upload = model.objects.create(
                week=the_week,
                submitted_by=user,
                envelope=jwe,
                receipt=receipt,
                size_bytes=size,
                idempotency_key=idempotency_key or "",
                request_sha256=digest,
                correction=correction,
                part_set=part.set if part else "",
                part_index=part.index if part else None,
                part_count=part.count if part else None,
            )
            transaction.on_commit(lambda: _dispatch(upload.pk))
    except IntegrityError:
        # The same key raced in from a concurrent retry: its answer is this one's.
        if idempotency_key:
            replayed = _replay(user=user, key=idempotency_key, digest=digest)
            if replayed is not None:
                return replayed
        if (
            part is not None
            and model.objects.filter(
                week=the_week, part_set=part.set, part_index=part.index
            ).exists()
        ):
            raise PartTaken(
                _(
                    "A parte %(index)s do conjunto %(set)s já foi enviada para a semana "
                    "%(code)s: envie a rede de novo com um conjunto novo."
                )
                % {"index": part.index, "set": part.set, "code": the_week.code}
            ) from None
        raise
    logger.info(
        "trade network %s received: week=%s size=%s correction=%s part=%s by user=%s",
        upload.pk,
        the_week.code,
        size,
        correction,
        f"{part.set}:{part.index}/{part.count}" if part else "-",
        user.pk,
    )
    return Uploaded(response=_response(upload), replayed=False, upload=upload)


def _dispatch(upload_id: int) -> None:
    from prudencial.closing.tasks_trade_network import validate_trade_network

    validate_trade_network.delay(upload_id)


# --- the enclave's verdict -----------------------------------------------------------------------


def _verdict_model():
    from prudencial.closing.models import TradeNetworkVerdict

    return TradeNetworkVerdict


def _plain_errors(errors: Any) -> list[dict[str, Any]]:
    """[{field, row, rule}] as the enclave gave them (never a value: it builds none)."""
    out = []
    for error in errors or []:
        if isinstance(error, dict):
            out.append(
                {"field": error.get("field"), "row": error.get("row"), "rule": error.get("rule")}
            )
    return out


def _repeated_failure_rule(failures: int) -> str:
    return _(
        "A validação falhou repetidamente no enclave (%(n)s tentativas, erro interno): envie a "
        "rede de contratos novamente."
    ) % {"n": failures}


def trade_network_validate(*, upload_id: int):
    """Ask the enclave for the signed verdict on an upload and store it, once. Idempotent: an
    upload with a verdict is left as it is. EnclaveUnavailable when the enclave cannot answer
    now (the task retries); after PRUDENCIAL_SUBMISSION_MAX_ATTEMPTS internal errors a refusal
    verdict is stored (the task's retries count as attempts)."""
    model, verdict_model = _models(), _verdict_model()
    upload = model.objects.select_related("week").filter(pk=upload_id).first()
    if upload is None:
        logger.warning("trade network %s not found: nothing to validate", upload_id)
        return None
    existing = verdict_model.objects.filter(upload_id=upload_id).first()
    if existing is not None:
        return existing
    try:
        signed = submission_services._enclave_call(
            lambda: gateway.validate_trade_network(
                jwe=upload.envelope, week=upload.week.code, part=part_of(upload)
            )
        )
    except EnclaveFailed:
        failures = _count_failure(upload)
        if failures < submission_services.max_attempts():
            raise
        logger.warning("trade network %s: given up after %s failures", upload.pk, failures)
        return _store_verdict(
            upload,
            status="error",
            errors=[{"field": "jwe", "row": None, "rule": _repeated_failure_rule(failures)}],
        )
    except gateway.EnclaveError as exc:
        if exc.code not in ENVELOPE_CODES:
            raise
        return _store_verdict(
            upload, status="error", errors=[{"field": "jwe", "row": None, "rule": exc.code}]
        )
    result = dict(signed.verdict)
    args = {k: v for k, v in signed.args.items() if k not in ("envelope", "jwe")}
    return _store_verdict(
        upload,
        status=result.get("status"),
        errors=_plain_errors(result.get("errors")),
        contracts=int(result.get("contracts") or 0),
        token=signed.token,
        args=args,
        args_sha256=signed.args_sha256,
        signing_kid=signed.signing_kid or "",
        request_id=str(signed.request_id),
        nonce=b64url(signed.nonce),
    )


_failures: dict[int, int] = {}


def _count_failure(upload) -> int:
    """Failures of the enclave on this upload, counted by this worker process (a retry of the
    task lands here again; a restarted worker starts again from zero, which only delays the
    refusal verdict)."""
    _failures[upload.pk] = _failures.get(upload.pk, 0) + 1
    return _failures[upload.pk]


def _store_verdict(upload, **fields: Any):
    verdict_model = _verdict_model()
    try:
        with transaction.atomic():
            verdict = verdict_model.objects.create(upload=upload, **fields)
    except IntegrityError:
        # A second run of the same task got here first: keep the stored one.
        return verdict_model.objects.get(upload=upload)
    logger.info(
        "trade network %s verdict %s (request %s)",
        upload.pk,
        verdict.status,
        verdict.request_id or "-",
    )
    return verdict


@dataclass
class CheckedTradeNetwork:
    """What may be shown of an upload's verdict: ``status`` is pending, accepted, rejected,
    error or unverified; ``verified`` only when the signed answer checked out now."""

    status: str
    verified: bool
    contracts: int | None = None
    errors: list[dict[str, Any]] | None = None


def checked_verdict(upload, *, keys: dict[str, jwk.JWK | None] | None = None):
    """The upload's verdict verified now: the JWS against a trusted signing key
    (``gateway.trusted_signing_key``), its request id, nonce and operation, the digest of the
    stored args with the upload's own envelope, and the week those args name. A verdict that
    does not verify is ``unverified``, never accepted."""
    verdict = getattr(upload, "verdict", None) if _has_verdict(upload) else None
    if verdict is None:
        return CheckedTradeNetwork(RECEIVED, False)
    if not verdict.token:
        return CheckedTradeNetwork("error", False, None, _plain_errors(verdict.errors))
    keys = {} if keys is None else keys
    try:
        if verdict.signing_kid not in keys:
            keys[verdict.signing_kid] = gateway.trusted_signing_key(verdict.signing_kid)
        key = keys[verdict.signing_kid]
        if key is None:
            raise AnswerVerificationError("signing key not trusted")
        args = dict(verdict.args)
        if _args_week(args) != upload.week.code:
            raise AnswerVerificationError("the signed args name another week")
        if args.get("part") != part_of(upload):
            raise AnswerVerificationError("the signed args name another part")
        digest = args_sha256({**args, _envelope_arg(args): upload.envelope})
        if digest != verdict.args_sha256:
            raise AnswerVerificationError("args do not match the envelope")
        body = verify_answer(
            verdict.token,
            key,
            req_id=verdict.request_id,
            nonce=b64url_decode(verdict.nonce),
            op="validate_trade_network",
            args_digest=digest,
            max_skew_seconds=NO_SKEW_LIMIT,
        )
        result = body["result"]
    except (AnswerVerificationError, KeyError, TypeError, ValueError, AttributeError) as exc:
        logger.warning("trade network %s does not verify: %s", upload.pk, type(exc).__name__)
        return CheckedTradeNetwork(UNVERIFIED, False)
    status = result.get("status")
    if (
        status != verdict.status
        or _plain_errors(result.get("errors")) != _plain_errors(verdict.errors)
        or status not in ("accepted", "rejected")
    ):
        return CheckedTradeNetwork(UNVERIFIED, False)
    return CheckedTradeNetwork(
        status, True, int(result.get("contracts") or 0), _plain_errors(result.get("errors"))
    )


def _has_verdict(upload) -> bool:
    try:
        return upload.verdict is not None
    except _verdict_model().DoesNotExist:
        return False


_ENVELOPE_ARG = "envelope"


def _envelope_arg(args: dict[str, Any]) -> str:
    """The name the enclave op gives the ciphertext in its args (stored without it)."""
    return _ENVELOPE_ARG


def _args_week(args: dict[str, Any]) -> Any:
    expected = args.get("expected")
    if isinstance(expected, dict) and "week" in expected:
        return expected["week"]
    return args.get("week")


def uploads_for_week(*, week: Week) -> list[tuple[Any, CheckedTradeNetwork]]:
    """The week's uploads, latest first, each with its verdict verified now (for the API's list
    and the admin)."""
    rows = list(
        _models()
        .objects.filter(week=week)
        .select_related("week", "submitted_by", "verdict")
        .order_by("-submitted_at", "-pk")
    )
    keys: dict[str, jwk.JWK | None] = {}
    return [(row, checked_verdict(row, keys=keys)) for row in rows]


def latest_accepted(*, week: Week, before=None):
    """The latest upload of the week whose verified verdict is accepted (submitted before
    ``before`` when given: what a closing started then may use), or None."""
    rows = _models().objects.filter(week=week).select_related("week", "verdict")
    rows = rows.filter(verdict__status="accepted")
    if before is not None:
        rows = rows.filter(submitted_at__lt=before)
    keys: dict[str, jwk.JWK | None] = {}
    for row in rows.order_by("-submitted_at", "-pk"):
        if checked_verdict(row, keys=keys).status == "accepted":
            return row
    return None


def now() -> Any:
    return timezone.now()


STATUS_LABELS = {
    RECEIVED: gettext_lazy("Recebido (aguardando o enclave)"),
    "accepted": gettext_lazy("Aceito"),
    "rejected": gettext_lazy("Recusado"),
    "error": gettext_lazy("Erro"),
    UNVERIFIED: gettext_lazy("Não verificado (assinatura não confere)"),
}


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))
