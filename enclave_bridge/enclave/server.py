"""The enclave's socket server: one thread per connection (bounded), many requests per connection.

Logs carry metadata only — op, request id, frame sizes, duration, outcome — never payloads,
plaintext values or key material.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

from enclave_bridge.wire.protocol import (
    DEFAULT_MAX_FRAME,
    E_BUSY,
    E_INTERNAL,
    OP_NAME,
    ConnectionClosed,
    FrameTooLarge,
    ProtocolError,
    check_request_id,
    decode_frame,
    describe_failure,
    encode_frame,
    parse_request,
    read_frame_bytes,
    request_args_digest,
)
from enclave_bridge.wire.transport import Address, bound_address, listen

from .service import Service

logger = logging.getLogger(__name__)
DRAIN_SECONDS = 2.0


class _Connection:
    """One served connection's state, for shedding idle ones when the slots run out."""

    __slots__ = ("sock", "working", "since", "shed")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.working = False  # True from a complete frame until its answer is sent
        self.since = time.monotonic()  # when it last started waiting for a frame
        self.shed = False


class EnclaveServer:
    """Accepts connections on a transport address and serves framed requests to a Service.

    Slots are bounded (``max_connections`` threads) and never held for free: a new connection
    must start its first frame within ``first_frame_timeout`` and complete it within as much
    again; between frames a connection may wait ``idle_timeout``; a later frame, once begun,
    must arrive within ``read_timeout``; a peer that stops reading its answer for
    ``send_stall_timeout`` is closed. When every slot is taken, the connection that has waited
    longest (for a frame, or for its peer to read) is shed to serve the newcomer, so idle,
    trickling or non-reading peers cannot starve the host's own pool. Only connections running
    a request are never shed.
    """

    def __init__(
        self,
        service: Service,
        address: Address,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        read_timeout: float = 30.0,
        idle_timeout: float = 75.0,
        first_frame_timeout: float = 5.0,
        send_stall_timeout: float = 5.0,
        max_connections: int = 32,
    ) -> None:
        self.service = service
        self.max_frame = max_frame
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.first_frame_timeout = first_frame_timeout
        self.send_stall_timeout = send_stall_timeout
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._connections: set[_Connection] = set()
        self._registry = threading.Lock()
        self._sock = listen(address)
        self.address = bound_address(self._sock, address)
        self._stopping = threading.Event()
        self.shed_count = 0

    def serve_forever(self) -> None:
        logger.info("enclave listening on %s", self.address)
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError as exc:
                if self._stopping.is_set():
                    break
                # Transient (ECONNABORTED, EMFILE, ...): keep serving rather than die.
                logger.warning("accept failed (%s); retrying", type(exc).__name__)
                self._stopping.wait(0.1)
                continue
            try:
                self._admit(conn)
            except BaseException as exc:  # the accept loop must outlive anything
                logger.error("admitting a connection failed: %s", describe_failure(exc))
                conn.close()

    def _admit(self, conn: socket.socket) -> None:
        if not self._slots.acquire(blocking=False) and not (
            self._shed_one() and self._slots.acquire(timeout=1.0)
        ):
            self._refuse(conn)
            return
        record = _Connection(conn)
        with self._registry:
            self._connections.add(record)
        try:
            threading.Thread(target=self._serve_connection, args=(record,), daemon=True).start()
        except RuntimeError:  # no thread to be had: give the slot back, drop the connection
            with self._registry:
                self._connections.discard(record)
            self._slots.release()
            conn.close()
            logger.warning("cannot start a connection thread; connection dropped")

    def _shed_one(self) -> bool:
        """Close the connection that has waited longest for a frame; False if all are working."""
        with self._registry:
            waiting = [c for c in self._connections if not c.working and not c.shed]
            if not waiting:
                return False
            victim = min(waiting, key=lambda c: c.since)
            victim.shed = True
        self.shed_count += 1
        with contextlib.suppress(OSError):
            victim.sock.shutdown(socket.SHUT_RDWR)  # wakes its thread's recv with EOF
        return True

    def stop(self) -> None:
        self._stopping.set()
        self._sock.close()
        self.service.pool.close()

    def _refuse(self, conn: socket.socket) -> None:
        logger.warning("connection refused: all connection slots busy")
        try:
            conn.settimeout(1.0)
            conn.sendall(
                encode_frame(
                    self.service.refusal(
                        None, None, None, ProtocolError(E_BUSY, "too many connections")
                    )
                )
            )
        except OSError:
            pass
        finally:
            conn.close()

    def _serve_connection(self, record: _Connection) -> None:
        conn = record.sock
        try:
            with conn:
                first = True
                while self._serve_one(record, first):
                    first = False
        except BaseException as exc:  # no input may end the process; this thread just closes
            logger.error("connection thread failed: %s", describe_failure(exc))
        finally:
            with self._registry:
                self._connections.discard(record)
            self._slots.release()

    def _read(self, record: _Connection, first: bool) -> bytes | None:
        conn = record.sock
        with self._registry:
            record.working = False
            record.since = time.monotonic()
        conn.settimeout(self.first_frame_timeout if first else self.idle_timeout)
        # A new connection starts its first frame within first_frame_timeout and completes it
        # within as much again (never more than read_timeout); later frames have read_timeout.
        body_timeout = (
            min(self.first_frame_timeout, self.read_timeout) if first else self.read_timeout
        )
        body = read_frame_bytes(conn, max_frame=self.max_frame, body_timeout=body_timeout)
        with self._registry:
            if record.shed or body is None:
                return None
            record.working = True
        return body

    def _serve_one(self, record: _Connection, first: bool) -> bool:
        """Serve one frame; False when the connection should close."""
        conn = record.sock
        try:
            body = self._read(record, first)
        except FrameTooLarge as exc:
            logger.warning(
                "frame refused: declared %d bytes > %d; closing", exc.length, self.max_frame
            )
            self._send(conn, self.service.refusal(None, None, None, exc))
            self._drain(conn, exc.length)
            return False
        except TimeoutError:
            logger.info("connection closed: %s timeout", "first-frame" if first else "idle/read")
            return False
        except (ConnectionClosed, OSError):
            return False
        if body is None:
            return False
        started = time.perf_counter()
        req_id: Any = None
        op: Any = None
        message: dict[str, Any] | None = None
        try:
            message, spans = decode_frame(body)
            req_id, op = message.get("id"), message.get("op")
            request = parse_request(message, request_args_digest(body, spans))
            answer = self.service.handle(request)
        except ProtocolError as exc:
            answer = self.service.refusal(_safe(req_id), _nonce_of(message), _safe_op(op), exc)
        except BaseException as exc:
            # Type and place only: a message or traceback could quote payload values.
            logger.error("request failed unexpectedly: %s", describe_failure(exc))
            answer = self.service.refusal(
                None, None, None, ProtocolError(E_INTERNAL, "internal error")
            )
        frame = encode_frame(answer)
        outcome = answer["error"]["code"] if "error" in answer else "ok"
        logger.info(
            "op=%s id=%s in=%dB out=%dB %.1fms outcome=%s",
            _safe_op(op),
            _safe(req_id),
            len(body),
            len(frame),
            (time.perf_counter() - started) * 1000,
            outcome,
        )
        return self._send(conn, frame, record)

    def _drain(self, conn: socket.socket, declared: int) -> None:
        """After refusing an oversize frame, read (and drop) what the peer is still sending, for
        a bounded time, so it can finish its write and read the refusal instead of a reset."""
        deadline = time.monotonic() + DRAIN_SECONDS
        left = min(declared, 2 * self.max_frame)
        try:
            conn.shutdown(socket.SHUT_WR)
            while left > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                conn.settimeout(remaining)
                chunk = conn.recv(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)
        except OSError:
            return

    def _send(
        self, conn: socket.socket, frame: bytes | dict[str, Any], record: _Connection | None = None
    ) -> bool:
        """Send a whole frame, in chunks: a peer that stops reading for ``send_stall_timeout``
        is closed, and while it is being sent the connection counts as waiting (since its last
        progress), so a peer that does not read its answers can be shed like an idle one."""
        if isinstance(frame, dict):
            frame = encode_frame(frame)
        view = memoryview(frame)
        try:
            conn.settimeout(self.send_stall_timeout)
            while view:
                if record is not None:
                    with self._registry:
                        if record.shed:
                            return False
                        record.working = False
                        record.since = time.monotonic()
                sent = conn.send(view[: 1 << 20])
                view = view[sent:]
            return True
        except OSError:  # TimeoutError included: the peer stopped reading
            return False


def _safe(value: Any) -> Any:
    """Echo an id only when it is a valid id (it ends up in logs and signed answers)."""
    try:
        return check_request_id(value)
    except ProtocolError:
        return None


def _safe_op(value: Any) -> str | None:
    """Echo an op only when it is a well-formed op name."""
    return value if isinstance(value, str) and OP_NAME.fullmatch(value) else None


def _nonce_of(message: dict[str, Any] | None) -> bytes | None:
    nonce = message.get("nonce") if message is not None else None
    return nonce if isinstance(nonce, bytes) and len(nonce) <= 64 else None
