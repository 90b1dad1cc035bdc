"""Run the development OpenID provider: ``python -m prudencial.accounts.devidp --dir DIR ...``.

Prepares ``DIR`` (secret, RSA signing key, SQLite database), creates the people of
``DIR/people.json`` (written by the launcher) and the one client, then serves HTTP on
``--host``/``--port`` (0: any free port) until SIGTERM, writing the port to ``DIR/port``."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socketserver
import sys
from pathlib import Path


def _prepare(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    secret = directory / "secret.txt"
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(50))
    key = directory / "oidc.key"
    if not key.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    people = directory / "people.json"
    if not people.exists():
        people.write_text("{}")


def _load(args) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from oauth2_provider.models import get_application_model

    call_command("migrate", verbosity=0, interactive=False)
    User = get_user_model()
    for username, person in settings.DEVIDP_PEOPLE.items():
        user, _ = User.objects.get_or_create(username=username)
        user.email = person.get("email", "")
        user.first_name = person.get("given_name", "")
        user.last_name = person.get("family_name", "")
        user.set_password(person["password"])
        user.save()
    Application = get_application_model()
    app = Application.objects.filter(client_id=args.client_id).first() or Application(
        client_id=args.client_id
    )
    app.name = "Plataforma de Monitoramento Prudencial"
    app.client_type = Application.CLIENT_CONFIDENTIAL
    app.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
    app.client_secret = args.client_secret
    app.redirect_uris = " ".join(args.redirect_uri)
    app.post_logout_redirect_uris = " ".join(args.post_logout_uri)
    app.algorithm = Application.RS256_ALGORITHM
    app.skip_authorization = True
    app.save()


def _serve(args, directory: Path) -> None:
    from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
    from django.core.wsgi import get_wsgi_application

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    httpd = Server((args.host, args.port), WSGIRequestHandler, ipv6=False)
    httpd.set_app(get_wsgi_application())
    port_file = directory / "port"
    port_file.write_text(str(httpd.server_port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"devidp: http://{args.host}:{httpd.server_port}/o/", flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m prudencial.accounts.devidp")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", action="append", required=True)
    parser.add_argument("--post-logout-uri", action="append", default=[])
    parser.add_argument("--cpf-claim", default="cpf")
    args = parser.parse_args(argv)
    directory = args.dir.resolve()
    _prepare(directory)
    os.environ["DEVIDP_DIR"] = str(directory)
    os.environ["DEVIDP_CPF_CLAIM"] = args.cpf_claim
    os.environ["DJANGO_SETTINGS_MODULE"] = "prudencial.accounts.devidp.settings"
    import django

    django.setup()
    _load(args)
    _serve(args, directory)


if __name__ == "__main__":
    main()
