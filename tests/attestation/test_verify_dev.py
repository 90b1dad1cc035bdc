"""Development PKI + SimulatedNsm through the same verifier; chain, nonce, PCR and time rules."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import cbor2
import pytest
from cryptography.x509.oid import NameOID

from enclave_bridge.attestation import (
    AttestationError,
    SimulatedNsm,
    create_dev_pki,
    ensure_dev_pki,
    load_dev_pki,
    measure_pcrs,
    verify_attestation,
)
from enclave_bridge.attestation.__main__ import main as attestation_cli
from enclave_bridge.attestation.cose import decode_sign1

from .conftest import PCR0, PCR1, PCR2, build_custom_document

EXPECTED = {0: PCR0, 1: PCR1, 2: PCR2}


def _verify(document: bytes, root, **overrides):
    args = {
        "trusted_root": root,
        "now": dt.datetime.now(dt.UTC),
        "max_age": dt.timedelta(minutes=5),
        "expected_nonce": None,
        "expected_pcrs": EXPECTED,
    }
    args.update(overrides)
    return verify_attestation(document, **args)


def test_round_trip_through_the_verifier(dev_pki, nsm) -> None:
    document = nsm.attest(public_key=b"spki", user_data=b"user", nonce=b"nonce-1")
    doc = _verify(
        document, dev_pki.root_pem, root_sha256=dev_pki.root_sha256, expected_nonce=b"nonce-1"
    )
    assert (doc.public_key, doc.user_data, doc.nonce) == (b"spki", b"user", b"nonce-1")
    assert doc.pcrs[0] == PCR0 and doc.pcrs[15] == bytes(48) and len(doc.pcrs) == 16
    assert not doc.is_debug
    assert (
        doc.certificate.not_valid_after_utc - doc.certificate.not_valid_before_utc
        < dt.timedelta(hours=4)
    )


def test_document_format_matches_aws(nsm) -> None:
    message = decode_sign1(nsm.attest(public_key=None, user_data=None, nonce=None))
    assert message.algorithm == -35 and message.unprotected == {} and len(message.signature) == 96
    payload = cbor2.loads(message.payload)
    assert list(payload) == [
        "module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle",
        "public_key", "user_data", "nonce",
    ]  # fmt: skip
    assert payload["public_key"] is None and payload["nonce"] is None
    assert len(payload["cabundle"]) == 4


def test_leaf_is_cached_for_its_validity(nsm) -> None:
    first = decode_sign1(nsm.attest(public_key=None, user_data=None, nonce=None))
    second = decode_sign1(nsm.attest(public_key=None, user_data=None, nonce=None))
    assert cbor2.loads(first.payload)["certificate"] == cbor2.loads(second.payload)["certificate"]


@pytest.mark.parametrize(
    ("field", "limit"), [("public_key", 1024), ("user_data", 1024), ("nonce", 512)]
)
def test_nsm_refuses_oversized_fields(nsm, field: str, limit: int) -> None:
    fields = {"public_key": None, "user_data": None, "nonce": None}
    nsm.attest(**{**fields, field: b"x" * limit})
    with pytest.raises(ValueError, match=field):
        nsm.attest(**{**fields, field: b"x" * (limit + 1)})


def test_nonce_mismatch_refused(dev_pki, nsm) -> None:
    document = nsm.attest(public_key=None, user_data=None, nonce=b"one")
    with pytest.raises(AttestationError, match="nonce"):
        _verify(document, dev_pki.root, expected_nonce=b"two")


def test_pcr_mismatch_refused(dev_pki, nsm) -> None:
    document = nsm.attest(public_key=None, user_data=None, nonce=None)
    with pytest.raises(AttestationError, match="PCR2 does not match"):
        _verify(document, dev_pki.root, expected_pcrs={**EXPECTED, 2: bytes(48)})


def test_stale_document_refused(dev_pki, nsm) -> None:
    document = nsm.attest(public_key=None, user_data=None, nonce=None)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    with pytest.raises(AttestationError, match="stale"):
        _verify(document, dev_pki.root, now=later)


def test_document_from_the_future_refused(dev_pki, nsm) -> None:
    document = nsm.attest(public_key=None, user_data=None, nonce=None)
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    with pytest.raises(AttestationError, match="future|not valid at"):
        _verify(document, dev_pki.root, now=earlier)


def test_debug_pcrs_from_dev_nsm_refused_unless_allowed(dev_pki) -> None:
    debug_nsm = SimulatedNsm(dev_pki, {})
    document = debug_nsm.attest(public_key=None, user_data=None, nonce=None)
    with pytest.raises(AttestationError, match="debug-mode"):
        _verify(document, dev_pki.root, expected_pcrs=None)
    assert _verify(document, dev_pki.root, expected_pcrs=None, allow_debug=True).is_debug


def test_other_dev_pki_refused(nsm, tmp_path: Path) -> None:
    other = create_dev_pki(tmp_path)
    document = nsm.attest(public_key=None, user_data=None, nonce=None)
    with pytest.raises(AttestationError, match="trusted root"):
        _verify(document, other.root)


def test_well_formed_custom_chain_accepted() -> None:
    root, document = build_custom_document()
    assert _verify(document, root).module_id == "i-test-enc0"


@pytest.mark.parametrize(
    ("pathlens", "message"),
    [
        ((None, 2, 0, 0), r"zonal certificate \(cabundle\[2\]\) has pathlen 0 but 1 CA"),
        ((None, 1, 1, 0), r"regional certificate \(cabundle\[1\]\) has pathlen 1 but 2 CA"),
        ((0, 2, 1, 0), r"root certificate \(cabundle\[0\]\) has pathlen 0 but 3 CA"),
    ],
)
def test_wrong_pathlen_refused(pathlens, message: str) -> None:
    root, document = build_custom_document(pathlens=pathlens)
    with pytest.raises(AttestationError, match=message):
        _verify(document, root)


def test_ca_without_key_usage_refused() -> None:
    root, document = build_custom_document(without_key_usage=2)
    with pytest.raises(AttestationError, match=r"zonal certificate .* has no keyUsage"):
        _verify(document, root)


def test_signature_by_another_key_refused(dev_pki, nsm) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from enclave_bridge.attestation.cose import encode_sign1

    message = decode_sign1(nsm.attest(public_key=None, user_data=None, nonce=None))
    forged = encode_sign1(message.payload, ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(AttestationError, match="signature"):
        _verify(forged, dev_pki.root)


def test_dev_pki_files_and_reload(tmp_path: Path) -> None:
    pki = create_dev_pki(tmp_path)
    for level in ("root", "regional", "zonal", "instance"):
        key_mode = stat.S_IMODE(os.stat(tmp_path / f"{level}.key.pem").st_mode)
        assert key_mode == 0o600
    common_name = pki.root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == "aws.nitro-enclaves-DEVELOPMENT"
    again = load_dev_pki(tmp_path)
    assert again.cabundle == pki.cabundle
    assert ensure_dev_pki(tmp_path).root_sha256 == pki.root_sha256


def test_devpki_cli_is_idempotent(tmp_path: Path, capsys) -> None:
    out = tmp_path / "pki"
    attestation_cli(["devpki", "--out", str(out)])
    first = (out / "root.pem").read_bytes()
    attestation_cli(["devpki", "--out", str(out)])
    assert (out / "root.pem").read_bytes() == first
    assert "kept existing" in capsys.readouterr().out
    attestation_cli(["devpki", "--out", str(out), "--force"])
    assert (out / "root.pem").read_bytes() != first


def test_measure_pcrs_hashes_exactly_the_image_manifest(tmp_path: Path) -> None:
    """The development PCRs hash exactly the files the image build copies: the same tree twice
    gives the same PCRs; a plot label (host-only, not in the image) changes nothing; a change
    to enclave code, the wire protocol or the risk engine changes PCR2 and PCR0."""
    import shutil

    from enclave_bridge.attestation.image import image_files, stage
    from enclave_bridge.enclave import APP_DIR

    app = tmp_path / "app"
    stage(APP_DIR, app)
    for host_only in ("prudencial/risk_tools/plots.py", "prudencial/api/views.py"):
        (app / host_only).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(APP_DIR / host_only, app / host_only)
    measured = [p.relative_to(app).as_posix() for p in image_files(app)]
    assert measured == [p.relative_to(APP_DIR).as_posix() for p in image_files(APP_DIR)]
    first = measure_pcrs(app)
    assert set(first) == {0, 1, 2} and all(len(v) == 48 for v in first.values())
    assert measure_pcrs(app) == first
    assert measure_pcrs(APP_DIR) == first  # the checkout measures as its staged image does
    plots = app / "prudencial/risk_tools/plots.py"
    plots.write_text(plots.read_text() + "\nLABEL = 'Perda propagada (R$)'\n")
    assert measure_pcrs(app) == first
    for enclave_code in (
        "enclave_bridge/enclave/server.py",
        "enclave_bridge/wire/protocol.py",
        "prudencial/risk/leverage.py",
    ):
        source = app / enclave_code
        original = source.read_text()
        source.write_text(original + "\n# changed\n")
        changed = measure_pcrs(app)
        assert changed[0] != first[0] and changed[2] != first[2] and changed[1] == first[1]
        source.write_text(original)
    assert measure_pcrs(app) == first


def test_measure_pcrs_refuses_an_empty_tree(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no enclave image manifest"):
        measure_pcrs(tmp_path)


def test_an_empty_pcr_expectation_is_an_error_not_no_check(dev_pki, nsm) -> None:
    """``{}`` reads as "check the image" but would check nothing: refused. None stays the
    explicit "no image check" (the simulated KMS checks PCRs by its own key policy)."""
    document = nsm.attest(public_key=None, user_data=None, nonce=None)
    with pytest.raises(AttestationError, match="expected_pcrs is empty"):
        _verify(document, dev_pki.root, expected_pcrs={})
    assert _verify(document, dev_pki.root, expected_pcrs=None).pcrs
