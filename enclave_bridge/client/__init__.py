"""Host-side client of the enclave (pure Python, no Django): one method per operation, over
``connection`` (pooling, framing, retries) and ``trust`` (attestation and answer verification).

Trust flow the host follows:

1. ``client.health()`` — ``state`` is ``locked`` after the enclave (re)starts.
2. First boot: ``keys = client.init()`` and store ``keys.sealed_keys``; later boots:
   ``client.unseal(stored_blob)``. Either way, then:
3. ``att = client.attest()`` and ``check_attestation(att, trusted_root=..., expected_pcrs=...)``:
   this proves the JWKS (and the result-signing key) come from an enclave running the expected
   image. ``client.register_signing_key(att.signing_jwk)`` then makes every later answer verified
   against that key; a forged signature, another request's id or nonce, or a stale timestamp
   raise ``AnswerVerificationError``.

Retries (with exponential backoff) happen only on connection failures, including an enclave
that refused the connection as ``busy``, and always resend the SAME request id and nonce: the
enclave answers a retried request from its cache instead of running it twice, so even ``init`` or
``rotate`` are safe to retry.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jwcrypto import jwk

from enclave_bridge.wire.protocol import (
    DEFAULT_MAX_FRAME,
    E_FRAME_TOO_LARGE,
    AnswerVerificationError,
    b64url_decode,
    encode_request,
    registry_entries,
    registry_sha256,
)
from enclave_bridge.wire.transport import Address, parse_address

from .connection import ConnectionPool
from .errors import EnclaveConnectionError, EnclaveError
from .trust import (
    AnswerVerifier,
    Attestation,
    KeySet,
    SignedAnswer,
    check_attestation,
    keyset_from,
)

__all__ = [
    "AnswerVerificationError",
    "Attestation",
    "EnclaveClient",
    "EnclaveConnectionError",
    "EnclaveError",
    "KeySet",
    "SignedAnswer",
    "check_attestation",
]

DEFAULT_CHUNK_BYTES = 6 * 1024 * 1024  # stays under the enclave's default 8 MiB frame limit
MAX_ANSWER_FRAME = 1024 * 1024 * 1024


class EnclaveClient:
    """Talks to one enclave address; thread-safe; reuses up to ``pool_size`` idle connections.

    A pooled connection idle for more than ``max_idle`` seconds is closed, by a background sweep
    as well as when the pool is next used: the enclave has a bounded number of connection slots
    (``--max-connections``, 32 by default; it sheds the longest-idle connection when they run
    out and closes idle ones itself after its idle timeout, 75 s), so quiet web and Celery
    processes must not sit on them. Size the enclave's slots for processes × ``pool_size``.
    """

    def __init__(
        self,
        address: str | Address,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        pool_size: int = 4,
        max_idle: float = 60.0,
        signing_jwk: Mapping[str, Any] | jwk.JWK | None = None,
        max_skew_seconds: float = 300.0,
        max_answer_frame: int = MAX_ANSWER_FRAME,
        max_request_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.address = parse_address(address) if isinstance(address, str) else address
        self.timeout = timeout
        self.max_request_frame = max_request_frame  # the enclave's --max-frame
        self.pool = ConnectionPool(
            self.address,
            retries=retries,
            backoff=backoff,
            pool_size=pool_size,
            max_idle=max_idle,
            max_answer_frame=max_answer_frame,
        )
        self._verifier = AnswerVerifier(signing_jwk, max_skew_seconds=max_skew_seconds)

    # --- trust -----------------------------------------------------------------------------------

    def register_signing_key(self, key: Mapping[str, Any] | jwk.JWK) -> None:
        """Trust this public key (from a checked attestation) for every later answer."""
        self._verifier.register(key)

    @property
    def signing_kid(self) -> str | None:
        return self._verifier.kid

    # --- connections -----------------------------------------------------------------------------

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> EnclaveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests --------------------------------------------------------------------------------

    def call(
        self,
        op: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        nonce: bytes | None = None,
    ) -> Any:
        """Send one request and return its verified result (raise EnclaveError on an error)."""
        return self.call_signed(
            op, args, timeout=timeout, request_id=request_id, nonce=nonce
        ).result

    def call_signed(
        self,
        op: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        nonce: bytes | None = None,
    ) -> SignedAnswer:
        """Like ``call``, and also return the JWS and the digest of the args it is bound to, so a
        stored verdict can be verified again later (``verify_answer`` with the signing key)."""
        req_id = request_id or uuid.uuid4().hex
        nonce = nonce or os.urandom(32)
        # The signed answer must be about exactly these args: the digest of the bytes sent.
        frame, digest = encode_request(req_id=req_id, op=op, nonce=nonce, args=dict(args or {}))
        if len(frame) - 4 > self.max_request_frame:
            raise EnclaveError(
                E_FRAME_TOO_LARGE,
                f"request of {len(frame) - 4} bytes exceeds the enclave's frame limit of "
                f"{self.max_request_frame} bytes (send a batch in chunks)",
            )
        answer = self.pool.exchange(frame, timeout or self.timeout)
        return self._verifier.interpret(answer, req_id=req_id, nonce=nonce, op=op, digest=digest)

    # --- one method per op -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.call("health")

    def describe(self) -> dict[str, Any]:
        return self.call("describe")

    def init(self, *, aws_credentials: Mapping[str, str] | None = None) -> KeySet:
        """First boot: the enclave generates its keys; store ``sealed_keys`` for later boots."""
        return keyset_from(self.call("init", _creds(aws_credentials)))

    def unseal(
        self, sealed_keys: bytes, *, aws_credentials: Mapping[str, str] | None = None
    ) -> KeySet:
        """Later boots: hand back the stored sealed key set (KMS releases it to the enclave only)."""
        return keyset_from(
            self.call("unseal", {"sealed_keys": sealed_keys, **_creds(aws_credentials)})
        )

    def rotate(
        self, *, rotate_signing: bool = False, aws_credentials: Mapping[str, str] | None = None
    ) -> KeySet:
        """New envelope key; the answer is signed by the current (trusted) signing key."""
        keys = keyset_from(
            self.call("rotate", {"rotate_signing": rotate_signing, **_creds(aws_credentials)})
        )
        if rotate_signing:
            self.register_signing_key(keys.signing_jwk)
        return keys

    def attest(self, nonce: bytes | None = None) -> Attestation:
        """Attestation document bound to ``nonce`` (fresh random if not given) and the JWKS."""
        nonce = nonce or os.urandom(32)
        result = self.call("attest", nonce=nonce)
        return Attestation(
            document=b64url_decode(result["document"]),
            nonce=nonce,
            kid=result["kid"],
            kids=list(result["kids"]),
            signing_kid=result["signing_kid"],
            jwks=result["jwks"],
        )

    def validate(
        self, envelope: str, *, kind: str, agent: Mapping[str, str], week: str, **binding: Any
    ) -> dict[str, Any]:
        """Signed verdict: {status, errors[{field,row,rule}], digest, summary}."""
        return self.validate_signed(envelope, kind=kind, agent=agent, week=week, **binding).result

    def validate_signed(
        self,
        envelope: str,
        *,
        kind: str,
        agent: Mapping[str, str],
        week: str,
        energy_types: Iterable[str] | None = None,
        bucket_labels: Iterable[str] | None = None,
        registry_sha256: str | None = None,
    ) -> SignedAnswer:
        """The verdict with its JWS and args digest, for storing and verifying again later."""
        return self.call_signed(
            "validate",
            validate_args(
                envelope,
                kind=kind,
                agent=agent,
                week=week,
                energy_types=energy_types,
                bucket_labels=bucket_labels,
                registry_sha256=registry_sha256,
            ),
        )

    def stage_registry(self, entries: Iterable[Mapping[str, Any]]) -> str:
        """Stage the public registry ({cnpj, acronym} each) in the enclave; return its digest
        (``protocol.registry_sha256``), which validations and splits then name."""
        canonical = registry_entries(entries)
        result = self.call("registry", {"entries": canonical}, timeout=max(self.timeout, 60.0))
        if result.get("registry_sha256") != registry_sha256(canonical):
            raise AnswerVerificationError("the enclave staged another registry than the one sent")
        return result["registry_sha256"]

    def split_signed(
        self,
        envelope: str,
        *,
        week: str,
        agents: Iterable[Mapping[str, str]],
        energy_types: Iterable[str] | None = None,
        bucket_labels: Iterable[str] | None = None,
        registry_sha256: str | None = None,
        timeout: float | None = None,
    ) -> SignedAnswer:
        """One batch file → per agent its verdicts and re-encrypted envelopes (op ``split``)."""
        return self.call_signed(
            "split",
            split_args(
                envelope,
                week=week,
                agents=agents,
                energy_types=energy_types,
                bucket_labels=bucket_labels,
                registry_sha256=registry_sha256,
            ),
            timeout=timeout or max(self.timeout, 300.0),
        )

    def compute(
        self,
        parameters: Mapping[str, Any],
        items: Iterable[Mapping[str, Any]],
        *,
        network: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        parallel: int = 2,
    ) -> dict[str, Any]:
        """FA, concentration and network risk for a batch of
        ``{"agent": {acronym, cnpj[, class]}, "portfolio": JWE, "counterparties": JWE | None}``.

        A batch larger than ``chunk_bytes`` is staged (``stage_batch``) and then computed
        (``compute_batch``), so no frame exceeds the enclave's limit.
        """
        items = [dict(item) for item in items]
        timeout = timeout or max(self.timeout, 600.0)
        if sum(_item_size(item) for item in items) <= chunk_bytes:
            return self.call(
                "compute",
                {"parameters": dict(parameters), "items": items, "network": dict(network or {})},
                timeout=timeout,
            )
        batch = self.stage_batch(
            parameters, items, timeout=timeout, chunk_bytes=chunk_bytes, parallel=parallel
        )
        return self.compute_batch(batch, network=network, timeout=timeout)

    def stage_batch(
        self,
        parameters: Mapping[str, Any],
        items: Iterable[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        parallel: int = 2,
    ) -> str:
        """batch_open + batch_add chunks (``parallel`` in flight, each under ``chunk_bytes``):
        every envelope is decrypted, validated and its FA computed; returns the batch id."""
        timeout = timeout or max(self.timeout, 600.0)
        batch = self.call("batch_open", {"parameters": dict(parameters)})["batch"]
        chunks: list[list[dict[str, Any]]] = [[]]
        used = 0
        for item in items:
            size = _item_size(item)
            if chunks[-1] and used + size > chunk_bytes:
                chunks.append([])
                used = 0
            chunks[-1].append(dict(item))
            used += size

        def add(seq: int) -> None:
            self.call(
                "batch_add", {"batch": batch, "seq": seq, "items": chunks[seq]}, timeout=timeout
            )

        # Chunks in flight keep the enclave's workers busy while the next frame is in transit.
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            list(pool.map(add, range(len(chunks))))
        return batch

    def compute_batch(
        self, batch: str, *, network: Mapping[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Network model over a staged batch and every agent's results (the batch is consumed)."""
        return self.call(
            "compute",
            {"batch": batch, "network": dict(network or {})},
            timeout=timeout or max(self.timeout, 600.0),
        )

    # --- the weekly closing ----------------------------------------------------------------------

    def closing_chunk_signed(
        self,
        batch: str,
        *,
        closing: str,
        chunk: int,
        registry_sha256: str | None = None,
        timeout: float | None = None,
    ) -> SignedAnswer:
        """One closing chunk over a staged batch (``stage_batch``): the batch is consumed."""
        args: dict[str, Any] = {"batch": batch, "closing": closing, "chunk": chunk}
        if registry_sha256 is not None:
            args["registry_sha256"] = registry_sha256
        return self.call_signed("closing_chunk", args, timeout=timeout or max(self.timeout, 600.0))

    def stage_parts(
        self,
        parts: Iterable[str],
        *,
        timeout: float | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> list[str] | dict[str, str]:
        """The chunks' sealed network parts as ``closing_network`` takes them: inline when
        they fit one frame, else staged (``parts_open`` + ``parts_add`` chunks under
        ``chunk_bytes``) and named ``{"staged": id}``."""
        parts = list(parts)
        if sum(len(p) + 16 for p in parts) <= chunk_bytes:
            return parts
        timeout = timeout or max(self.timeout, 600.0)
        staged = self.call("parts_open", {})["parts"]
        seq, chunk, used = 0, [], 0
        for part in parts:
            if chunk and used + len(part) + 16 > chunk_bytes:
                self.call(
                    "parts_add", {"parts": staged, "seq": seq, "items": chunk}, timeout=timeout
                )
                seq, chunk, used = seq + 1, [], 0
            chunk.append(part)
            used += len(part) + 16
        if chunk:
            self.call("parts_add", {"parts": staged, "seq": seq, "items": chunk}, timeout=timeout)
        return {"staged": staged}

    def closing_network_signed(
        self,
        *,
        parameters: Mapping[str, Any],
        parts: Iterable[str],
        trade_network: str | None = None,
        options: Mapping[str, Any] | None = None,
        previous: Mapping[str, int] | None = None,
        closing: str | None = None,
        timeout: float | None = None,
        previous_week: str | None = None,
    ) -> SignedAnswer:
        """The closing's network model over its sealed parts (staged when large)."""
        args: dict[str, Any] = {
            "parameters": dict(parameters),
            "parts": self.stage_parts(parts, timeout=timeout),
            "trade_network": trade_network,
            "options": dict(options or {}),
            "previous": None if previous is None else dict(previous),
        }
        if previous_week is not None:
            args["previous_week"] = previous_week
        if closing is not None:
            args["closing"] = closing
        return self.call_signed(
            "closing_network", args, timeout=timeout or max(self.timeout, 900.0)
        )

    def validate_trade_network_signed(
        self, envelope: str, *, week: str, timeout: float | None = None
    ) -> SignedAnswer:
        """Signed verdict {status, errors, contracts} on a prudencial/contracts/v1 envelope."""
        return self.call_signed(
            "validate_trade_network",
            {"envelope": envelope, "week": week},
            timeout=timeout or max(self.timeout, 120.0),
        )


def validate_args(
    envelope: str,
    *,
    kind: str,
    agent: Mapping[str, str],
    week: str,
    energy_types: Iterable[str] | None = None,
    bucket_labels: Iterable[str] | None = None,
    registry_sha256: str | None = None,
) -> dict[str, Any]:
    """The args of a ``validate`` request (what its signed answer's ``args_sha256`` covers)."""
    expected: dict[str, Any] = {
        "agent": {"acronym": agent["acronym"], "cnpj": agent["cnpj"]},
        "week": week,
    }
    if energy_types is not None:
        expected["energy_types"] = list(energy_types)
    if bucket_labels is not None:
        expected["bucket_labels"] = list(bucket_labels)
    args: dict[str, Any] = {"envelope": envelope, "kind": kind, "expected": expected}
    if registry_sha256 is not None:
        args["registry_sha256"] = registry_sha256
    return args


def split_args(
    envelope: str,
    *,
    week: str,
    agents: Iterable[Mapping[str, str]],
    energy_types: Iterable[str] | None = None,
    bucket_labels: Iterable[str] | None = None,
    registry_sha256: str | None = None,
) -> dict[str, Any]:
    """The args of a ``split`` request."""
    args: dict[str, Any] = {
        "envelope": envelope,
        "week": week,
        "agents": [{"acronym": a["acronym"], "cnpj": a["cnpj"]} for a in agents],
    }
    if energy_types is not None:
        args["energy_types"] = list(energy_types)
    if bucket_labels is not None:
        args["bucket_labels"] = list(bucket_labels)
    if registry_sha256 is not None:
        args["registry_sha256"] = registry_sha256
    return args


def _item_size(item: Mapping[str, Any]) -> int:
    return len(item.get("portfolio") or "") + len(item.get("counterparties") or "") + 256


def _creds(credentials: Mapping[str, str] | None) -> dict[str, Any]:
    return {} if credentials is None else {"aws_credentials": dict(credentials)}
