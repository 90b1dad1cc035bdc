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
        parser.add_argument(
            "--no-sso",
            action="store_true",
            help="serve without the development OpenID provider (local accounts only)",
        )
        parser.add_argument("--sso-port", type=int, default=9400, help="the provider's port")

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
        provider = None
        try:
            if not options["no_sso"]:
                provider = self.start_sso(options["addr"], options["sso_port"])
            call_command("load_demo_market", verbosity=1)  # already loaded: prints the logins again
            if provider is not None:
                self.print_sso(provider)
            self.stdout.write("")
            self.stdout.write(
                self.style.SUCCESS(
                    f"Plataforma em http://{options['addr']}/ (admin em /admin/, API em /api/v1/docs/, "
                    "login em /accounts/login/)"
                )
            )
            call_command("runserver", options["addr"], use_reloader=False)
        finally:
            if provider is not None:
                provider.stop()
            if stack is not None:
                stack.stop()

    def start_sso(self, addr: str, port: int):
        """The development OpenID provider as its own process (SIMULATED CCEE login)."""
        from prudencial.accounts.management.commands.run_devidp import (
            platform_provider,
            use_provider,
        )

        self.stdout.write("Iniciando o provedor OpenID de desenvolvimento (login CCEE SIMULADO)…")
        try:
            provider = platform_provider(f"http://{addr}", port).start()
        except RuntimeError as exc:
            raise CommandError(f"o provedor OpenID local não iniciou: {exc}") from exc
        use_provider(provider)
        return provider

    def print_sso(self, provider) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"Login CCEE (SSO) simulado em {provider.issuer}: botão "
                "“Entrar com o login CCEE” em /accounts/login/"
            )
        )
        for person in provider.people:
            self.stdout.write(f"  Login CCEE: {person.username} / {person.password}")
