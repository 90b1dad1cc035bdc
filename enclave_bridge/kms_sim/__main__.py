"""CLI of the SIMULATED KMS.

python -m enclave_bridge.kms_sim serve --host 127.0.0.1 --port 4599 --state FILE --trust-root PEM
python -m enclave_bridge.kms_sim create-key --endpoint URL --pcr0 HEX [--pcr N=HEX ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import create_attested_key, kms_admin_client


def _serve(args: argparse.Namespace) -> int:
    from .server import make_kms_server

    if args.trust_root:
        trust_root = Path(args.trust_root).read_bytes()
    else:
        from enclave_bridge.attestation.devpki import ensure_dev_pki

        trust_root = ensure_dev_pki(args.pki).root_pem
    server = make_kms_server(args.host, args.port, trust_root=trust_root, state_file=args.state)
    # The first line is machine-readable: scripts and tests read the URL from it.
    print(f"SIMULATED KMS listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _parse_pcr(text: str) -> tuple[int, str]:
    index, sep, value = text.partition("=")
    if not sep or not index.isdigit():
        raise argparse.ArgumentTypeError("expected N=HEX")
    return int(index), value


def _create_key(args: argparse.Namespace) -> int:
    pcrs = {0: args.pcr0, **dict(args.pcr)}
    key_id = create_attested_key(
        kms_admin_client(args.endpoint), pcrs, description=args.description
    )
    print(key_id)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enclave_bridge.kms_sim")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the simulated KMS")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4599, help="0 picks a free port")
    serve.add_argument("--state", help="file keeping the keys across restarts")
    serve.add_argument("--trust-root", help="PEM root that attestation documents must chain to")
    serve.add_argument(
        "--pki",
        default="var/dev-attestation-pki",
        help="development PKI directory used when --trust-root is not given (created if missing)",
    )
    create = sub.add_parser(
        "create-key",
        help="create a key whose policy requires PCR values (as the key administrator, kms-admin)",
    )
    create.add_argument("--endpoint", required=True)
    create.add_argument("--pcr0", required=True, help="PCR0 (ImageSha384), 96 hex digits")
    create.add_argument("--pcr", type=_parse_pcr, action="append", default=[], help="N=HEX")
    create.add_argument("--description", default="")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "serve":
        return _serve(args)
    return _create_key(args)


if __name__ == "__main__":
    sys.exit(main())
