"""CLI: `python -m enclave_bridge.attestation devpki --out DIR [--force]`, and the enclave
image's manifest: `image list`, `image stage DIR` (the build context), `image measure`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .devpki import dev_pki_exists, ensure_dev_pki
from .image import image_files, stage
from .nsm import measure_pcrs

APP_DIR = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enclave_bridge.attestation")
    sub = parser.add_subparsers(dest="command", required=True)
    devpki = sub.add_parser("devpki", help="create the DEVELOPMENT attestation PKI (idempotent)")
    devpki.add_argument("--out", required=True, help="directory for the PEM files")
    devpki.add_argument("--force", action="store_true", help="replace an existing PKI")
    image = sub.add_parser(
        "image", help="the enclave image's files (enclave_bridge/enclave-image.txt)"
    )
    image.add_argument("action", choices=("list", "stage", "measure"))
    image.add_argument("dest", nargs="?", help="staging directory, for stage")
    image.add_argument("--app-dir", default=str(APP_DIR))
    args = parser.parse_args(argv)
    if args.command == "image":
        root = Path(args.app_dir).resolve()
        if args.action == "list":
            print("\n".join(p.relative_to(root).as_posix() for p in image_files(root)))
        elif args.action == "stage":
            if not args.dest:
                parser.error("image stage needs a destination directory")
            print(f"staged {len(stage(root, args.dest))} files into {args.dest}")
        else:
            for index, value in sorted(measure_pcrs(root).items()):
                print(f"PCR{index} {value.hex()}")
        return 0
    if args.command == "devpki":
        existed = dev_pki_exists(args.out)
        pki = ensure_dev_pki(args.out, force=args.force)
        state = "kept existing" if existed and not args.force else "created"
        print(f"{state} development PKI in {args.out}")
        print(f"root SHA-256: {pki.root_sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
