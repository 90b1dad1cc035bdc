"""The one attestation verifier, for production (AWS root) and development (dev root) alike.

Agents, the host and the KMS simulator all call `verify_attestation`; only the trust anchor and
the policy arguments differ. Time rules (see docs/attestation.md):
- every certificate of the chain must be valid at the document's own timestamp;
- the document must not come from the future (beyond `clock_skew`) and, when `max_age` is given,
  must be at most `max_age` old at `now`;
- with `require_leaf_valid_at_now` (the default, for production) every certificate of the chain,
  the short-lived enclave leaf included, must also be valid at `now`. Test vectors from the past
  are checked with `now` set to their timestamp, or with that flag off.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from .cose import CoseError, decode_sign1, loads_exact, verify_sign1
from .nsm import MAX_NONCE, MAX_PUBLIC_KEY, MAX_USER_DATA, PCR_SIZE

logger = logging.getLogger(__name__)

AWS_NITRO_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
DEFAULT_CLOCK_SKEW = dt.timedelta(seconds=60)
_MAX_PCR_INDEX = 31
_HANDLED_CRITICAL = {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE}
_CHAIN_NAMES = ("root", "regional", "zonal", "instance")


class AttestationError(Exception):
    """An attestation document was refused; the message names the check that failed."""


@dataclass(frozen=True)
class AttestationDocument:
    """The verified content of a Nitro attestation document."""

    module_id: str
    timestamp: dt.datetime
    pcrs: Mapping[int, bytes]
    certificate: x509.Certificate
    cabundle: tuple[x509.Certificate, ...]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None

    @property
    def is_debug(self) -> bool:
        """Debug-mode enclaves report PCR0, PCR1 and PCR2 as all zeros."""
        return all(not any(self.pcrs.get(i, b"")) for i in (0, 1, 2))


@cache
def aws_nitro_root() -> x509.Certificate:
    """The AWS Nitro Enclaves root certificate shipped with this package, fingerprint-checked."""
    pem = resources.files(__package__).joinpath("aws_nitro_root.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    if _sha256(cert) != AWS_NITRO_ROOT_SHA256:
        raise AttestationError("packaged AWS Nitro root does not match its pinned SHA-256")
    return cert


def _sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_trusted_root(root: x509.Certificate | bytes) -> x509.Certificate:
    """Accept a root as a certificate object, PEM bytes or DER bytes."""
    if isinstance(root, x509.Certificate):
        return root
    try:
        if root.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(root)
        return x509.load_der_x509_certificate(root)
    except ValueError:
        raise AttestationError("trusted root is neither a PEM nor a DER certificate") from None


def _optional_bytes(payload: Mapping, name: str, limit: int) -> bytes | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise AttestationError(f"payload field {name!r} must be a byte string or null")
    if len(value) > limit:
        raise AttestationError(f"payload field {name!r} is {len(value)} bytes (limit {limit})")
    return value


def _parse_payload(raw: bytes) -> dict:
    try:
        payload = loads_exact(raw)
    except CoseError as exc:
        raise AttestationError(f"payload is not CBOR: {exc}") from None
    if not isinstance(payload, Mapping):
        raise AttestationError("payload is not a CBOR map")
    module_id = payload.get("module_id")
    if not isinstance(module_id, str) or not module_id:
        raise AttestationError("payload field 'module_id' must be a non-empty text string")
    if payload.get("digest") != "SHA384":
        raise AttestationError("payload field 'digest' must be 'SHA384'")
    timestamp = payload.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp <= 0:
        raise AttestationError("payload field 'timestamp' must be a positive integer (ms)")
    pcrs = payload.get("pcrs")
    if not isinstance(pcrs, Mapping) or not pcrs:
        raise AttestationError("payload field 'pcrs' must be a non-empty map")
    for index, value in pcrs.items():
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index <= _MAX_PCR_INDEX
        ):
            raise AttestationError("payload field 'pcrs' has an index outside 0..31")
        if not isinstance(value, bytes) or len(value) != PCR_SIZE:
            raise AttestationError(f"PCR{index} must be a {PCR_SIZE}-byte string")
    for index in (0, 1, 2):
        if index not in pcrs:
            raise AttestationError(f"payload field 'pcrs' lacks PCR{index}")
    if not isinstance(payload.get("certificate"), bytes):
        raise AttestationError("payload field 'certificate' must be a byte string")
    cabundle = payload.get("cabundle")
    if (
        not isinstance(cabundle, Sequence)
        or isinstance(cabundle, (bytes, str))
        or not cabundle
        or not all(isinstance(c, bytes) for c in cabundle)
    ):
        raise AttestationError("payload field 'cabundle' must be a non-empty array of byte strings")
    return {
        "module_id": module_id,
        "timestamp": timestamp,
        "pcrs": {int(i): bytes(v) for i, v in pcrs.items()},
        "certificate": payload["certificate"],
        "cabundle": list(cabundle),
        "public_key": _optional_bytes(payload, "public_key", MAX_PUBLIC_KEY),
        "user_data": _optional_bytes(payload, "user_data", MAX_USER_DATA),
        "nonce": _optional_bytes(payload, "nonce", MAX_NONCE),
    }


def _cert_label(position: int, total: int) -> str:
    if position == total - 1:
        return "enclave leaf certificate"
    name = _CHAIN_NAMES[position] if position < len(_CHAIN_NAMES) else f"CA #{position}"
    return f"{name} certificate (cabundle[{position}])"


def _check_validity(cert: x509.Certificate, at: dt.datetime, label: str, what: str) -> None:
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise AttestationError(
            f"{label} is not valid at {what} {at.isoformat()} "
            f"(valid {cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()})"
        )


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier, label: str, name: str):
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        raise AttestationError(f"{label} has no {name} extension") from None


def _check_chain(chain: list[x509.Certificate]) -> None:
    """Walk root → … → leaf: signatures, CA flags, path lengths, key usages."""
    total = len(chain)
    for position, cert in enumerate(chain):
        label = _cert_label(position, total)
        try:
            extensions = cert.extensions
        except (ValueError, x509.DuplicateExtension) as exc:
            raise AttestationError(
                f"{label} has malformed extensions ({type(exc).__name__})"
            ) from None
        for ext in extensions:
            if ext.critical and ext.oid not in _HANDLED_CRITICAL:
                raise AttestationError(
                    f"{label} has an unsupported critical extension {ext.oid.dotted_string}"
                )
        issuer = chain[position - 1] if position else cert
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise AttestationError(
                f"{label} is not signed by {_cert_label(max(position - 1, 0), total)} "
                f"({type(exc).__name__})"
            ) from None
        constraints = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS, label, "basicConstraints")
        usage = _extension(cert, ExtensionOID.KEY_USAGE, label, "keyUsage")
        if position < total - 1:
            if not constraints.ca:
                raise AttestationError(f"{label} is not a CA (basicConstraints CA:false)")
            cas_below = total - 2 - position  # CA certificates between this one and the leaf
            if constraints.path_length is not None and cas_below > constraints.path_length:
                raise AttestationError(
                    f"{label} has pathlen {constraints.path_length} but {cas_below} CA(s) follow it"
                )
            if not usage.key_cert_sign:
                raise AttestationError(f"{label} keyUsage lacks keyCertSign")
        else:
            if constraints.ca:
                raise AttestationError(f"{label} must not be a CA")
            if not usage.digital_signature:
                raise AttestationError(f"{label} keyUsage lacks digitalSignature")


def _verify(
    document: bytes,
    *,
    trusted_root: x509.Certificate | bytes,
    root_sha256: str | None = None,
    now: dt.datetime,
    max_age: dt.timedelta | None,
    expected_nonce: bytes | None,
    expected_pcrs: Mapping[int, bytes] | None,
    allow_debug: bool = False,
    require_leaf_valid_at_now: bool = True,
    clock_skew: dt.timedelta = DEFAULT_CLOCK_SKEW,
) -> AttestationDocument:
    if now.tzinfo is None:
        raise AttestationError("`now` must be timezone-aware")
    if not isinstance(document, bytes):
        raise AttestationError("attestation document must be bytes")
    root = load_trusted_root(trusted_root)
    if root_sha256 is not None and not hmac.compare_digest(_sha256(root), root_sha256.lower()):
        raise AttestationError("trusted root does not match the pinned SHA-256 fingerprint")

    try:
        message = decode_sign1(document)
        if message.unprotected:
            raise CoseError("COSE unprotected header must be empty")
        if message.algorithm != -35:
            raise CoseError(f"COSE algorithm {message.algorithm!r} is not ES384 (-35)")
    except CoseError as exc:
        raise AttestationError(f"COSE structure: {exc}") from None

    fields = _parse_payload(message.payload)
    try:
        certs_der = fields["cabundle"] + [fields["certificate"]]
        chain = [x509.load_der_x509_certificate(der) for der in certs_der]
    except ValueError:
        raise AttestationError(
            "a certificate in 'cabundle' or 'certificate' is not valid DER"
        ) from None

    root_der = root.public_bytes(serialization.Encoding.DER)
    if not hmac.compare_digest(fields["cabundle"][0], root_der):
        raise AttestationError("cabundle[0] is not the trusted root certificate")
    _check_chain(chain)

    leaf_key = chain[-1].public_key()
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or not isinstance(
        leaf_key.curve, ec.SECP384R1
    ):
        raise AttestationError("enclave leaf certificate key is not P-384")
    try:
        verify_sign1(message, leaf_key)
    except CoseError as exc:
        raise AttestationError(f"signature: {exc}") from None

    timestamp = dt.datetime.fromtimestamp(fields["timestamp"] / 1000, dt.UTC)
    for position, cert in enumerate(chain):
        _check_validity(cert, timestamp, _cert_label(position, len(chain)), "document timestamp")
    if timestamp > now + clock_skew:
        raise AttestationError(
            f"document timestamp {timestamp.isoformat()} is in the future (now {now.isoformat()})"
        )
    if max_age is not None and now - timestamp > max_age:
        raise AttestationError(
            f"document is stale: timestamp {timestamp.isoformat()} is older than {max_age} at {now.isoformat()}"
        )
    if require_leaf_valid_at_now:
        # Leaf first: it is the one that expires within hours, so name it when it is the cause.
        for position, cert in reversed(list(enumerate(chain))):
            _check_validity(cert, now, _cert_label(position, len(chain)), "now")

    if expected_nonce is not None and (
        fields["nonce"] is None or not hmac.compare_digest(fields["nonce"], expected_nonce)
    ):
        raise AttestationError("nonce does not match the expected nonce")
    pcrs = fields["pcrs"]
    if expected_pcrs is not None:
        if not expected_pcrs:
            # An empty expectation reads as "check the image" but checks nothing: refuse it.
            # None is the explicit "no image check" (KMS checks PCRs by its own key policy).
            raise AttestationError("expected_pcrs is empty: name the PCRs to check, or pass None")
        for index, expected in sorted(expected_pcrs.items()):
            actual = pcrs.get(index)
            if actual is None:
                raise AttestationError(f"PCR{index} is expected but absent from the document")
            if not hmac.compare_digest(actual, expected):
                raise AttestationError(f"PCR{index} does not match the expected value")
    result = AttestationDocument(
        module_id=fields["module_id"],
        timestamp=timestamp,
        pcrs=pcrs,
        certificate=chain[-1],
        cabundle=tuple(chain[:-1]),
        public_key=fields["public_key"],
        user_data=fields["user_data"],
        nonce=fields["nonce"],
    )
    if result.is_debug and not allow_debug:
        raise AttestationError("debug-mode enclave (PCR0, PCR1 and PCR2 are all zero) refused")
    logger.debug("attestation verified for module %s", result.module_id)
    return result


def verify_attestation(
    document: bytes,
    *,
    trusted_root: x509.Certificate | bytes,
    root_sha256: str | None = None,
    now: dt.datetime,
    max_age: dt.timedelta | None,
    expected_nonce: bytes | None,
    expected_pcrs: Mapping[int, bytes] | None,
    allow_debug: bool = False,
    require_leaf_valid_at_now: bool = True,
    clock_skew: dt.timedelta = DEFAULT_CLOCK_SKEW,
) -> AttestationDocument:
    """Verify a Nitro attestation document and return its content; raise AttestationError.

    Production: trusted_root=aws_nitro_root(), root_sha256=AWS_NITRO_ROOT_SHA256, a max_age of
    minutes, the expected nonce and PCRs, allow_debug=False. Development: the dev PKI root.
    """
    try:
        return _verify(
            document,
            trusted_root=trusted_root,
            root_sha256=root_sha256,
            now=now,
            max_age=max_age,
            expected_nonce=expected_nonce,
            expected_pcrs=expected_pcrs,
            allow_debug=allow_debug,
            require_leaf_valid_at_now=require_leaf_valid_at_now,
            clock_skew=clock_skew,
        )
    except AttestationError:
        raise
    except Exception as exc:
        # A crafted document must never surface as anything but a refusal (and no raw bytes).
        raise AttestationError(f"malformed attestation document ({type(exc).__name__})") from None
