"""Reads of the seal, by who asks.

- Levels are public: published evaluations only (agent, level, cycle, published at).
- Evaluations, evidence and adherence: the agent's own users (``view_agent`` through
  ``prudencial.selectors.agent_list``, the one permission gate) and CCEE staff. Before an
  evaluation is notified its decisions and score are staff's work in progress: the agent's
  users see the criteria and their own evidence, not the decisions.
- Adherence: the latest stored answer, its signature verified now (the signing key's stored
  attestation, request id, nonce, op and the digest of the args recomputed with the
  submission's envelope). One that does not verify is ``unverified``, never adherent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from enclave_bridge import gateway
from enclave_bridge.wire.protocol import (
    AnswerVerificationError,
    args_sha256,
    b64url_decode,
    verify_answer,
)
from prudencial import selectors as registry_selectors
from seal.models import AdherenceResult, Evaluation, EvaluationState, Evidence

logger = logging.getLogger(__name__)

UNVERIFIED = "unverified"
NO_SKEW_LIMIT = float("inf")
DECISIONS_VISIBLE_STATES = (EvaluationState.NOTIFIED, EvaluationState.PUBLISHED)


def is_seal_staff(user) -> bool:
    return bool(
        user
        and user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.has_perm("seal.view_evaluation"))
    )


def published_levels(*, cycle: str | None = None) -> QuerySet[Evaluation]:
    """Published evaluations (the public list of levels), latest cycle first."""
    qs = Evaluation.objects.filter(state=EvaluationState.PUBLISHED).select_related("agent", "cycle")
    if cycle:
        qs = qs.filter(cycle__code=cycle)
    return qs.order_by("-cycle__starts_on", "agent__acronym").only(
        "level", "published_at", "agent__acronym", "agent__legal_name", "cycle__code"
    )


def evaluation_list(*, user) -> QuerySet[Evaluation]:
    """Evaluations the user may see: staff all, an agent's user those of its agents."""
    qs = Evaluation.objects.select_related("agent", "cycle", "catalogue_version")
    if is_seal_staff(user):
        return qs
    return qs.filter(agent__in=registry_selectors.agent_list(user=user, permission="view_agent"))


def decisions_visible(evaluation: Evaluation, user) -> bool:
    return is_seal_staff(user) or evaluation.state in DECISIONS_VISIBLE_STATES


def evidence_get(*, user, evidence_id: int) -> Evidence:
    """An evidence file the user may read (Evidence.DoesNotExist otherwise)."""
    return Evidence.objects.select_related("item__evaluation").get(
        pk=evidence_id, item__evaluation__in=evaluation_list(user=user)
    )


@dataclass
class CheckedAdherence:
    status: str  # adherent, not_adherent, rejected or unverified
    verified: bool
    margin: float | None
    limit: float | None
    week: str
    submission: int
    computed_at: Any
    worst_scenario: str | None = None


def verify_adherence(row: AdherenceResult) -> CheckedAdherence:
    """The stored answer, checked now against the trusted signing key and the args it is
    bound to (with the portfolio's envelope)."""
    base = {"week": row.week.code, "submission": row.submission_id, "computed_at": row.computed_at}
    try:
        key = gateway.trusted_signing_key(row.signing_kid)
        if key is None:
            raise AnswerVerificationError("signing key not trusted")
        args = row.args
        if not isinstance(args, dict) or "envelope" in args:
            raise AnswerVerificationError("stored args are not an adherence request's")
        agent = row.evaluation.agent
        if (
            args["agent"] != {"acronym": agent.acronym, "cnpj": agent.cnpj}
            or args["week"] != row.week.code
        ):
            raise AnswerVerificationError("the signed args name another agent or week")
        digest = args_sha256({**args, "envelope": row.submission.envelope})
        if digest != row.args_sha256:
            raise AnswerVerificationError("args do not match the envelope")
        body = verify_answer(
            row.token,
            key,
            req_id=row.request_id,
            nonce=b64url_decode(row.nonce),
            op="adherence",
            args_digest=digest,
            max_skew_seconds=NO_SKEW_LIMIT,
        )
        result = body["result"]
        if result.get("status") != row.status or result.get("margin") != row.margin:
            raise AnswerVerificationError("stored row differs from its signed answer")
    except (AnswerVerificationError, KeyError, TypeError, ValueError) as exc:
        logger.warning("adherence %s does not verify: %s", row.pk, type(exc).__name__)
        return CheckedAdherence(UNVERIFIED, False, None, None, **base)
    return CheckedAdherence(
        result["status"],
        True,
        result.get("margin"),
        result.get("limit"),
        worst_scenario=result.get("worst_scenario"),
        **base,
    )


def adherence_for(evaluation: Evaluation) -> CheckedAdherence | None:
    """The evaluation's latest adherence answer, verified now (None when never computed)."""
    row = (
        AdherenceResult.objects.filter(evaluation=evaluation)
        .select_related("week", "submission", "evaluation__agent")
        .order_by("-computed_at", "-pk")
        .first()
    )
    return None if row is None else verify_adherence(row)
