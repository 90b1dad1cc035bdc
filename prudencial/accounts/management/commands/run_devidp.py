"""Run the development OpenID provider beside the platform (``make demo`` does it for you).

    manage.py run_devidp --platform http://127.0.0.1:8000 [--port 9400]

prints the OIDC_* variables that point the platform at it, and serves until interrupted. Its
people: the demo's agent login (same login, password and CPF as the platform's) and
``sem.representacao`` (a CPF the platform does not know: a new user with no agent)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand

from prudencial.accounts.devidp.launcher import DevIdentityProvider, Person
from prudencial.domain.identifiers import cpf_check_digits

DEMO_IDP_PASSWORD = "sso-demo-2026"


def _unused_cpf() -> str:
    from prudencial.models import User

    for n in range(987_654_000, 987_655_000):
        base = f"{n:09d}"
        cpf = base + cpf_check_digits(base)
        if not User.objects.filter(cpf=cpf).exists():
            return cpf
    raise RuntimeError("no unused demonstration CPF")


def demo_people() -> list[Person]:
    from prudencial.management.commands.load_demo_market import AGENT_LOGIN
    from prudencial.models import User

    people = [
        Person(
            "sem.representacao",
            DEMO_IDP_PASSWORD,
            _unused_cpf(),
            "sem.representacao@demo.example",
            "Sem",
            "Representação",
        )
    ]
    agent = User.objects.filter(username=AGENT_LOGIN[0]).first()
    if agent is not None and agent.cpf:
        people.append(
            Person(
                agent.username,
                AGENT_LOGIN[1],
                agent.cpf,
                agent.email,
                agent.first_name,
                agent.last_name,
            )
        )
    return people


def platform_provider(platform_url: str, port: int = 9400) -> DevIdentityProvider:
    """A provider whose one client is this platform, served at ``platform_url``."""
    parts = urlsplit(platform_url)
    hosts = {parts.netloc, parts.netloc.replace("127.0.0.1", "localhost")}
    return DevIdentityProvider(
        Path(settings.VAR_DIR) / "devidp",
        redirect_uris=[f"{parts.scheme}://{h}/accounts/oidc/callback/" for h in sorted(hosts)],
        post_logout_uris=[f"{parts.scheme}://{h}/accounts/login/" for h in sorted(hosts)],
        people=demo_people(),
        port=port,
        client_id="prudencial-demo",
        client_secret="demo-only-client-secret",
    )


def use_provider(provider: DevIdentityProvider) -> None:
    """Point this process's settings at the provider (both SSO and local accounts on)."""
    for name, value in provider.rp_settings().items():
        setattr(settings, name, value)
    settings.ACCOUNTS_LOCAL_LOGIN = True


class Command(BaseCommand):
    help = "Runs the development OpenID provider (django-oauth-toolkit) for the platform."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--platform", default="http://127.0.0.1:8000")
        parser.add_argument("--port", type=int, default=9400)

    def handle(self, *args: Any, **options: Any) -> None:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        provider = platform_provider(options["platform"], options["port"])
        provider.start()
        try:
            self.stdout.write(
                self.style.SUCCESS(f"Provedor OpenID de desenvolvimento em {provider.issuer}")
            )
            for name, value in provider.rp_settings().items():
                self.stdout.write(f"export {name}={value}")
            for person in provider.people:
                self.stdout.write(
                    f"  login CCEE: {person.username} / {person.password} (CPF {person.cpf})"
                )
            while provider.process and provider.process.poll() is None:
                time.sleep(1)
        finally:
            provider.stop()
