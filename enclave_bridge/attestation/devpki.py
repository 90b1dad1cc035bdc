"""Development PKI shaped like AWS Nitro's: root → regional → zonal → instance → enclave leaf.

This is a DEVELOPMENT stand-in for the AWS Nitro attestation PKI: a local CA that signs simulated
attestation documents so that the one verifier (verify.py) runs unchanged with a different trust
anchor. Its root is named "aws.nitro-enclaves-DEVELOPMENT" and must never be trusted in production.
The enclave leaf is not part of the PKI on disk: SimulatedNsm issues one per attestation window.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

logger = logging.getLogger(__name__)

DEV_ROOT_CN = "aws.nitro-enclaves-DEVELOPMENT"
_ORG = "CCEE prudential monitoring (DEVELOPMENT)"
_LEVELS = ("root", "regional", "zonal", "instance")
# Path lengths as on AWS: the root is unconstrained, then 2, 1, 0.
_PATH_LENGTHS = {"root": None, "regional": 2, "zonal": 1, "instance": 0}
# Development CAs live long so a developer's setup keeps working; AWS rotates its intermediates
# within days, which only the leaf's short life imitates here.
_VALIDITY = {
    "root": dt.timedelta(days=30 * 365),
    "regional": dt.timedelta(days=10 * 365),
    "zonal": dt.timedelta(days=10 * 365),
    "instance": dt.timedelta(days=10 * 365),
}
LEAF_VALIDITY = dt.timedelta(hours=3)


@dataclass(frozen=True)
class DevPki:
    """The four development CA certificates (root first) and the instance CA's signing key."""

    root: x509.Certificate
    regional: x509.Certificate
    zonal: x509.Certificate
    instance: x509.Certificate
    instance_key: ec.EllipticCurvePrivateKey
    directory: Path | None = None

    @property
    def cabundle(self) -> list[bytes]:
        """DER certificates in attestation-document order: root, regional, zonal, instance."""
        return [c.public_bytes(serialization.Encoding.DER) for c in self.certificates]

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return (self.root, self.regional, self.zonal, self.instance)

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    @property
    def root_sha256(self) -> str:
        """Hex SHA-256 of the root's DER, the form in which roots are pinned."""
        return self.root.fingerprint(hashes.SHA256()).hex()

    def issue_leaf(
        self,
        leaf_key: ec.EllipticCurvePrivateKey,
        common_name: str,
        *,
        now: dt.datetime | None = None,
        validity: dt.timedelta = LEAF_VALIDITY,
    ) -> x509.Certificate:
        """Issue an enclave leaf like AWS's: CA:false, digitalSignature, no AKI, ~3 h."""
        now = now or dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.instance.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .sign(self.instance_key, hashes.SHA384())
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "BR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "DEVELOPMENT"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_cert(
    level: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
) -> x509.Certificate:
    names = {
        "root": DEV_ROOT_CN,
        "regional": "dev-region.aws.nitro-enclaves-DEVELOPMENT",
        "zonal": "dev-zone.dev-region.aws.nitro-enclaves-DEVELOPMENT",
        "instance": "i-development.dev-region.aws.nitro-enclaves-DEVELOPMENT",
    }
    subject = _name(names[level])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY[level])
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=_PATH_LENGTHS[level]), critical=True
        )
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA384())


def _cert_path(directory: Path, level: str) -> Path:
    return directory / f"{level}.pem"


def _key_path(directory: Path, level: str) -> Path:
    return directory / f"{level}.key.pem"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def create_dev_pki(out_dir: str | Path, *, now: dt.datetime | None = None) -> DevPki:
    """Generate a fresh development PKI (P-384 everywhere) and write PEMs (keys 0600) to out_dir."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    now = now or dt.datetime.now(dt.UTC)
    certs: dict[str, x509.Certificate] = {}
    keys: dict[str, ec.EllipticCurvePrivateKey] = {}
    issuer: x509.Certificate | None = None
    issuer_key: ec.EllipticCurvePrivateKey | None = None
    for level in _LEVELS:
        key = ec.generate_private_key(ec.SECP384R1())
        cert = _ca_cert(level, key, issuer, issuer_key or key, now)
        certs[level], keys[level] = cert, key
        issuer, issuer_key = cert, key
    for level in _LEVELS:
        _write_private(
            _key_path(directory, level),
            keys[level].private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        _cert_path(directory, level).write_bytes(
            certs[level].public_bytes(serialization.Encoding.PEM)
        )
    logger.info("created development attestation PKI in %s", directory)
    return DevPki(
        root=certs["root"],
        regional=certs["regional"],
        zonal=certs["zonal"],
        instance=certs["instance"],
        instance_key=keys["instance"],
        directory=directory,
    )


def dev_pki_exists(directory: str | Path) -> bool:
    """True when every certificate and the instance key are present in `directory`."""
    d = Path(directory)
    return (
        all(_cert_path(d, lvl).is_file() for lvl in _LEVELS) and _key_path(d, "instance").is_file()
    )


def load_dev_pki(directory: str | Path) -> DevPki:
    """Load a PKI written by create_dev_pki (only the instance CA key is needed to sign leaves)."""
    d = Path(directory)
    certs = {
        lvl: x509.load_pem_x509_certificate(_cert_path(d, lvl).read_bytes()) for lvl in _LEVELS
    }
    key = serialization.load_pem_private_key(_key_path(d, "instance").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{_key_path(d, 'instance')} is not an EC private key")
    if key.public_key() != certs["instance"].public_key():
        raise ValueError("the instance CA key does not match instance.pem")
    return DevPki(
        root=certs["root"],
        regional=certs["regional"],
        zonal=certs["zonal"],
        instance=certs["instance"],
        instance_key=key,
        directory=d,
    )


def ensure_dev_pki(directory: str | Path, *, force: bool = False) -> DevPki:
    """Load the PKI in `directory`, creating it only when missing (or when force=True)."""
    if not force and dev_pki_exists(directory):
        return load_dev_pki(directory)
    return create_dev_pki(directory)
