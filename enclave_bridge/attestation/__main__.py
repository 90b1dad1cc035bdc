"""CLI: `python -m enclave_bridge.attestation devpki --out DIR [--force]`."""

from __future__ import annotations

import argparse
import sys

from .devpki import dev_pki_exists, ensure_dev_pki


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enclave_bridge.attestation")
    sub = parser.add_subparsers(dest="command", required=True)
    devpki = sub.add_parser("devpki", help="create the DEVELOPMENT attestation PKI (idempotent)")
    devpki.add_argument("--out", required=True, help="directory for the PEM files")
    devpki.add_argument("--force", action="store_true", help="replace an existing PKI")
    args = parser.parse_args(argv)
    if args.command == "devpki":
        existed = dev_pki_exists(args.out)
        pki = ensure_dev_pki(args.out, force=args.force)
        state = "kept existing" if existed and not args.force else "created"
        print(f"{state} development PKI in {args.out}")
        print(f"root SHA-256: {pki.root_sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
