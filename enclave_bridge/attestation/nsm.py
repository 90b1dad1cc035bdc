"""The Nitro Security Module interface, and a SIMULATED NSM for development and tests.

On Nitro, the enclave asks /dev/nsm for an attestation document. Here there is no Nitro hardware:
`SimulatedNsm` produces documents in exactly the AWS format (COSE_Sign1 over the same CBOR map)
signed through the development PKI (devpki.py), so the same verifier and the same KMS Recipient
path run in development. `measure_pcrs` is a development stand-in for the measurements that
`nitro-cli build-enclave` prints for an enclave image file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .cose import encode_sign1
from .devpki import LEAF_VALIDITY, DevPki
from .image import MANIFEST, image_files

logger = logging.getLogger(__name__)

PCR_COUNT = 16
PCR_SIZE = 48  # SHA-384
MAX_USER_DATA = 1024
MAX_NONCE = 512
MAX_PUBLIC_KEY = 1024
# A cached leaf is replaced once less than this remains, so a document never carries a leaf that
# is about to expire (the verifier, in production mode, wants the leaf still valid when checked).
_LEAF_RENEW_MARGIN = dt.timedelta(hours=1)


@runtime_checkable
class Nsm(Protocol):
    """What enclave code needs from the NSM: attestation documents and the PCR values."""

    module_id: str

    def attest(
        self, *, public_key: bytes | None, user_data: bytes | None, nonce: bytes | None
    ) -> bytes:
        """Return a COSE_Sign1 attestation document binding the three optional fields."""
        ...

    def pcrs(self) -> dict[int, bytes]:
        """Return the platform configuration registers, index → 48-byte SHA-384 value."""
        ...


def _check_size(name: str, value: bytes | None, limit: int) -> None:
    if value is None:
        return
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes or None")
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value)} bytes; the NSM accepts at most {limit}")


class SimulatedNsm:
    """SIMULATION of the Nitro NSM: signs AWS-format attestation documents with a dev PKI leaf.

    The leaf (P-384, ~3 h, like AWS's) is issued under the development instance CA and reused
    until less than an hour of its validity remains.
    """

    def __init__(
        self,
        pki: DevPki,
        pcrs: Mapping[int, bytes],
        module_id: str = "i-development-enc0000000000000000",
    ) -> None:
        values = {i: bytes(PCR_SIZE) for i in range(PCR_COUNT)}
        for index, value in pcrs.items():
            if not 0 <= index < PCR_COUNT:
                raise ValueError(f"PCR index {index} is outside 0..{PCR_COUNT - 1}")
            if not isinstance(value, bytes) or len(value) != PCR_SIZE:
                raise ValueError(f"PCR{index} must be {PCR_SIZE} bytes")
            values[index] = value
        self._pki = pki
        self._pcrs = values
        self.module_id = module_id
        self._lock = threading.Lock()
        self._leaf: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None

    def pcrs(self) -> dict[int, bytes]:
        return dict(self._pcrs)

    def _current_leaf(
        self, now: dt.datetime
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        with self._lock:
            if self._leaf is None or self._leaf[0].not_valid_after_utc - now < _LEAF_RENEW_MARGIN:
                key = ec.generate_private_key(ec.SECP384R1())
                cert = self._pki.issue_leaf(
                    key, f"{self.module_id}.development.aws", now=now, validity=LEAF_VALIDITY
                )
                self._leaf = (cert, key)
                logger.debug("simulated NSM issued a new enclave leaf certificate")
            return self._leaf

    def attest(
        self,
        *,
        public_key: bytes | None = None,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
    ) -> bytes:
        """Return an attestation document (untagged COSE_Sign1), as /dev/nsm would."""
        _check_size("public_key", public_key, MAX_PUBLIC_KEY)
        _check_size("user_data", user_data, MAX_USER_DATA)
        _check_size("nonce", nonce, MAX_NONCE)
        now = dt.datetime.now(dt.UTC)
        leaf, leaf_key = self._current_leaf(now)
        payload = {
            "module_id": self.module_id,
            "digest": "SHA384",
            "timestamp": int(now.timestamp() * 1000),
            "pcrs": dict(self._pcrs),
            "certificate": leaf.public_bytes(serialization.Encoding.DER),
            "cabundle": self._pki.cabundle,
            "public_key": public_key,
            "user_data": user_data,
            "nonce": nonce,
        }
        return encode_sign1(cbor2.dumps(payload), leaf_key)


def measure_pcrs(app_dir: str | Path) -> dict[int, bytes]:
    """DEVELOPMENT stand-in for `nitro-cli build-enclave` measurements (PCR0, PCR1, PCR2).

    - PCR2 ("application"): SHA-384 over the sorted relative paths and contents of exactly the
      files the image manifest lists (enclave_bridge/enclave-image.txt, the list the image build
      copies), each length-prefixed.
    - PCR1 ("kernel and boot"): SHA-384 of the Python runtime's major.minor version.
    - PCR0 ("image"): SHA-384 over PCR1 and PCR2, so any change in the enclave code changes
      PCR0, as on Nitro where PCR0 measures the whole image.
    These are not the values a real enclave image file (EIF) would have.
    """
    root = Path(app_dir).resolve()
    sources = image_files(root)
    if not sources:
        raise ValueError(f"no enclave source files under {root} (see {MANIFEST})")
    app = hashlib.sha384(b"enclave_bridge development PCR2 v1\0")
    for path in sources:
        rel = path.relative_to(root).as_posix().encode()
        content = path.read_bytes()
        app.update(len(rel).to_bytes(8, "big") + rel)
        app.update(len(content).to_bytes(8, "big") + content)
    pcr2 = app.digest()
    runtime = f"{sys.implementation.name} {sys.version_info.major}.{sys.version_info.minor}"
    pcr1 = hashlib.sha384(b"enclave_bridge development PCR1 v1\0" + runtime.encode()).digest()
    pcr0 = hashlib.sha384(b"enclave_bridge development PCR0 v1\0" + pcr1 + pcr2).digest()
    return {0: pcr0, 1: pcr1, 2: pcr2}
