"""The verifier against a REAL AWS Nitro attestation document (debug mode, 2024-11-14)."""

from __future__ import annotations

import datetime as dt

import cbor2
import pytest

from enclave_bridge.attestation import (
    AWS_NITRO_ROOT_SHA256,
    AttestationError,
    aws_nitro_root,
    verify_attestation,
)

from .conftest import AWS_DOC_TIMESTAMP

AT_DOC_TIME = AWS_DOC_TIMESTAMP + dt.timedelta(seconds=1)


def _verify(document: bytes, **overrides):
    args = {
        "trusted_root": aws_nitro_root(),
        "root_sha256": AWS_NITRO_ROOT_SHA256,
        "now": AT_DOC_TIME,
        "max_age": dt.timedelta(minutes=5),
        "expected_nonce": None,
        "expected_pcrs": None,
        "allow_debug": True,
    }
    args.update(overrides)
    return verify_attestation(document, **args)


def test_packaged_root_is_the_aws_root(aws_document: bytes) -> None:
    payload = cbor2.loads(cbor2.loads(aws_document)[2])
    from cryptography.hazmat.primitives import serialization

    assert aws_nitro_root().public_bytes(serialization.Encoding.DER) == payload["cabundle"][0]


def test_real_document_accepted_at_its_timestamp(aws_document: bytes) -> None:
    doc = _verify(aws_document)
    assert doc.module_id == "i-0f73a4b4cb74cc9f2-enc0192e4188fef781d"
    assert doc.timestamp == AWS_DOC_TIMESTAMP
    assert doc.is_debug
    assert len(doc.pcrs) == 16 and all(len(v) == 48 for v in doc.pcrs.values())
    assert doc.public_key is None and doc.nonce is None
    assert doc.user_data is not None and len(doc.user_data) == 32
    assert len(doc.cabundle) == 4


def test_real_document_accepted_with_root_as_pem_bytes(aws_document: bytes) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = aws_nitro_root().public_bytes(serialization.Encoding.PEM)
    assert _verify(aws_document, trusted_root=pem).module_id


def test_debug_document_refused_without_allow_debug(aws_document: bytes) -> None:
    with pytest.raises(AttestationError, match="debug-mode"):
        _verify(aws_document, allow_debug=False)


def test_refused_today_when_max_age_is_set(aws_document: bytes) -> None:
    with pytest.raises(AttestationError, match="stale"):
        _verify(aws_document, now=dt.datetime.now(dt.UTC))


def test_refused_today_because_the_leaf_has_expired(aws_document: bytes) -> None:
    with pytest.raises(AttestationError, match="enclave leaf certificate is not valid at now"):
        _verify(aws_document, now=dt.datetime.now(dt.UTC), max_age=None)


def test_accepted_later_only_when_leaf_validity_at_now_is_waived(aws_document: bytes) -> None:
    later = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    doc = _verify(aws_document, now=later, max_age=None, require_leaf_valid_at_now=False)
    assert doc.module_id


def test_refused_from_the_future(aws_document: bytes) -> None:
    with pytest.raises(AttestationError, match="future"):
        _verify(aws_document, now=AWS_DOC_TIMESTAMP - dt.timedelta(minutes=10))


def test_refused_with_the_dev_root_pinned(aws_document: bytes, dev_pki) -> None:
    with pytest.raises(AttestationError, match=r"cabundle\[0\] is not the trusted root"):
        _verify(aws_document, trusted_root=dev_pki.root, root_sha256=None)


def test_refused_when_pinned_fingerprint_differs(aws_document: bytes) -> None:
    with pytest.raises(AttestationError, match="fingerprint"):
        _verify(aws_document, root_sha256="00" * 32)


def test_refused_when_expected_pcr_differs(aws_document: bytes) -> None:
    with pytest.raises(AttestationError, match="PCR0 does not match"):
        _verify(aws_document, expected_pcrs={0: b"\x01" * 48})


def test_refused_when_nonce_expected(aws_document: bytes) -> None:
    with pytest.raises(AttestationError, match="nonce"):
        _verify(aws_document, expected_nonce=b"n")


def _flip(document: bytes, position: int) -> bytes:
    return document[:position] + bytes([document[position] ^ 0x01]) + document[position + 1 :]


def _positions(document: bytes) -> dict[str, int]:
    message = cbor2.loads(document)
    payload = cbor2.loads(message[2])
    leaf = document.find(payload["certificate"])
    zonal = document.find(payload["cabundle"][2])
    user_data = document.find(payload["user_data"])
    return {
        "user_data in payload": user_data + 3,
        "module_id in payload": document.find(payload["module_id"].encode()) + 5,
        "signature first byte": len(document) - 96,
        "signature last byte": len(document) - 1,
        "leaf certificate public key": leaf + len(payload["certificate"]) // 2,
        "zonal certificate signature": zonal + len(payload["cabundle"][2]) - 5,
        "protected header": document.find(b"\x44\xa1\x01\x38\x22") + 4,
    }


@pytest.mark.parametrize(
    "where",
    [
        "user_data in payload",
        "module_id in payload",
        "signature first byte",
        "signature last byte",
        "leaf certificate public key",
        "zonal certificate signature",
        "protected header",
    ],
)
def test_one_changed_byte_is_refused(aws_document: bytes, where: str) -> None:
    position = _positions(aws_document)[where]
    with pytest.raises(AttestationError):
        _verify(_flip(aws_document, position))


def test_changed_bytes_all_over_the_document_are_refused(aws_document: bytes) -> None:
    accepted = []
    for position in range(0, len(aws_document), 41):
        try:
            _verify(_flip(aws_document, position))
        except AttestationError:
            continue
        accepted.append(position)
    assert accepted == []


def test_truncated_and_trailing_bytes_refused(aws_document: bytes) -> None:
    with pytest.raises(AttestationError, match="COSE structure"):
        _verify(aws_document[:-1])
    with pytest.raises(AttestationError, match="COSE structure"):
        _verify(aws_document + b"\x00")


def test_tagged_cose_sign1_accepted(aws_document: bytes) -> None:
    tagged = cbor2.dumps(cbor2.CBORTag(18, cbor2.loads(aws_document)))
    assert _verify(tagged).module_id


def test_error_messages_carry_no_raw_bytes(aws_document: bytes) -> None:
    with pytest.raises(AttestationError) as info:
        _verify(aws_document, expected_pcrs={3: b"\x00" * 48})
    message = str(info.value)
    assert "PCR3" in message
    assert aws_document.hex()[:16] not in message and "\\x" not in message
