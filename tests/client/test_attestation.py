"""The client verifies the enclave's attestation itself, with the policy pinned in client.toml,
against the REAL enclave process: accepted as published; refused on a wrong PCR, another trust
root, a stale document, another nonce, or a JWKS the document does not bind."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt

import pytest
from jwcrypto import jwk

from enclave_bridge.attestation.devpki import create_dev_pki
from enclave_bridge.wire.protocol import b64url
from prudencial.client.attestation import fetch_verified, new_nonce, verify_answer
from prudencial.client.envelope import encrypt
from prudencial.client.errors import AttestationRefused

pytestmark = pytest.mark.enclave


def test_published_policy_accepts_and_binds_the_key(relay, policy, enclave):
    att = fetch_verified(relay, policy)
    assert att.envelope_jwk["kid"] == att.kid and att.envelope_jwk["use"] == "enc"
    assert att.signing_jwk["kid"] == att.signing_kid
    assert att.pcrs[0] == enclave.pcrs[0].hex()
    assert relay.calls and len(relay.calls[0]) >= 40  # 32 random bytes, base64url
    exported = att.export()
    assert {k["use"] for k in exported["jwks"]["keys"]} == {"enc", "sig"}
    assert not any("d" in k for k in exported["jwks"]["keys"])


def test_each_call_sends_a_new_nonce(relay, policy):
    fetch_verified(relay, policy)
    fetch_verified(relay, policy)
    assert len(set(relay.calls)) == 2


def test_wrong_pcr_is_refused(relay, policy):
    bad = dict(policy.pcrs)
    bad[2] = bytes(48)
    with pytest.raises(AttestationRefused) as exc:
        fetch_verified(relay, dataclasses.replace(policy, pcrs=bad))
    assert exc.value.code == "document" and "PCR2" in exc.value.message


def test_other_trust_root_is_refused(relay, policy, tmp_path):
    other = create_dev_pki(tmp_path / "other-pki")
    with pytest.raises(AttestationRefused) as exc:
        fetch_verified(
            relay, dataclasses.replace(policy, trust_root=str(tmp_path / "other-pki" / "root.pem"))
        )
    assert exc.value.code == "document"
    assert other.root_sha256 not in exc.value.message  # names the check, not bytes


def test_pinned_root_fingerprint_must_match(relay, policy):
    with pytest.raises(AttestationRefused):
        fetch_verified(relay, dataclasses.replace(policy, root_sha256="00" * 32))


def test_aws_root_refuses_the_development_enclave(relay, policy):
    with pytest.raises(AttestationRefused):
        fetch_verified(relay, dataclasses.replace(policy, trust_root="aws"))


def test_stale_document_is_refused(relay, policy):
    nonce = new_nonce()
    answer = relay.answer(nonce)
    later = dt.datetime.now(dt.UTC) + policy.max_age + dt.timedelta(seconds=30)
    with pytest.raises(AttestationRefused) as exc:
        verify_answer(answer, nonce, policy, now=later)
    assert "old" in exc.value.message or "stale" in exc.value.message or "age" in exc.value.message


def test_answer_for_another_nonce_is_refused(relay, policy):
    """A replayed answer (a document bound to an earlier nonce) is refused, whether the relay
    echoes the old nonce or rewrites the echo to ours."""
    old, ours = new_nonce(), new_nonce()
    answer = relay.answer(old)
    with pytest.raises(AttestationRefused) as exc:
        verify_answer(answer, ours, policy)
    assert exc.value.code == "nonce_echo"
    rewritten = dict(answer, nonce=b64url(ours))
    with pytest.raises(AttestationRefused) as exc:
        verify_answer(rewritten, ours, policy)
    assert exc.value.code == "document" and "nonce" in exc.value.message


def test_substituted_envelope_key_is_refused(relay, policy):
    """A platform that swaps in its own RSA key (same kid) is caught by the document's binding."""
    nonce = new_nonce()
    answer = copy.deepcopy(relay.answer(nonce))
    mine = jwk.JWK.generate(kty="RSA", size=3072)
    for key in answer["jwks"]["keys"]:
        if key["kid"] == answer["kid"] and key["use"] == "enc":
            public = mine.export_public(as_dict=True)
            key["n"], key["e"] = public["n"], public["e"]
    with pytest.raises(AttestationRefused) as exc:
        verify_answer(answer, nonce, policy)
    assert "public_key" in exc.value.message or "current envelope key" in exc.value.message


def test_extra_key_in_jwks_is_refused(relay, policy):
    nonce = new_nonce()
    answer = copy.deepcopy(relay.answer(nonce))
    extra = jwk.JWK.generate(kty="RSA", size=2048).export_public(as_dict=True)
    answer["jwks"]["keys"].append(dict(extra, kid="extra", use="enc", alg="RSA-OAEP-256"))
    with pytest.raises(AttestationRefused):
        verify_answer(answer, nonce, policy)


def test_private_material_is_refused(relay, policy):
    nonce = new_nonce()
    answer = copy.deepcopy(relay.answer(nonce))
    answer["jwks"]["keys"][0]["d"] = "AAAA"
    with pytest.raises(AttestationRefused) as exc:
        verify_answer(answer, nonce, policy)
    assert exc.value.code == "private_key"


def test_malformed_answers_are_refused(relay, policy):
    nonce = new_nonce()
    answer = relay.answer(nonce)
    for broken in (
        {k: v for k, v in answer.items() if k != "document"},
        dict(answer, kids="x"),
        dict(answer, kid="not-listed"),
        dict(answer, document="!!!"),
        "not a mapping",
    ):
        with pytest.raises(AttestationRefused):
            verify_answer(broken, nonce, policy)


def test_flipped_document_byte_is_refused(relay, policy):
    from enclave_bridge.wire.protocol import b64url_decode

    nonce = new_nonce()
    answer = relay.answer(nonce)
    doc = bytearray(b64url_decode(answer["document"]))
    doc[len(doc) // 3] ^= 0x01
    with pytest.raises(AttestationRefused):
        verify_answer(dict(answer, document=b64url(bytes(doc))), nonce, policy)


def test_encrypt_needs_a_verified_attestation(relay):
    with pytest.raises(TypeError):
        encrypt(b"{}", relay.answer(new_nonce()))  # a raw answer is not a VerifiedAttestation
