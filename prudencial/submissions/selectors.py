"""Reads of the submissions app. A verdict is verified again every time it is read.

The status people see is the one inside the enclave's signed answer, checked now: the JWS
against a signing key whose stored attestation document verifies again with the deployment's
trust root and PCRs and binds that key (``gateway.trusted_signing_key``: a key row alone is not
trusted), its request id, nonce and operation, the digest of the args it answers, recomputed
from the stored args and the submission's own envelope (a batch's: the batch's envelope), and
those args themselves: the submission's kind, agent (acronym and CNPJ) and week (a batch's: its
week and declared agents). A verdict that does not verify is shown as ``unverified`` — never as
accepted — whatever its row says. The current version of an agent's kind in a week is its latest
version whose verified verdict is accepted.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch, QuerySet
from jwcrypto import jwk

from enclave_bridge import gateway
from enclave_bridge.wire.protocol import (
    AnswerVerificationError,
    args_sha256,
    b64url_decode,
    verify_answer,
)
from prudencial import selectors as registry_selectors
from prudencial.domain.calendar import is_week_code
from prudencial.models import Agent, Week
from prudencial.submissions.models import Batch, Kind, Submission, Verdict, VerdictStatus
from prudencial.submissions.services import cadences_with_event

logger = logging.getLogger(__name__)

RECEIVED = "received"
UNVERIFIED = "unverified"
NO_SKEW_LIMIT = float("inf")  # a stored answer is old by design; its binding is what counts


@dataclass
class CheckedVerdict:
    """What may be shown of a submission's verdict: ``status`` is received, accepted, rejected,
    error or unverified; ``verified`` is True only when the signed answer checked out now."""

    status: str
    verified: bool
    errors: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class VerdictChecker:
    """Verifies verdicts; keeps the signing keys and batch answers it has read for one request.

    A signing key is trusted only when its stored attestation document verifies again with the
    deployment's trust settings and binds that key (``gateway.trusted_signing_key``): a key row
    inserted by hand signs nothing that is shown as verified. A signed answer counts only for
    the submission its args name: its kind, its agent (acronym and CNPJ), its week and its
    envelope; a batch's answer, for the batch's week and declared agents."""

    def __init__(self) -> None:
        self._keys: dict[str, jwk.JWK | None] = {}
        self._batches: dict[int, _CheckedBatch | None] = {}

    def _key(self, kid: str) -> jwk.JWK | None:
        if kid not in self._keys:
            self._keys[kid] = gateway.trusted_signing_key(kid)
        return self._keys[kid]

    def check(self, submission: Submission) -> CheckedVerdict:
        verdict = _verdict_of(submission)
        if verdict is None:
            return CheckedVerdict(RECEIVED, False)
        if verdict.source == Verdict.Source.REFUSAL:
            # The enclave refused the envelope itself: nothing signed to check, never accepted.
            return CheckedVerdict(VerdictStatus.ERROR, False, list(verdict.errors))
        try:
            if verdict.source == Verdict.Source.VALIDATE:
                result = self._validate_result(submission, verdict)
            elif verdict.source == Verdict.Source.BATCH:
                result = self._batch_result(submission, verdict)
            else:
                raise AnswerVerificationError("unknown verdict source")
        except (AnswerVerificationError, KeyError, TypeError, ValueError, AttributeError) as exc:
            logger.warning(
                "verdict of submission %s does not verify: %s", submission.pk, type(exc).__name__
            )
            return CheckedVerdict(UNVERIFIED, False)
        status = result.get("status")
        errors = result.get("errors") or []
        if status != verdict.status or _plain_errors(errors) != _plain_errors(verdict.errors):
            logger.warning("verdict of submission %s differs from its signed answer", submission.pk)
            return CheckedVerdict(UNVERIFIED, False)
        if status not in (VerdictStatus.ACCEPTED, VerdictStatus.REJECTED):
            return CheckedVerdict(UNVERIFIED, False)
        return CheckedVerdict(status, True, _plain_errors(errors), dict(verdict.summary or {}))

    def _validate_result(self, submission: Submission, verdict: Verdict) -> dict[str, Any]:
        key = self._key(verdict.signing_kid)
        if key is None:
            raise AnswerVerificationError("signing key not trusted")
        args = verdict.args
        if not isinstance(args, dict) or "envelope" in args:
            raise AnswerVerificationError("stored args are not a validate request's")
        expected = args["expected"]
        if (
            args["kind"] != submission.kind
            or expected["agent"] != _agent_binding(submission.agent)
            or expected["week"] != submission.week.code
        ):
            raise AnswerVerificationError("the signed args name another submission")
        digest = args_sha256({**args, "envelope": submission.envelope})
        if digest != verdict.args_sha256:
            raise AnswerVerificationError("args do not match the envelope")
        body = verify_answer(
            verdict.token,
            key,
            req_id=verdict.request_id,
            nonce=b64url_decode(verdict.nonce),
            op="validate",
            args_digest=digest,
            max_skew_seconds=NO_SKEW_LIMIT,
        )
        return body["result"]

    def _batch_result(self, submission: Submission, verdict: Verdict) -> dict[str, Any]:
        batch_id = submission.batch_id
        if batch_id is None:
            raise AnswerVerificationError("a batch verdict outside a batch")
        if batch_id not in self._batches:
            self._batches[batch_id] = self._verified_batch(batch_id)
        checked = self._batches[batch_id]
        if checked is None:
            raise AnswerVerificationError("batch answer does not verify")
        if submission.week_id != checked.week_id:
            raise AnswerVerificationError("submission of another week than its batch")
        binding = _agent_binding(submission.agent)
        if submission.agent_id not in checked.agent_ids or binding not in checked.bound_agents:
            raise AnswerVerificationError("agent not declared by the batch")
        for entry in checked.result.get("agents") or []:
            if entry.get("acronym") != submission.agent.acronym:
                continue
            part = entry.get(submission.kind) or {}
            if part.get("envelope") != submission.envelope:
                raise AnswerVerificationError("envelope is not the one the batch answer made")
            return part.get("verdict") or {}
        raise AnswerVerificationError("agent not in the batch answer")

    def _verified_batch(self, batch_id: int) -> _CheckedBatch | None:
        batch = (
            Batch.objects.filter(pk=batch_id)
            .select_related("week")
            .only(
                "answer_token",
                "args",
                "args_sha256",
                "request_id",
                "nonce",
                "signing_kid",
                "envelope",
                "week_id",
                "week__code",
            )
            .first()
        )
        if batch is None or not batch.answer_token:
            return None
        key = self._key(batch.signing_kid)
        if key is None:
            return None
        args = batch.args
        try:
            if not isinstance(args, dict) or "envelope" in args or args["week"] != batch.week.code:
                return None
            digest = args_sha256({**args, "envelope": batch.envelope})
            if digest != batch.args_sha256:
                return None
            body = verify_answer(
                batch.answer_token,
                key,
                req_id=batch.request_id,
                nonce=b64url_decode(batch.nonce),
                op="split",
                args_digest=digest,
                max_skew_seconds=NO_SKEW_LIMIT,
            )
            bound_agents = [
                {"acronym": a["acronym"], "cnpj": a["cnpj"]} for a in args.get("agents") or []
            ]
        except (AnswerVerificationError, KeyError, TypeError, ValueError):
            return None
        result = body.get("result")
        if not isinstance(result, dict):
            return None
        agent_ids = set(batch.agents.values_list("pk", flat=True))
        return _CheckedBatch(result, batch.week_id, agent_ids, bound_agents)


@dataclass
class _CheckedBatch:
    """A batch's verified split answer and what it was bound to."""

    result: dict[str, Any]
    week_id: int
    agent_ids: set[int]
    bound_agents: list[dict[str, str]]


def _agent_binding(agent: Agent) -> dict[str, str]:
    return {"acronym": agent.acronym, "cnpj": agent.cnpj}


def _plain_errors(errors: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        {"field": e.get("field"), "row": e.get("row"), "rule": e.get("rule")}
        for e in errors
        if isinstance(e, dict)
    ]


def _verdict_of(submission: Submission) -> Verdict | None:
    try:
        return submission.verdict
    except Verdict.DoesNotExist:
        return None


# --- lists -------------------------------------------------------------------------------------


def submissions_for_week(*, week: Week, agent_ids: Iterable[int] | None = None) -> QuerySet:
    """Submissions of a week (optionally of some agents), with agent, sender, batch and verdict
    joined; the envelope stays deferred except where a verdict check needs it."""
    qs = Submission.objects.filter(week=week).select_related(
        "agent", "submitted_by", "verdict", "week"
    )
    if agent_ids is not None:
        qs = qs.filter(agent_id__in=list(agent_ids))
    return qs.order_by("agent__acronym", "kind", "-version")


@dataclass
class SubmissionRow:
    submission: Submission
    verdict: CheckedVerdict
    is_current: bool = False


def checked_submissions(
    submissions: Iterable[Submission], *, checker: VerdictChecker | None = None
) -> list[SubmissionRow]:
    """Each submission with its verdict verified now, and ``is_current`` on the latest accepted
    version of each (week, agent, kind)."""
    checker = checker or VerdictChecker()
    rows = [SubmissionRow(s, checker.check(s)) for s in submissions]
    best: dict[tuple[int, int, str], SubmissionRow] = {}
    for row in rows:
        s = row.submission
        if row.verdict.status != VerdictStatus.ACCEPTED:
            continue
        key = (s.week_id, s.agent_id, s.kind)
        if key not in best or s.version > best[key].submission.version:
            best[key] = row
    for row in best.values():
        row.is_current = True
    return rows


def agent_submissions(*, user, week_code: str, agent_id: int) -> list[SubmissionRow]:
    """An agent's submissions in a week, for a user who may see the agent (404 otherwise:
    Agent.DoesNotExist / Week.DoesNotExist; a string that is no week code is not looked up)."""
    if not is_week_code(week_code):
        raise Week.DoesNotExist(week_code)
    week = Week.objects.get(code=week_code)
    agent = registry_selectors.agent_list(user=user).get(pk=agent_id)
    return checked_submissions(submissions_for_week(week=week, agent_ids=[agent.pk]))


def eligible_agents(*, week: Week, user=None) -> QuerySet[Agent]:
    """Active agents whose reporting cadence has an event in the week: every one (staff), or
    those ``user`` may submit for."""
    qs = (
        Agent.objects.all()
        if user is None
        else registry_selectors.agent_list(user=user, permission="submit_agent_data")
    )
    return qs.filter(is_active=True, reporting_cadence__in=cadences_with_event(week)).order_by(
        "acronym"
    )


def current_submissions(
    *, week: Week, agent_ids: Iterable[int], checker: VerdictChecker | None = None
) -> dict[tuple[int, str], dict[str, Any]]:
    """(agent id, kind) → the state to show: the current (latest accepted) version when there is
    one, else the latest version's state. ``unverified`` lists the versions of that (agent,
    kind) whose stored verdict no longer verifies (a key not trusted, a tampered row) and that
    could be the one to use: newer than the current version, or any when there is none. The
    closing refuses to pass over them without staff knowing."""
    rows = checked_submissions(
        submissions_for_week(week=week, agent_ids=agent_ids), checker=checker
    )
    out: dict[tuple[int, str], dict[str, Any]] = {}
    unverified: dict[tuple[int, str], list[int]] = {}
    for row in rows:  # latest version first within each (agent, kind)
        s = row.submission
        key = (s.agent_id, s.kind)
        if row.verdict.status == UNVERIFIED:
            unverified.setdefault(key, []).append(s.version)
        state = {
            "status": row.verdict.status,
            "receipt": s.receipt,
            "submitted_at": s.submitted_at,
            "version": s.version,
            "submission_id": s.pk,
            "is_current": row.is_current,
        }
        if row.is_current or key not in out:
            out[key] = state
    for key, state in out.items():
        versions = unverified.get(key, [])
        if state["is_current"]:  # an older version that does not verify changes nothing
            versions = [v for v in versions if v > state["version"]]
        state["unverified"] = versions
    return out


def progress(*, week: Week, user=None) -> dict[str, Any]:
    """The week's progress over the eligible agents (the user's, or all for staff): how many
    have a current accepted portfolio and counterparties, and each agent's state."""
    agents = list(eligible_agents(week=week, user=user).only("id", "acronym"))
    states = current_submissions(week=week, agent_ids=[a.pk for a in agents])
    total = len(agents)
    done = dict.fromkeys(Kind.values, 0)
    rows = []
    for agent in agents:
        row: dict[str, Any] = {"id": agent.pk, "acronym": agent.acronym}
        for kind in Kind.values:
            state = states.get((agent.pk, kind))
            if state and state["is_current"]:
                done[kind] += 1
            row[kind] = (
                None
                if state is None
                else {
                    "status": state["status"],
                    "receipt": state["receipt"],
                    "submitted_at": state["submitted_at"],
                }
            )
        rows.append(row)
    return {
        "week": week.code,
        "deadline": week.deadline,
        "eligible": total,
        **{kind: {"done": done[kind], "total": total} for kind in Kind.values},
        "agents": rows,
    }


def missing_agents(*, week: Week, kind: str | None = None) -> QuerySet[Agent]:
    """Eligible agents (all of them) without a current accepted submission of ``kind`` (of
    either kind when None) in the week: the staff's list of who is still missing."""
    agents = eligible_agents(week=week)
    states = current_submissions(week=week, agent_ids=agents.values_list("pk", flat=True))
    kinds = [kind] if kind else list(Kind.values)
    missing = [
        a_id
        for a_id in agents.values_list("pk", flat=True)
        if any(not (states.get((a_id, k)) or {}).get("is_current") for k in kinds)
    ]
    return agents.filter(pk__in=missing)


def batch_for(*, user, batch_id: int) -> Batch:
    """A batch its sender (or CCEE staff) may read, with its agents and submissions
    (Batch.DoesNotExist otherwise)."""
    qs = Batch.objects.select_related("week", "submitted_by").prefetch_related(
        "agents",
        Prefetch(
            "submissions",
            queryset=Submission.objects.select_related("agent", "verdict", "week").order_by(
                "agent__acronym", "kind"
            ),
        ),
    )
    if not (user.is_superuser or user.has_perm("submissions.view_batch")):
        qs = qs.filter(submitted_by_id=user.pk)
    return qs.defer("envelope").get(pk=batch_id)


def receipt_matches(submission: Submission) -> bool:
    """The stored receipt is the SHA-256 of the stored envelope."""
    return hashlib.sha256(submission.envelope.encode()).hexdigest() == submission.receipt
