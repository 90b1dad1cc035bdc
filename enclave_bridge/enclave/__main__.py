"""Command line: ``python -m enclave_bridge.enclave serve --listen ... --kms-key-id ...``.

On Nitro: ``--nsm nitro`` (the /dev/nsm driver, the default when /dev/nsm exists) and
``--kms-vsock-proxy 3:8000`` (the loopback CONNECT shim to the parent's vsock-proxy, so boto3
reaches KMS with TLS checked end to end). In development: ``--nsm simulated --pki DIR``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from enclave_bridge.wire.protocol import DEFAULT_MAX_FRAME
from enclave_bridge.wire.transport import parse_address

from . import APP_DIR
from .server import EnclaveServer
from .service import Service

logger = logging.getLogger("enclave_bridge.enclave")
NSM_DEVICE = "/dev/nsm"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m enclave_bridge.enclave")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the enclave server",
        description="Run the enclave server. On Nitro: --nsm nitro --kms-vsock-proxy 3:8000. "
        "In development: --nsm simulated --pki DIR --kms-endpoint http://127.0.0.1:PORT.",
    )
    serve.add_argument(
        "--listen", required=True, help="vsock:CID:PORT | unix:PATH | tcp:127.0.0.1:PORT"
    )
    serve.add_argument(
        "--kms-endpoint",
        default=None,
        help="KMS endpoint URL (default https://kms.REGION.amazonaws.com; kms_sim's URL in "
        "development). With --kms-vsock-proxy it must be https: TLS runs through the shim to it",
    )
    serve.add_argument(
        "--kms-key-id", required=True, help="KMS key id or ARN that seals the key set"
    )
    serve.add_argument("--kms-region", default="us-east-1")
    serve.add_argument(
        "--kms-vsock-proxy",
        metavar="CID:PORT",
        default=None,
        help="start the in-enclave shim: a loopback HTTP CONNECT proxy for boto3 that forwards "
        "to the parent's vsock-proxy at vsock CID:PORT (e.g. 3:8000); TLS and certificate "
        "checking stay end to end with KMS. unix:PATH or tcp:HOST:PORT are accepted for tests",
    )
    serve.add_argument(
        "--nsm",
        choices=("nitro", "simulated"),
        default=None,
        help="nitro: the /dev/nsm driver (real attestation, real PCRs); simulated: SimulatedNsm "
        "with the development PKI (--pki). Default: nitro when /dev/nsm exists, else simulated",
    )
    serve.add_argument("--nsm-device", default=NSM_DEVICE, help="NSM device path for --nsm nitro")
    serve.add_argument(
        "--pki",
        default=None,
        help="development PKI directory; required with (and only valid with) --nsm simulated",
    )
    serve.add_argument("--app-dir", default=str(APP_DIR), help="tree measured into the dev PCRs")
    serve.add_argument("--max-frame", type=int, default=DEFAULT_MAX_FRAME, help="bytes")
    serve.add_argument("--read-timeout", type=float, default=30.0, help="seconds to finish a frame")
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=75.0,
        help="seconds a connection may wait between frames (above the host pool's 60 s max_idle)",
    )
    serve.add_argument(
        "--first-frame-timeout",
        type=float,
        default=5.0,
        help="seconds a new connection has to start its first frame",
    )
    serve.add_argument(
        "--send-stall-timeout",
        type=float,
        default=5.0,
        help="seconds a peer may leave its answer unread before the connection is closed",
    )
    serve.add_argument("--max-connections", type=int, default=32)
    serve.add_argument("--workers", type=int, default=None, help="batch processes (default: CPUs)")
    serve.add_argument("--replay-window", type=float, default=900.0, help="seconds nonces are kept")
    serve.add_argument("--log-level", default="INFO")
    return parser


def _kms_client(
    endpoint: str | None,
    region: str,
    credentials: dict[str, str] | None = None,
    *,
    proxy_url: str | None = None,
    **config: Any,
) -> Any:
    """A boto3 KMS client; through the CONNECT shim when `proxy_url` is given (TLS and
    certificate checking unchanged: urllib3 tunnels, then verifies the endpoint's own name)."""
    import boto3
    from botocore.config import Config

    if proxy_url is not None:
        config["proxies"] = {"https": proxy_url}
    keys: dict[str, Any] = {}
    if credentials is not None:
        keys = {
            "aws_access_key_id": credentials["access_key_id"],
            "aws_secret_access_key": credentials["secret_access_key"],
            "aws_session_token": credentials.get("session_token"),
        }
    return boto3.client(
        "kms", endpoint_url=endpoint, region_name=region, config=Config(**config), **keys
    )


def _sealer_factory(
    endpoint: str | None, key_id: str, region: str, nsm: Any, proxy_url: str | None = None
):
    """KmsSealer over a boto3 KMS client; credentials from the request or the environment."""
    from .kms import KmsSealer

    default: list[Any] = []
    lock = threading.Lock()

    def make(credentials: dict[str, str] | None) -> Any:
        if credentials is None:
            with lock:
                if not default:
                    default.append(_kms_client(endpoint, region, proxy_url=proxy_url))
                client = default[0]
        else:
            client = _kms_client(endpoint, region, credentials, proxy_url=proxy_url)
        return KmsSealer(client, key_id, nsm)

    return make


def _choose_nsm(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """Resolve --nsm (default by /dev/nsm presence) and check --pki goes with simulated only."""
    kind = args.nsm or ("nitro" if os.path.exists(args.nsm_device) else "simulated")
    if kind == "simulated" and not args.pki:
        parser.error(
            "--nsm simulated needs --pki DIR (the development PKI that signs its documents)"
            + ("" if args.nsm else f"; {args.nsm_device} is absent, so simulated was chosen")
        )
    if kind == "nitro" and args.pki:
        parser.error("--pki is for the simulated NSM only; --nsm nitro attests with /dev/nsm")
    return kind


def _kms_target(endpoint: str) -> str:
    """host:port a CONNECT through the shim may reach: the KMS endpoint, https only."""
    from urllib.parse import urlsplit

    url = urlsplit(endpoint)
    if url.scheme != "https" or not url.hostname:
        raise ValueError("with --kms-vsock-proxy, --kms-endpoint must be an https:// URL")
    return f"{url.hostname}:{url.port or 443}"


def _make_nsm(kind: str, args: argparse.Namespace) -> Any:
    if kind == "nitro":
        from enclave_bridge.attestation.nitro_nsm import NitroNsm

        nsm = NitroNsm(args.nsm_device)
        if not any(nsm.pcrs().get(0, b"")):
            logger.warning("PCR0 is zero: a debug-mode enclave; verifiers and KMS refuse it")
        return nsm
    from enclave_bridge.attestation.devpki import load_dev_pki
    from enclave_bridge.attestation.nsm import SimulatedNsm, measure_pcrs

    return SimulatedNsm(load_dev_pki(args.pki), measure_pcrs(args.app_dir))


def serve(args: argparse.Namespace, nsm_kind: str = "simulated") -> int:
    from enclave_bridge.attestation.nitro_nsm import NsmError

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # botocore at DEBUG would log request bodies (sealed blobs, attestation documents).
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        nsm = _make_nsm(nsm_kind, args)
    except NsmError as exc:
        print(f"enclave: --nsm nitro: {exc}", file=sys.stderr, flush=True)
        return 2
    endpoint = args.kms_endpoint
    proxy = None
    if args.kms_vsock_proxy:
        from .kms_proxy import KmsProxy, ensure_loopback_up, parse_upstream

        endpoint = endpoint or f"https://kms.{args.kms_region}.amazonaws.com"
        try:
            target = _kms_target(endpoint)
            upstream = parse_upstream(args.kms_vsock_proxy)
            ensure_loopback_up()
            proxy = KmsProxy(upstream, allowed_targets={target})
            proxy.start()
        except (OSError, ValueError) as exc:
            print(f"enclave: --kms-vsock-proxy: {exc}", file=sys.stderr, flush=True)
            return 2
    limits = {
        "max_frame": args.max_frame,
        "read_timeout_s": args.read_timeout,
        "idle_timeout_s": args.idle_timeout,
        "first_frame_timeout_s": args.first_frame_timeout,
        "send_stall_timeout_s": args.send_stall_timeout,
        "max_connections": args.max_connections,
        "replay_window_s": args.replay_window,
    }
    service = Service(
        nsm=nsm,
        sealer_factory=_sealer_factory(
            endpoint,
            args.kms_key_id,
            args.kms_region,
            nsm,
            proxy.proxy_url if proxy is not None else None,
        ),
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
        first_frame_timeout=args.first_frame_timeout,
        send_stall_timeout=args.send_stall_timeout,
        max_connections=args.max_connections,
    )

    def _stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    mode = f"Nitro NSM {nsm.module_id}" if nsm_kind == "nitro" else "SIMULATED development NSM"
    via = f", KMS via {proxy.address} → {proxy.upstream}" if proxy is not None else ""
    print(f"enclave ready on {server.address} ({mode}{via})", flush=True)
    try:
        server.serve_forever()
    finally:
        if proxy is not None:
            proxy.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args, _choose_nsm(args, parser))
    return 2


if __name__ == "__main__":
    sys.exit(main())
