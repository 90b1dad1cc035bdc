"""Start the local enclave stack (development: simulated NSM and KMS, real enclave process),
unlock it with the stored sealed keys, verify its attestation and register its keys."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from enclave_bridge.client import EnclaveClient
from enclave_bridge.devstack import LocalEnclaveStack
from enclave_bridge.services import enclave_boot, enclave_rotate


class Command(BaseCommand):
    help = "Starts the local enclave process (SIMULATED Nitro/KMS) and registers its attested keys."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--workdir", default=str(settings.ENCLAVE_DIR), help="PKI, KMS state, socket, logs"
        )
        parser.add_argument(
            "--rotate", action="store_true", help="rotate the envelope key after boot"
        )
        parser.add_argument(
            "--once", action="store_true", help="boot, register and stop (for checks)"
        )

    def handle(self, *args, **options) -> None:
        workdir = Path(options["workdir"])
        expected = f"unix:{workdir / 'enclave.sock'}"
        if expected != settings.ENCLAVE_ADDRESS:
            raise CommandError(
                f"ENCLAVE_ADDRESS is {settings.ENCLAVE_ADDRESS}; the local enclave listens on {expected}"
            )
        stack = LocalEnclaveStack(workdir)
        self.stdout.write("Starting the SIMULATED KMS and the enclave process…")
        try:
            stack.start()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        try:
            client = EnclaveClient(
                stack.address, timeout=settings.ENCLAVE_TIMEOUT, retries=settings.ENCLAVE_RETRIES
            )
            keys = enclave_boot(client=client, kms_key_id=stack.kms_key_id)
            if options["rotate"]:
                keys = enclave_rotate(client=client, kms_key_id=stack.kms_key_id)
            for key in keys:
                self.stdout.write(
                    f"  {key.use} {key.kid} [{key.status}] PCR0={key.pcrs.get('0', '')[:16]}…"
                )
            self.stdout.write(
                self.style.SUCCESS(f"Enclave ready at {stack.address} (KMS {stack.kms_url})")
            )
            if options["once"]:
                return
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            while not stop.wait(1.0):
                if any(p.poll() is not None for p in stack.processes):
                    raise CommandError(f"an enclave stack process exited; see logs in {workdir}")
        finally:
            stack.stop()
