"""Start and stop the development OpenID provider as a separate process (``run_demo``,
``run_devidp``, the tests), and the platform's settings that point at it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[3]


@dataclass
class Person:
    """Someone who can sign in at the development provider (its own login and password)."""

    username: str
    password: str
    cpf: str | None
    email: str = ""
    given_name: str = ""
    family_name: str = ""
    email_verified: bool = True

    def as_json(self) -> dict:
        return {
            "password": self.password,
            "cpf": self.cpf,
            "email": self.email,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "email_verified": self.email_verified,
        }


@dataclass
class DevIdentityProvider:
    directory: Path
    redirect_uris: list[str]
    post_logout_uris: list[str] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    client_id: str = "prudencial-dev"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    cpf_claim: str = "cpf"
    token_seconds: int = 3600
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/o"

    def rp_settings(self) -> dict:
        """The platform's OIDC_* settings for this provider (docs/accounts.md § Settings)."""
        return {
            "OIDC_RP_CLIENT_ID": self.client_id,
            "OIDC_RP_CLIENT_SECRET": self.client_secret,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.issuer}/authorize/",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.issuer}/token/",
            "OIDC_OP_USER_ENDPOINT": f"{self.issuer}/userinfo/",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.issuer}/.well-known/jwks.json",
            "OIDC_OP_LOGOUT_ENDPOINT": f"{self.issuer}/logout/",
            "OIDC_RP_SIGN_ALGO": "RS256",
            "OIDC_CPF_CLAIM": self.cpf_claim,
        }

    def start(self, timeout: float = 60.0) -> DevIdentityProvider:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "people.json").write_text(
            json.dumps({p.username: p.as_json() for p in self.people}, indent=2)
        )
        port_file = self.directory / "port"
        port_file.unlink(missing_ok=True)
        # "--name=value": a value may start with "-" (a token_urlsafe secret does, 1 time in
        # 64), which argparse would read as the next option and exit.
        command = [
            sys.executable,
            "-m",
            "prudencial.accounts.devidp",
            f"--dir={self.directory}",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--client-id={self.client_id}",
            f"--client-secret={self.client_secret}",
            f"--cpf-claim={self.cpf_claim}",
        ]
        command += [f"--redirect-uri={uri}" for uri in self.redirect_uris]
        command += [f"--post-logout-uri={uri}" for uri in self.post_logout_uris]
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env["DEVIDP_TOKEN_SECONDS"] = str(self.token_seconds)
        log = (self.directory / "devidp.log").open("ab")
        self.process = subprocess.Popen(
            command, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the development OpenID provider exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the development OpenID provider did not start: {self.log_tail()}"
                )
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text())
                try:
                    discovery = f"{self.issuer}/.well-known/openid-configuration"
                    with urllib.request.urlopen(discovery, timeout=2) as answer:
                        if answer.status == 200:
                            return self
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
            time.sleep(0.1)

    def log_tail(self, chars: int = 3000) -> str:
        log = self.directory / "devidp.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> DevIdentityProvider:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
