"""Inside the enclave: a loopback HTTP CONNECT shim that carries boto3's TLS to KMS over vsock.

The enclave has no network, only vsock. On the parent, `vsock-proxy 8000
kms.REGION.amazonaws.com 443` relays vsock port 8000 (CID 3) to KMS. This module closes the gap
inside the enclave: `KmsProxy` listens on `tcp:127.0.0.1:<port>` and forwards every accepted
connection to the upstream address (`vsock:3:8000` in production; `unix:` or `tcp:` in tests,
through the same `transport.connect`).

Why an HTTP CONNECT front, and why certificate checking stays ON: boto3 is configured with
`Config(proxies={"https": proxy_url})` and its ordinary endpoint
`https://kms.REGION.amazonaws.com`. urllib3 then sends `CONNECT kms.REGION.amazonaws.com:443`
to the shim, and after the shim's `200` runs TLS *inside the tunnel* with SNI and hostname
verification against the real KMS name and the normal CA bundle. The shim never sees plaintext
and needs no DNS or /etc/hosts trick; pointing `endpoint_url` at `https://127.0.0.1:8000` instead
would fail hostname verification (or need it disabled, which we never do). The shim accepts
CONNECT only to the targets it was given (the KMS endpoint), so nothing else in the enclave can
use it to reach other hosts through the parent. `allowed_targets=None` makes it a raw byte
forwarder (no CONNECT), used by tests and available for other TLS clients.

Loopback: the Nitro init (aws-nitro-enclaves-sdk-bootstrap `init/init.c`) configures no network
interface, so `lo` is down when our program starts; `ensure_loopback_up` raises it (SIOCSIFFLAGS,
which needs root, which the enclave's init gives the image's command).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Collection

from enclave_bridge.wire.transport import Address, bound_address, connect, listen

logger = logging.getLogger(__name__)

MAX_CONNECT_HEADER = 8192
_CHUNK = 65536

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: ifr_name[IFNAMSIZ] + ifr_flags, 40 bytes


def ensure_loopback_up(ioctl: Callable[[int, int, bytes], bytes] | None = None) -> bool:
    """Bring `lo` up if it is down; return True when it had to. Linux only; needs CAP_NET_ADMIN
    to change the flag (reading it does not). The kernel gives an up loopback 127.0.0.1/8."""
    call = ioctl or fcntl.ioctl
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        answer = call(sock.fileno(), SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0))
        flags = _IFREQ.unpack(answer)[1]
        if flags & IFF_UP:
            return False
        try:
            call(sock.fileno(), SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | IFF_UP))
        except PermissionError:
            raise PermissionError(
                "the loopback interface is down and bringing it up needs root (CAP_NET_ADMIN)"
            ) from None
    logger.info("loopback interface brought up")
    return True


def parse_upstream(text: str) -> Address:
    """`CID:PORT` (vsock, as `--kms-vsock-proxy 3:8000`) or any transport address."""
    cid, sep, port = text.partition(":")
    if sep and cid.isdigit() and port.isdigit():
        return Address("vsock", cid=int(cid), port=int(port))
    from enclave_bridge.wire.transport import parse_address

    return parse_address(text)


class _ConnectRefused(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class KmsProxy:
    """Threaded loopback → upstream forwarder, with an optional HTTP CONNECT front.

    One thread per connection (at most `max_connections`; beyond, the connection is closed, or
    answered 503 in CONNECT mode), a select loop per connection that copies bytes both ways,
    passes each side's EOF on as a half-close (shutdown SHUT_WR) and ends when both directions
    have ended or nothing moved for `idle_timeout` seconds. Logs carry sizes, never bytes.
    """

    def __init__(
        self,
        upstream: Address,
        *,
        listen_address: Address | None = None,
        allowed_targets: Collection[str] | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 300.0,
        header_timeout: float = 10.0,
        max_connections: int = 64,
    ) -> None:
        self.upstream = upstream
        self._listen_address = listen_address or Address("tcp", host="127.0.0.1", port=0)
        if self._listen_address.scheme != "tcp":
            raise ValueError("the KMS proxy listens on tcp:127.0.0.1:PORT only")
        self.allowed_targets = (
            None if allowed_targets is None else {t.lower() for t in allowed_targets}
        )
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._active: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self.address: Address | None = None
        self.stats = {
            "accepted": 0,
            "refused": 0,
            "upstream_failed": 0,
            "completed": 0,
            "accept_errors": 0,
        }

    @property
    def proxy_url(self) -> str:
        """For botocore `Config(proxies={"https": proxy_url})`."""
        if self.address is None:
            raise RuntimeError("proxy not started")
        return f"http://{self.address.host}:{self.address.port}"

    def start(self) -> Address:
        listener = listen(self._listen_address)
        listener.settimeout(0.2)
        self._listener = listener
        self.address = bound_address(listener, self._listen_address)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="kms-proxy-accept", daemon=True
        )
        self._accept_thread.start()
        logger.info("KMS proxy on %s → %s", self.address, self.upstream)
        return self.address

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            active = list(self._active)
            threads = list(self._threads)
        for sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)

    def __enter__(self) -> KmsProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- accepting --------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    return
                # Transient (ECONNABORTED, EMFILE, ...): a dead accept thread would leave every
                # later KMS call hanging until the enclave restarts, so keep accepting.
                self._count("accept_errors")
                logger.warning("kms proxy: accept failed (%s); retrying", type(exc).__name__)
                self._stop.wait(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                self._count("refused")
                self._refuse_busy(client)
                continue
            self._count("accepted")
            thread = threading.Thread(
                target=self._serve, args=(client,), name="kms-proxy-conn", daemon=True
            )
            with self._lock:
                self._threads.add(thread)
            try:
                thread.start()
            except RuntimeError:  # no thread to be had: give the slot back, drop the client
                with self._lock:
                    self._threads.discard(thread)
                self._slots.release()
                client.close()
                logger.warning("kms proxy: cannot start a connection thread; connection dropped")

    def _refuse_busy(self, client: socket.socket) -> None:
        try:
            if self.allowed_targets is not None:
                client.settimeout(1.0)
                client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass
        finally:
            client.close()

    # --- one connection ---------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._active.update(socks)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        self._track(client)
        try:
            early = b""
            if self.allowed_targets is not None:
                early = self._read_connect(client)
            try:
                upstream = connect(self.upstream, timeout=self.connect_timeout)
            except OSError as exc:
                self._count("upstream_failed")
                logger.warning("KMS proxy: upstream %s unreachable (%s)", self.upstream, exc)
                if self.allowed_targets is not None:
                    client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            self._track(upstream)
            if self.allowed_targets is not None:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if early:
                upstream.sendall(early)
            sent, received = self._pump(client, upstream)
            self._count("completed")
            logger.debug("KMS proxy connection done: %d bytes up, %d down", sent, received)
        except _ConnectRefused as refused:
            with contextlib.suppress(OSError):
                client.sendall(
                    f"HTTP/1.1 {refused.status}\r\nContent-Length: 0\r\n\r\n".encode("ascii")
                )
        except OSError as exc:
            logger.debug("KMS proxy connection ended: %s", exc)
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with self._lock:
                        self._active.discard(sock)
                    sock.close()
            with self._lock:
                self._threads.discard(threading.current_thread())
            self._slots.release()

    def _read_connect(self, client: socket.socket) -> bytes:
        """Read and check `CONNECT host:port HTTP/1.x`; return bytes read past the header."""
        client.settimeout(self.header_timeout)
        data = b""
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_CONNECT_HEADER:
                raise _ConnectRefused("431 Request Header Fields Too Large")
            chunk = client.recv(4096)
            if not chunk:
                raise OSError("client closed before sending a CONNECT request")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
            raise _ConnectRefused("405 Method Not Allowed")
        target = parts[1].lower()
        assert self.allowed_targets is not None
        if target not in self.allowed_targets:
            logger.warning("KMS proxy: CONNECT to a target not allowed, refused")
            raise _ConnectRefused("403 Forbidden")
        return rest

    def _pump(self, a: socket.socket, b: socket.socket) -> tuple[int, int]:
        """Copy a→b (this thread) and b→a (a helper thread) until both sides sent EOF, or
        nothing moved either way for `idle_timeout` seconds.

        One thread per direction, so a peer that is slow to read never stalls the other
        direction (a single loop doing a blocking sendall would deadlock against an echoing peer).
        """
        tick = min(self.idle_timeout, 1.0)  # wake at least every second to notice stop()/idle
        for sock in (a, b):
            sock.settimeout(tick)
        last = [time.monotonic()]
        done = threading.Event()  # set when one direction stops abnormally: stop the other too

        def copy(src: socket.socket, dst: socket.socket, count: list[int]) -> None:
            try:
                while not done.is_set() and not self._stop.is_set():
                    try:
                        data = src.recv(_CHUNK)
                    except TimeoutError:
                        if time.monotonic() - last[0] >= self.idle_timeout:
                            break
                        continue
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)  # pass the half-close on
                        return
                    last[0] = time.monotonic()
                    view = memoryview(data)
                    while view and not done.is_set():
                        try:
                            sent = dst.send(view)
                        except TimeoutError:
                            if time.monotonic() - last[0] >= self.idle_timeout:
                                raise
                            continue
                        view = view[sent:]
                        last[0] = time.monotonic()
                    count[0] += len(data)
            except OSError:
                pass
            done.set()

        up, down = [0], [0]
        helper = threading.Thread(
            target=copy, args=(b, a, down), name="kms-proxy-down", daemon=True
        )
        helper.start()
        copy(a, b, up)
        while helper.is_alive():
            helper.join(tick)
            if self._stop.is_set():
                done.set()
        return up[0], down[0]
