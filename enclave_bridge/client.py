"""Host-side client of the enclave (pure Python, no Django): framing, pooling, retries, and
verification of every signed answer.

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

import datetime as dt
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cbor2
from jwcrypto import jwk

from enclave_bridge.wire.protocol import (
    DEFAULT_MAX_FRAME,
    E_BUSY,
    E_FRAME_TOO_LARGE,
    E_LOCKED,
    LOCKED_OPS,
    AnswerVerificationError,
    ConnectionClosed,
    b64url_decode,
    canonical_json,
    decode_message,
    encode_request,
    read_frame_bytes,
    verify_answer,
)
from enclave_bridge.wire.transport import Address, connect, parse_address

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


class EnclaveError(Exception):
    """The enclave answered with an error frame (code + message, never payload values).

    ``signed`` is True when the error came signed by the registered key (an unlocked enclave
    signs its errors); unsigned errors come from a locked enclave or from the framing layer.
    """

    def __init__(self, code: str, message: str, *, signed: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.signed = signed


class EnclaveConnectionError(Exception):
    """The enclave could not be reached or the connection broke, after all retries."""


@dataclass(frozen=True)
class KeySet:
    """Answer of init / unseal / rotate."""

    kid: str
    kids: list[str]
    signing_kid: str
    jwks: dict[str, Any]
    sealed_keys: bytes | None

    @property
    def signing_jwk(self) -> dict[str, Any]:
        return _signing_jwk(self.jwks, self.signing_kid)


@dataclass(frozen=True)
class Attestation:
    """Answer of attest: the NSM document plus the JWKS it binds."""

    document: bytes
    nonce: bytes
    kid: str
    kids: list[str]
    signing_kid: str
    jwks: dict[str, Any]

    @property
    def signing_jwk(self) -> dict[str, Any]:
        return _signing_jwk(self.jwks, self.signing_kid)

    def envelope_jwk(self, kid: str | None = None) -> dict[str, Any]:
        """The public key agents encrypt to (the current one unless a kid is given)."""
        want = kid or self.kid
        for key in self.jwks["keys"]:
            if key.get("kid") == want and key.get("use") == "enc":
                return key
        raise KeyError(want)


def _signing_jwk(jwks: Mapping[str, Any], kid: str) -> dict[str, Any]:
    for key in jwks.get("keys", []):
        if key.get("kid") == kid and key.get("use") == "sig":
            return dict(key)
    raise AnswerVerificationError("answer's JWKS holds no signing key with the announced kid")


def check_attestation(
    attestation: Attestation,
    *,
    trusted_root: Any,
    expected_pcrs: Mapping[int, bytes] | None,
    root_sha256: str | None = None,
    max_age: dt.timedelta | None = dt.timedelta(minutes=5),
    allow_debug: bool = False,
    now: dt.datetime | None = None,
) -> Any:
    """Verify the document (chain, signature, PCRs, nonce) and that it binds this JWKS.

    Returns the verified AttestationDocument. Raises AttestationError or AnswerVerificationError.
    """
    from cryptography.hazmat.primitives import serialization

    from enclave_bridge.attestation.verify import verify_attestation

    doc = verify_attestation(
        attestation.document,
        trusted_root=trusted_root,
        root_sha256=root_sha256,
        now=now or dt.datetime.now(dt.UTC),
        max_age=max_age,
        expected_nonce=attestation.nonce,
        expected_pcrs=expected_pcrs,
        allow_debug=allow_debug,
    )
    current = jwk.JWK(**attestation.envelope_jwk())
    spki = current.get_op_key("encrypt").public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if doc.public_key != spki:
        raise AnswerVerificationError("attested public_key is not the current envelope key")
    try:
        bound = cbor2.loads(doc.user_data or b"")
    except Exception as exc:
        raise AnswerVerificationError("attested user_data is not the expected CBOR map") from exc
    envelope_keys = [k for k in attestation.jwks["keys"] if k.get("use") == "enc"]
    digest = hashlib.sha256(canonical_json({"keys": envelope_keys})).digest()
    signing = jwk.JWK(**attestation.signing_jwk).get_op_key("verify")
    sig_spki = signing.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not isinstance(bound, dict) or (
        bound.get("kid"),
        bound.get("jwks_sha256"),
        bound.get("sig_kid"),
        bound.get("sig_spki"),
    ) != (attestation.kid, digest, attestation.signing_kid, sig_spki):
        raise AnswerVerificationError("attested user_data does not bind this JWKS and signing key")
    return doc


@dataclass(frozen=True)
class SignedAnswer:
    """A verified result with what binds it: the JWS (None only for a locked enclave's health or
    describe), the SHA-256 of the args it answers, and the request id and nonce it echoes."""

    result: Any
    token: str | None
    args_sha256: str
    request_id: str
    nonce: bytes


class EnclaveClient:
    """Talks to one enclave address; thread-safe; reuses up to ``pool_size`` idle connections.

    A pooled connection idle for more than ``max_idle`` seconds is closed, by a background sweep
    as well as when the pool is next used: the enclave has a bounded number of connection slots
    (``--max-connections``, 32 by default; it closes idle ones itself after its own idle timeout,
    300 s), so quiet web and Celery processes must not sit on them. Size the enclave's slots for
    processes × ``pool_size`` at peak.
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
        self.retries = retries
        self.backoff = backoff
        self.pool_size = pool_size
        self.max_idle = max_idle
        self.max_skew_seconds = max_skew_seconds
        self.max_answer_frame = max_answer_frame
        self.max_request_frame = max_request_frame  # the enclave's --max-frame
        self._idle: list[tuple[socket.socket, float]] = []  # (connection, released at)
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._closed = threading.Event()
        self._signing: jwk.JWK | None = None
        if signing_jwk is not None:
            self.register_signing_key(signing_jwk)

    # --- trust -----------------------------------------------------------------------------------

    def register_signing_key(self, key: Mapping[str, Any] | jwk.JWK) -> None:
        """Trust this public key (from a checked attestation) for every later answer."""
        key = key if isinstance(key, jwk.JWK) else jwk.JWK(**dict(key))
        if key.get("kty") != "EC" or key.get("crv") != "P-384" or key.has_private:
            raise ValueError("signing key must be a public EC P-384 JWK")
        self._signing = key

    @property
    def signing_kid(self) -> str | None:
        return None if self._signing is None else self._signing.get("kid")

    # --- connections -----------------------------------------------------------------------------

    def _take_stale(self) -> list[socket.socket]:
        """Remove (under the lock) and return the pooled connections idle past max_idle."""
        limit = time.monotonic() - self.max_idle
        stale = [c for c, released in self._idle if released < limit]
        self._idle = [(c, released) for c, released in self._idle if released >= limit]
        return stale

    def _sweep(self) -> None:
        """Background: close idle connections past max_idle even if this process stays quiet."""
        while not self._closed.wait(max(self.max_idle / 2, 0.05)):
            with self._lock:
                stale = self._take_stale()
            for old in stale:
                old.close()

    def _acquire(self, timeout: float) -> socket.socket:
        with self._lock:
            stale = self._take_stale()
            sock = self._idle.pop()[0] if self._idle else None
        for old in stale:
            old.close()
        if sock is None:
            sock = connect(self.address, timeout=timeout)
        sock.settimeout(timeout)
        return sock

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < self.pool_size and not self._closed.is_set():
                self._idle.append((sock, time.monotonic()))
                if self._sweeper is None:
                    self._sweeper = threading.Thread(
                        target=self._sweep, name="enclave-pool-sweep", daemon=True
                    )
                    self._sweeper.start()
                return
        sock.close()

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            idle, self._idle = self._idle, []
        for sock, _ in idle:
            sock.close()

    def __enter__(self) -> EnclaveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exchange(self, frame: bytes, timeout: float) -> dict[str, Any]:
        attempt = 0
        while True:
            sock = None
            try:
                sock = self._acquire(timeout)
                try:
                    sock.sendall(frame)
                except (BrokenPipeError, ConnectionResetError):
                    # The enclave may have refused the frame and closed: read its refusal, if
                    # it sent one, rather than report a bare broken pipe.
                    body = read_frame_bytes(sock, max_frame=self.max_answer_frame)
                    if body is None:
                        raise
                else:
                    body = read_frame_bytes(sock, max_frame=self.max_answer_frame)
                if body is None:
                    raise ConnectionClosed("enclave closed the connection")
                # An answer is as large as the batch the host asked for: bounded by the answer
                # frame limit, not by the enclave's per-request item budget.
                answer = decode_message(body, max_items=max(len(body), 1))
                if _refused_busy(answer) and attempt < self.retries:
                    # All connection slots were taken: the enclave closed without running the
                    # request, so it is retried like a connection failure.
                    raise ConnectionClosed("enclave refused the connection: busy")
                if answer.get("id") is None:
                    sock.close()  # a frame-level refusal: the enclave closes after sending it
                else:
                    self._release(sock)
                return answer
            except (OSError, ConnectionClosed) as exc:
                if sock is not None:
                    sock.close()
                attempt += 1
                if attempt > self.retries:
                    raise EnclaveConnectionError(
                        f"enclave at {self.address} unreachable after {attempt} attempt(s): "
                        f"{type(exc).__name__}"
                    ) from exc
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            except BaseException:
                # Anything else (an oversized or undecodable answer frame, an interrupt): the
                # connection is in an unknown state, so it is never pooled.
                if sock is not None:
                    sock.close()
                raise

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
        answer = self._exchange(frame, timeout or self.timeout)
        if answer.get("id") != req_id or answer.get("nonce") != nonce:
            if "error" in answer and answer.get("id") is None:
                # A frame-level refusal (busy, oversize): signed once the enclave holds keys.
                err, signed = answer["error"], False
                if self._signing is not None and "answer" in answer:
                    token = answer["answer"]
                    err = self._verified(token, None, b"", None, None, announced=False)["error"]
                    signed = True
                raise EnclaveError(str(err.get("code")), str(err.get("message")), signed=signed)
            raise AnswerVerificationError("answer frame is for another request (id or nonce)")
        if "error" in answer:
            err, signed = answer["error"], False
            if self._signing is not None:
                if "answer" in answer:
                    token = answer["answer"]
                    err = self._verified(token, req_id, nonce, op, digest, announced=False)["error"]
                    signed = True
                elif err.get("code") != E_LOCKED and op not in LOCKED_OPS:
                    # An unlocked enclave signs its errors: an unsigned one was forged or altered
                    # on the way. Only a locked enclave (no keys yet) answers unsigned: "locked",
                    # or the failure of a boot op (a forged one could only deny service).
                    raise AnswerVerificationError("error answer is not signed")
            raise EnclaveError(str(err.get("code")), str(err.get("message")), signed=signed)
        if "answer" in answer:
            token = answer["answer"]
            result = self._verified(token, req_id, nonce, op, digest)
            return SignedAnswer(result, token, digest, req_id, nonce)
        result = answer.get("result")
        if (
            op in ("health", "describe")
            and isinstance(result, dict)
            and result.get("state") == "locked"
        ):
            # A locked enclave holds no signing key yet.
            return SignedAnswer(result, None, digest, req_id, nonce)
        raise AnswerVerificationError("answer is not signed")

    def _verified(
        self,
        token: str,
        req_id: str | None,
        nonce: bytes,
        op: str | None,
        digest: str | None,
        *,
        announced: bool = True,
    ) -> Any:
        key = self._signing
        if announced and op in ("init", "unseal", "attest"):
            # These answers carry the JWKS; the signature is checked with the key they announce,
            # and that key must equal the registered one if any. A fresh key becomes trusted only
            # once check_attestation has tied it to the attested image.
            announced = self._announced_key(token)
            if key is not None and op != "init" and key.thumbprint() != announced.thumbprint():
                raise AnswerVerificationError("answer is signed by an unexpected key")
            key = announced
        if key is None:
            raise AnswerVerificationError(
                "no signing key registered: attest, check_attestation, register_signing_key first"
            )
        body = verify_answer(
            token,
            key,
            req_id=req_id,
            nonce=nonce,
            op=op,
            args_digest=digest,
            max_skew_seconds=self.max_skew_seconds,
        )
        return body["result"]

    @staticmethod
    def _announced_key(token: str) -> jwk.JWK:
        try:
            header_b64, payload_b64, _ = token.split(".")
            header = json.loads(b64url_decode(header_b64))
            result = json.loads(b64url_decode(payload_b64))["result"]
            return jwk.JWK(**_signing_jwk(result["jwks"], header["kid"]))
        except AnswerVerificationError:
            raise
        except Exception as exc:
            raise AnswerVerificationError("answer does not announce its signing key") from exc

    # --- one method per op -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.call("health")

    def describe(self) -> dict[str, Any]:
        return self.call("describe")

    def init(self, *, aws_credentials: Mapping[str, str] | None = None) -> KeySet:
        """First boot: the enclave generates its keys; store ``sealed_keys`` for later boots."""
        return _keyset(self.call("init", _creds(aws_credentials)))

    def unseal(
        self, sealed_keys: bytes, *, aws_credentials: Mapping[str, str] | None = None
    ) -> KeySet:
        """Later boots: hand back the stored sealed key set (KMS releases it to the enclave only)."""
        return _keyset(self.call("unseal", {"sealed_keys": sealed_keys, **_creds(aws_credentials)}))

    def rotate(
        self, *, rotate_signing: bool = False, aws_credentials: Mapping[str, str] | None = None
    ) -> KeySet:
        """New envelope key; the answer is signed by the current (trusted) signing key."""
        keys = _keyset(
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
        self, envelope: str, *, kind: str, agent: Mapping[str, str], week: str
    ) -> dict[str, Any]:
        """Signed verdict: {status, errors[{field,row,rule}], digest, summary}."""
        return self.validate_signed(envelope, kind=kind, agent=agent, week=week).result

    def validate_signed(
        self, envelope: str, *, kind: str, agent: Mapping[str, str], week: str
    ) -> SignedAnswer:
        """The verdict with its JWS and args digest, for storing and verifying again later."""
        return self.call_signed(
            "validate",
            {
                "envelope": envelope,
                "kind": kind,
                "expected": {
                    "agent": {"acronym": agent["acronym"], "cnpj": agent["cnpj"]},
                    "week": week,
                },
            },
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


def _refused_busy(answer: Mapping[str, Any]) -> bool:
    """The framing-level refusal a full enclave sends at accept, before reading any request."""
    error = answer.get("error")
    return answer.get("id") is None and isinstance(error, dict) and error.get("code") == E_BUSY


def _item_size(item: Mapping[str, Any]) -> int:
    return len(item.get("portfolio") or "") + len(item.get("counterparties") or "") + 256


def _creds(credentials: Mapping[str, str] | None) -> dict[str, Any]:
    return {} if credentials is None else {"aws_credentials": dict(credentials)}


def _keyset(result: Mapping[str, Any]) -> KeySet:
    sealed = result.get("sealed_keys")
    return KeySet(
        kid=result["kid"],
        kids=list(result["kids"]),
        signing_kid=result["signing_kid"],
        jwks=result["jwks"],
        sealed_keys=None if sealed is None else b64url_decode(sealed),
    )
