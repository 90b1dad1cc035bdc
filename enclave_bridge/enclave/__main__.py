"""Command line: ``python -m enclave_bridge.enclave serve --listen ... --kms-endpoint ...``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from . import APP_DIR
from .protocol import DEFAULT_MAX_FRAME
from .server import EnclaveServer
from .service import Service
from .transport import parse_address


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m enclave_bridge.enclave")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the enclave server")
    serve.add_argument(
        "--listen", required=True, help="vsock:CID:PORT | unix:PATH | tcp:127.0.0.1:PORT"
    )
    serve.add_argument(
        "--kms-endpoint", required=True, help="KMS endpoint URL (vsock-proxy or kms_sim)"
    )
    serve.add_argument(
        "--kms-key-id", required=True, help="KMS key id or ARN that seals the key set"
    )
    serve.add_argument("--kms-region", default="us-east-1")
    serve.add_argument(
        "--pki",
        required=True,
        help="development PKI directory: use the SIMULATED NSM (no /dev/nsm driver in this build)",
    )
    serve.add_argument("--app-dir", default=str(APP_DIR), help="tree measured into the dev PCRs")
    serve.add_argument("--max-frame", type=int, default=DEFAULT_MAX_FRAME, help="bytes")
    serve.add_argument("--read-timeout", type=float, default=30.0, help="seconds to finish a frame")
    serve.add_argument("--idle-timeout", type=float, default=300.0, help="seconds between frames")
    serve.add_argument("--max-connections", type=int, default=32)
    serve.add_argument("--workers", type=int, default=None, help="batch processes (default: CPUs)")
    serve.add_argument("--replay-window", type=float, default=900.0, help="seconds nonces are kept")
    serve.add_argument("--log-level", default="INFO")
    return parser


def _sealer_factory(endpoint: str, key_id: str, region: str, nsm: Any):
    """KmsSealer over a boto3 KMS client; credentials from the request or the environment."""
    import boto3

    from .kms import KmsSealer

    default: list[Any] = []
    lock = threading.Lock()

    def make(credentials: dict[str, str] | None) -> Any:
        if credentials is None:
            with lock:
                if not default:
                    default.append(boto3.client("kms", endpoint_url=endpoint, region_name=region))
                client = default[0]
        else:
            client = boto3.client(
                "kms",
                endpoint_url=endpoint,
                region_name=region,
                aws_access_key_id=credentials["access_key_id"],
                aws_secret_access_key=credentials["secret_access_key"],
                aws_session_token=credentials.get("session_token"),
            )
        return KmsSealer(client, key_id, nsm)

    return make


def serve(args: argparse.Namespace) -> int:
    from enclave_bridge.attestation.devpki import load_dev_pki
    from enclave_bridge.attestation.nsm import SimulatedNsm, measure_pcrs

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # botocore at DEBUG would log request bodies (sealed blobs, attestation documents).
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    nsm = SimulatedNsm(load_dev_pki(args.pki), measure_pcrs(args.app_dir))
    limits = {
        "max_frame": args.max_frame,
        "read_timeout_s": args.read_timeout,
        "idle_timeout_s": args.idle_timeout,
        "max_connections": args.max_connections,
        "replay_window_s": args.replay_window,
    }
    service = Service(
        nsm=nsm,
        sealer_factory=_sealer_factory(args.kms_endpoint, args.kms_key_id, args.kms_region, nsm),
        replay_window=args.replay_window,
        workers=args.workers,
        limits=limits,
    )
    server = EnclaveServer(
        service,
        parse_address(args.listen),
        max_frame=args.max_frame,
        read_timeout=args.read_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
    )

    def _stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"enclave ready on {server.address} (development NSM)", flush=True)
    server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
