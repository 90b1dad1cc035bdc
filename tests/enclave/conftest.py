"""Session fixture: the local development stack (dev PKI, simulated KMS with a key bound to the
enclave's PCR0, and the enclave as a REAL separate process on a unix socket), started once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from enclave_bridge.attestation.nsm import measure_pcrs
from enclave_bridge.client import EnclaveClient, check_attestation
from enclave_bridge.devstack import LocalEnclaveStack
from enclave_bridge.enclave import APP_DIR

READ_TIMEOUT = 1.0


@dataclass
class RunningEnclave:
    """The stack plus what the session learnt at first boot (sealed keys, attested signing key)."""

    stack: LocalEnclaveStack
    pcrs: dict[int, bytes]
    sealed_keys: bytes
    signing_jwk: dict

    @property
    def address(self) -> str:
        return self.stack.address

    @property
    def socket_path(self) -> Path:
        return self.stack.socket_path

    def restart(self) -> None:
        """Kill the enclave process and start a new one (locked), KMS untouched."""
        self.stack.restart_enclave()

    def log_text(self) -> str:
        return (self.stack.workdir / "enclave.log").read_text("utf-8", errors="replace")

    @property
    def pid(self) -> int:
        return self.stack.processes[-1].pid

    def peak_rss_bytes(self) -> int:
        """The enclave server process's peak resident set (VmHWM), from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmHWM not found")


@contextlib.contextmanager
def running_enclave(workdir: Path, *extra_args: str) -> Iterator[RunningEnclave]:
    """Start a local stack, unlock it (init), attest and check it; stop it on exit."""
    stack = LocalEnclaveStack(
        workdir,
        enclave_args=[
            "--read-timeout",
            str(READ_TIMEOUT),
            "--idle-timeout",
            "30",
            "--workers",
            "2",
            "--log-level",
            "DEBUG",
            *extra_args,
        ],
    )
    stack.start()
    try:
        pcrs = measure_pcrs(APP_DIR)
        with EnclaveClient(stack.address, retries=3, backoff=0.05) as client:
            keys = client.init()
            attestation = client.attest()
        check_attestation(
            attestation,
            trusted_root=stack.trust_root_path.read_bytes(),
            expected_pcrs={0: pcrs[0]},
        )
        assert keys.sealed_keys is not None
        yield RunningEnclave(stack, pcrs, keys.sealed_keys, attestation.signing_jwk)
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def enclave(tmp_path_factory: pytest.TempPathFactory):
    """The running enclave, unlocked (init), attested and checked; stopped at session end."""
    with running_enclave(tmp_path_factory.mktemp("enclave")) as running:
        yield running


@pytest.fixture
def client(enclave: RunningEnclave):
    """A client trusting the attested signing key."""
    with EnclaveClient(
        enclave.address, retries=3, backoff=0.05, signing_jwk=enclave.signing_jwk
    ) as c:
        yield c


@pytest.fixture
def current_key(client: EnclaveClient) -> dict:
    """The current envelope JWK, as an agent fetches it."""
    return client.attest().envelope_jwk()
