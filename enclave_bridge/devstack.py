"""The local development stack of the enclave, as separate processes (no Django).

Starts what production gets from AWS, SIMULATED: the development PKI (stand-in for the Nitro
root), the simulated KMS (moto + attested Recipient), and the enclave program itself as a real
process on a Unix socket (or, with ``listen``, on loopback TCP: addressed like a remote enclave).
Used by `manage.py run_enclave`, `make demo` and the host tests.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from enclave_bridge.attestation.devpki import ensure_dev_pki
from enclave_bridge.attestation.nsm import measure_pcrs
from enclave_bridge.client import EnclaveClient, EnclaveConnectionError
from enclave_bridge.enclave import APP_DIR
from enclave_bridge.kms_sim import create_attested_key, kms_admin_client

logger = logging.getLogger(__name__)

_FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the process that started it dies, so no orphaned
    KMS or enclave outlives a killed `run_enclave`/`make demo`/test run."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _drain(stream, path: Path) -> None:
    with open(path, "ab") as log:
        for chunk in iter(lambda: stream.read1(4096), b""):
            log.write(chunk)
            log.flush()


@dataclass
class LocalEnclaveStack:
    """PKI, simulated KMS and enclave process under one working directory."""

    workdir: Path
    kms_port: int = 0
    enclave_args: list[str] = field(default_factory=list)
    # The enclave's --listen address; default the Unix socket in workdir. "tcp:127.0.0.1:PORT"
    # makes the host reach it as it reaches a remote one (vsock on Nitro).
    listen: str | None = None
    kms_url: str = ""
    kms_key_id: str = ""
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def pki_dir(self) -> Path:
        return self.workdir / "pki"

    @property
    def socket_path(self) -> Path:
        return self.workdir / "enclave.sock"

    @property
    def address(self) -> str:
        return self.listen or f"unix:{self.socket_path}"

    @property
    def trust_root_path(self) -> Path:
        return self.pki_dir / "root.pem"

    def start(self, *, timeout: float = 60.0) -> None:
        """Start KMS and enclave; return when the enclave answers `health` (still locked)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        ensure_dev_pki(self.pki_dir)
        self._start_kms(timeout)
        self.kms_key_id = self._kms_key_for_current_image()
        self._start_enclave(timeout)

    def _spawn(
        self, args: list[str], log_name: str, *, pipe_stdout: bool = False
    ) -> subprocess.Popen:
        log = open(self.workdir / log_name, "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=APP_DIR,
            env={**os.environ, **_FAKE_AWS},
            stdout=subprocess.PIPE if pipe_stdout else log,
            stderr=log,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        log.close()
        self.processes.append(proc)
        return proc

    def _start_kms(self, timeout: float) -> None:
        proc = self._spawn(
            [
                "-m",
                "enclave_bridge.kms_sim",
                "serve",
                "--port",
                str(self.kms_port),
                "--state",
                str(self.workdir / "kms-state.bin"),
                "--trust-root",
                str(self.trust_root_path),
            ],
            "kms.log",
            pipe_stdout=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        # Keep draining its stdout so the child never blocks on a full pipe.
        threading.Thread(
            target=_drain, args=(proc.stdout, self.workdir / "kms.log"), daemon=True
        ).start()
        if not line.startswith("SIMULATED KMS listening on "):
            self.stop()
            raise RuntimeError(f"simulated KMS did not start; see {self.workdir / 'kms.log'}")
        self.kms_url = line.rsplit(" ", 1)[-1]

    def _kms_key_for_current_image(self) -> str:
        """One KMS key per enclave image (PCR0), as a production key policy would pin it."""
        pcr0 = measure_pcrs(APP_DIR)[0].hex()
        record = self.workdir / f"kms-key-{pcr0[:16]}"
        if record.exists():
            return record.read_text().strip()
        # Created by the key administrator: the instance role (host and enclave) may not
        # create keys, or it could choose a policy that releases data keys to itself.
        key_id = create_attested_key(
            kms_admin_client(self.kms_url), {0: pcr0}, description="enclave sealing key (dev)"
        )
        record.write_text(key_id)
        return key_id

    def _start_enclave(self, timeout: float, extra_args: list[str] | None = None) -> None:
        if self.listen is None and self.socket_path.exists():
            self.socket_path.unlink()
        proc = self._spawn(
            [
                "-m",
                "enclave_bridge.enclave",
                "serve",
                "--listen",
                self.address,
                "--kms-endpoint",
                self.kms_url,
                "--kms-key-id",
                self.kms_key_id,
                "--nsm",
                "simulated",
                "--pki",
                str(self.pki_dir),
                *self.enclave_args,
                *(extra_args or []),
            ],
            "enclave.log",
        )
        deadline = time.monotonic() + timeout
        probe = EnclaveClient(self.address, retries=0, timeout=2)
        try:
            while True:
                try:
                    probe.health()
                    return
                except EnclaveConnectionError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"enclave did not start; see {self.workdir / 'enclave.log'}"
                        ) from None
                    time.sleep(0.05)
        finally:
            probe.close()

    def restart_enclave(
        self, *, timeout: float = 60.0, extra_args: list[str] | None = None
    ) -> None:
        """Kill and start the enclave process only (KMS keeps running), as after a reboot;
        ``extra_args`` are added to this start only (e.g. another ``--app-dir``: another image)."""
        enclave = self.processes.pop()
        enclave.kill()
        enclave.wait(timeout=10)
        self._start_enclave(timeout, extra_args)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.processes.clear()

    def __enter__(self) -> LocalEnclaveStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
