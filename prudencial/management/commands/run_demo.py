"""`make demo`'s last step: start the local enclave stack, register its attested keys, print the
demo logins and serve the platform on 127.0.0.1:8000 until interrupted."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from enclave_bridge.devstack import LocalEnclaveStack
from enclave_bridge.gateway import EnclaveGateway


class Command(BaseCommand):
    help = "Runs the demo: local enclave (SIMULATED Nitro/KMS), demo logins and the web server."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="address:port to serve on")
        parser.add_argument(
            "--no-enclave", action="store_true", help="serve without the local enclave"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # SIGTERM (e.g. `kill`) must run the finally below so the enclave stack stops too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        stack = None
        if not options["no_enclave"]:
            stack = LocalEnclaveStack(Path(settings.ENCLAVE_DIR))
            self.stdout.write(
                "Iniciando o enclave local (Nitro e KMS SIMULADOS; veja docs/enclave.md)…"
            )
            try:
                stack.start()
                enclave = EnclaveGateway(
                    stack.address, kms_key_id=stack.kms_key_id, timeout=settings.ENCLAVE_TIMEOUT
                )
                report = enclave.ensure_unlocked(allow_new_keys=True)  # dev key: one per image
                enclave.close()
            except Exception as exc:
                stack.stop()
                raise CommandError(f"o enclave local não iniciou: {exc}") from exc
            self.stdout.write(
                self.style.SUCCESS(
                    f"Enclave pronto em {stack.address}; chave de envelope {report.kid}"
                )
            )
        try:
            call_command("load_demo_market", verbosity=1)  # already loaded: prints the logins again
            self.stdout.write("")
            self.stdout.write(
                self.style.SUCCESS(
                    f"Plataforma em http://{options['addr']}/ (admin em /admin/, API em /api/v1/docs/)"
                )
            )
            call_command("runserver", options["addr"], use_reloader=False)
        finally:
            if stack is not None:
                stack.stop()
