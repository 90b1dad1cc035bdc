"""The enclave's signature over a stored leverage result, checked again when it is read.

A result row is only as good as the signed answer it came from: a row edited in the database,
or a chunk whose answer no longer verifies under a trusted signing key, must not be shown as
the enclave's figure. So each read checks, for the result's chunk, the JWS under the
registered key whose attestation still verifies (``gateway.trusted_signing_key``), the request
id, nonce and operation, the digest of the stored args, that the signed answer names this
week, closing and chunk, and that the row equals what the signed entry gives; for the network
figures (and the agent's systemic figures), the closing's network answer the same way, and for
what a closing shows of its own (its systemic measures, the communities' transition, the
memberships tracking reads) ``SignatureChecker.check_closing`` / ``check_membership``. The
outcome is ``verified``,
``unverified`` (with the reason) or ``unsigned`` (a missing agent: nothing went to the enclave).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from enclave_bridge import gateway
from enclave_bridge.wire.protocol import (
    AnswerVerificationError,
    args_sha256,
    b64url_decode,
    verify_answer,
)
from prudencial.closing.models import Closing, ClosingChunk, LeverageResult, ResultStatus
from prudencial.closing.services import (
    network_agents,
    result_row,
    split_measures,
    systemic_agents,
)
from prudencial.submissions.selectors import NO_SKEW_LIMIT

logger = logging.getLogger(__name__)

VERIFIED = "verified"
UNVERIFIED = "unverified"
UNSIGNED = "unsigned"

#: The row fields the signed chunk entry determines (services.result_row).
SIGNED_FIELDS = (
    "status",
    "fa",
    "fa_risk",
    "res_fin_over_pla",
    "var_share_by_bucket",
    "concentration_largest",
    "concentration_top_five",
    "breakdown_jwe",
)


@dataclass(frozen=True)
class Signature:
    status: str
    signing_kid: str = ""
    reason: str = ""

    @property
    def verified(self) -> bool:
        return self.status == VERIFIED

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "signing_kid": self.signing_kid, "reason": self.reason}


class _Keys:
    """Trusted signing keys by kid, looked up once per check of a page."""

    def __init__(self) -> None:
        self._keys: dict[str, Any] = {}

    def __call__(self, kid: str):
        if kid not in self._keys:
            self._keys[kid] = gateway.trusted_signing_key(kid)
        key = self._keys[kid]
        if key is None:
            raise AnswerVerificationError("the signing key is not trusted")
        return key


def _signed_body(token: str, kid: str, keys: _Keys, *, req_id, nonce, op, args_digest) -> dict:
    body = verify_answer(
        token,
        keys(kid),
        req_id=req_id,
        nonce=b64url_decode(nonce),
        op=op,
        args_digest=args_digest,
        max_skew_seconds=NO_SKEW_LIMIT,
    )
    result = body.get("result")
    if not isinstance(result, dict):
        raise AnswerVerificationError("the signed answer has no result")
    return result


def _chunk_entries(chunk: ClosingChunk, closing: Closing, keys: _Keys) -> list[dict[str, Any]]:
    if not chunk.token:
        raise AnswerVerificationError("the chunk has no signed answer")
    digest = args_sha256(dict(chunk.args))
    if digest != chunk.args_sha256:
        raise AnswerVerificationError("the stored args do not match their signed digest")
    result = _signed_body(
        chunk.token,
        chunk.signing_kid,
        keys,
        req_id=chunk.request_id,
        nonce=chunk.nonce,
        op="closing_chunk",
        args_digest=digest,
    )
    if result.get("week") != closing.week.code or result.get("closing") != closing.reference:
        raise AnswerVerificationError("the signed answer names another week or closing")
    if result.get("chunk") != chunk.index:
        raise AnswerVerificationError("the signed answer names another chunk")
    entries = result.get("agents")
    if not isinstance(entries, list) or len(entries) != len(chunk.items):
        raise AnswerVerificationError("the signed answer covers other agents")
    return entries


@dataclass(frozen=True)
class SignedNetwork:
    """What a closing's signed network answer gives, as the host stores it (services)."""

    agents: dict[str, dict[str, Any]]
    systemic_agents: dict[str, dict[str, Any]]
    systemic: dict[str, Any]
    tracking: dict[str, Any]


def _signed_network(closing: Closing, keys: _Keys) -> SignedNetwork:
    if not closing.network_token:
        raise AnswerVerificationError("the closing has no signed network answer")
    if args_sha256(dict(closing.network_args)) != closing.network_args_sha256:
        raise AnswerVerificationError("the stored network args do not match their signed digest")
    result = _signed_body(
        closing.network_token,
        closing.network_signing_kid,
        keys,
        req_id=closing.network_request_id,
        nonce=closing.network_nonce,
        op="closing_network",
        args_digest=closing.network_args_sha256,
    )
    if result.get("week") != closing.week.code or result.get("closing") not in (
        None,
        closing.reference,
    ):
        raise AnswerVerificationError("the signed network answer names another closing")
    result = dict(result)
    systemic, tracking = split_measures(result)
    systemic_by_agent = systemic_agents(systemic)
    systemic.pop("agents", None)
    return SignedNetwork(network_agents(result), systemic_by_agent, systemic, tracking)


class SignatureChecker:
    """Checks results against their signed answers; one instance per request, so a page of
    results of the same chunk or closing verifies each signed answer once."""

    def __init__(self) -> None:
        self._keys = _Keys()
        self._chunks: dict[int, list[dict[str, Any]] | Exception] = {}
        self._networks: dict[int, SignedNetwork | Exception] = {}

    def check(self, result: LeverageResult) -> Signature:
        if result.chunk_id is None:
            if result.status == ResultStatus.MISSING:
                return Signature(UNSIGNED)  # nothing was sent to the enclave: nothing to sign
            return Signature(UNVERIFIED, "", "the result names no signed chunk")
        chunk = result.chunk
        try:
            entries = self._cached(self._chunks, chunk.pk, lambda: self._entries(chunk, result))
            self._compare(result, chunk, entries)
            if result.network or result.systemic:
                signed = self.network(result.closing)
                if signed.agents.get(result.agent.acronym) != result.network:
                    raise AnswerVerificationError("the network figures differ from the signed")
                if signed.systemic_agents.get(result.agent.acronym, {}) != result.systemic:
                    raise AnswerVerificationError("the systemic figures differ from the signed")
        except (AnswerVerificationError, KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = str(exc) if isinstance(exc, AnswerVerificationError) else type(exc).__name__
            logger.warning("leverage result %s does not verify: %s", result.pk, reason)
            return Signature(UNVERIFIED, chunk.signing_kid, reason)
        return Signature(VERIFIED, chunk.signing_kid)

    def network(self, closing: Closing) -> SignedNetwork:
        """The closing's signed network answer, verified once per checker (raises
        AnswerVerificationError when it does not verify)."""
        return self._cached(
            self._networks, closing.pk, lambda: _signed_network(closing, self._keys)
        )

    def check_closing(self, closing: Closing) -> Signature:
        """The closing's own network figures as shown (``Closing.systemic``, ``tracking``)
        against its signed network answer."""
        if not closing.network_token:
            return Signature(UNSIGNED)  # no network answer (none computed, degraded rule)
        try:
            signed = self.network(closing)
            if signed.systemic != (closing.systemic or {}):
                raise AnswerVerificationError("the systemic measures differ from the signed")
            if signed.tracking != (closing.tracking or {}):
                raise AnswerVerificationError("the communities' transition differs from the signed")
        except (AnswerVerificationError, KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = str(exc) if isinstance(exc, AnswerVerificationError) else type(exc).__name__
            logger.warning("closing %s network answer does not verify: %s", closing.pk, reason)
            return Signature(UNVERIFIED, closing.network_signing_kid, reason)
        return Signature(VERIFIED, closing.network_signing_kid)

    def check_membership(self, closing: Closing, stored: dict[str, dict[str, Any]]) -> Signature:
        """Every stored agent's network figures (``{acronym: LeverageResult.network}``, the
        memberships tracking reads) against the closing's signed answer."""
        try:
            signed = self.network(closing)
            if {a: n for a, n in stored.items() if n} != signed.agents:
                raise AnswerVerificationError("the stored communities differ from the signed")
        except (AnswerVerificationError, KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = str(exc) if isinstance(exc, AnswerVerificationError) else type(exc).__name__
            logger.warning("closing %s communities do not verify: %s", closing.pk, reason)
            return Signature(UNVERIFIED, closing.network_signing_kid, reason)
        return Signature(VERIFIED, closing.network_signing_kid)

    def _entries(self, chunk: ClosingChunk, result: LeverageResult):
        return _chunk_entries(chunk, result.closing, self._keys)

    @staticmethod
    def _cached(cache: dict, key: int, compute):
        if key not in cache:
            try:
                cache[key] = compute()
            except (AnswerVerificationError, KeyError, TypeError, ValueError) as exc:
                cache[key] = exc
        value = cache[key]
        if isinstance(value, Exception):
            raise value
        return value

    @staticmethod
    def _compare(result: LeverageResult, chunk: ClosingChunk, entries: list) -> None:
        position = next(
            (i for i, pin in enumerate(chunk.items) if pin.get("agent") == result.agent_id), None
        )
        if position is None:
            raise AnswerVerificationError("the agent is not in its chunk's signed answer")
        pin = chunk.items[position]
        entry = entries[position]
        agent = entry.get("agent") or {}
        if (agent.get("acronym"), agent.get("cnpj")) != (result.agent.acronym, result.agent.cnpj):
            raise AnswerVerificationError("the signed entry is another agent's")
        signed = result_row(result.closing, chunk, pin, entry)
        for name in SIGNED_FIELDS:
            if getattr(signed, name) != getattr(result, name):
                raise AnswerVerificationError(f"the stored {name} differs from the signed one")


def check(result: LeverageResult) -> Signature:
    """One result's signature status (a page of results: use one SignatureChecker)."""
    return SignatureChecker().check(result)
