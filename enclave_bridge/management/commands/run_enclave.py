"""Start the local enclave stack (development: simulated NSM and KMS, real enclave process),
then unlock it through the gateway: the stored sealed keys (or new ones on a first boot), its
attestation verified and its keys registered. A remote enclave (Nitro) is unlocked with
`manage.py enclave_boot --address vsock:CID:PORT` instead."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from enclave_bridge.devstack import LocalEnclaveStack
from enclave_bridge.gateway import EnclaveGateway
from enclave_bridge.management.commands.enclave_boot import report_lines


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
                f"ENCLAVE_ADDRESS is {settings.ENCLAVE_ADDRESS}; the local enclave listens on "
                f"{expected} (a remote enclave: `manage.py enclave_boot --address ...`)"
            )
        stack = LocalEnclaveStack(workdir)
        self.stdout.write("Starting the SIMULATED KMS and the enclave process…")
        try:
            stack.start()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        try:
            enclave = EnclaveGateway(
                stack.address,
                kms_key_id=stack.kms_key_id,
                timeout=settings.ENCLAVE_TIMEOUT,
                retries=settings.ENCLAVE_RETRIES,
            )
            # The development KMS key changes with the image (one per PCR0): new keys allowed.
            report = enclave.ensure_unlocked(allow_new_keys=True)
            for line in report_lines(report):
                self.stdout.write(line)
            if options["rotate"]:
                for key in enclave.rotate():
                    self.stdout.write(f"  rotated: {key.use} {key.kid} [{key.status}]")
            enclave.close()
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
