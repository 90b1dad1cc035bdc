"""Fixtures of the agent client's tests: the REAL enclave process (dev PKI, simulated KMS, the
enclave program on a unix socket, started once per session) and the client's trust policy for
it, pinned as an agent pins it (the trust root file and the published PCRs)."""

from __future__ import annotations

import pytest

from enclave_bridge.client import EnclaveClient
from enclave_bridge.wire.protocol import b64url
from prudencial.client.config import TrustPolicy
from tests.enclave.conftest import running_enclave


@pytest.fixture(scope="session")
def enclave(tmp_path_factory):
    """The running enclave, unlocked (init), attested and checked; stopped at session end."""
    with running_enclave(tmp_path_factory.mktemp("client-enclave")) as running:
        yield running


@pytest.fixture
def enclave_client(enclave):
    with EnclaveClient(
        enclave.address, retries=3, backoff=0.05, signing_jwk=enclave.signing_jwk
    ) as client:
        yield client


@pytest.fixture
def policy(enclave) -> TrustPolicy:
    """What CCEE publishes for the release: PCR0, 1, 2 and the (development) trust root."""
    return TrustPolicy(
        trust_root=str(enclave.stack.trust_root_path),
        pcrs={i: enclave.pcrs[i] for i in (0, 1, 2)},
    )


class RelayApi:
    """Stands in for the platform's attestation endpoint: relays the enclave's answer to the
    agent's nonce, as prudencial's AttestationView does (the platform is not trusted for it)."""

    def __init__(self, client: EnclaveClient) -> None:
        self.client = client
        self.calls: list[str] = []

    def answer(self, nonce: bytes) -> dict:
        att = self.client.attest(nonce)
        return {
            "document": b64url(att.document),
            "nonce": b64url(att.nonce),
            "kid": att.kid,
            "kids": att.kids,
            "signing_kid": att.signing_kid,
            "jwks": att.jwks,
        }

    def attestation(self, nonce_b64: str) -> dict:
        from enclave_bridge.wire.protocol import b64url_decode

        self.calls.append(nonce_b64)
        return self.answer(b64url_decode(nonce_b64))


@pytest.fixture
def relay(enclave_client) -> RelayApi:
    return RelayApi(enclave_client)


# --- the platform: live server, PostgreSQL, the enclave's keys registered, a real worker -------

# A real Celery worker, and the host's enclave settings for the stack below.
from tests.submissions.conftest import enclave_settings, worker  # noqa: E402,F401


@pytest.fixture
def stack(enclave):
    """The session's enclave stack, for the host settings and the worker."""
    return enclave.stack


@pytest.fixture
def host_enclave(transactional_db, enclave_settings, stack):  # noqa: F811 (a fixture)
    """The running enclave's keys verified and registered by the host (the gateway)."""
    from enclave_bridge import gateway

    gateway.reset_gateways()
    gateway.ensure_unlocked(allow_new_keys=True)
    yield stack
    gateway.reset_gateways()
