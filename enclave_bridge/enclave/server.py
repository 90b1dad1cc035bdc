"""The enclave's socket server: one thread per connection (bounded), many requests per connection.

Logs carry metadata only — op, request id, frame sizes, duration, outcome — never payloads,
plaintext values or key material.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from .protocol import (
    DEFAULT_MAX_FRAME,
    E_BUSY,
    E_INTERNAL,
    ConnectionClosed,
    FrameTooLarge,
    ProtocolError,
    decode_message,
    describe_failure,
    encode_frame,
    parse_request,
    read_frame_bytes,
)
from .service import Service, error_answer
from .transport import Address, bound_address, listen

logger = logging.getLogger(__name__)


class EnclaveServer:
    """Accepts connections on a transport address and serves framed requests to a Service."""

    def __init__(
        self,
        service: Service,
        address: Address,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        read_timeout: float = 30.0,
        idle_timeout: float = 300.0,
        max_connections: int = 32,
    ) -> None:
        self.service = service
        self.max_frame = max_frame
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._sock = listen(address)
        self.address = bound_address(self._sock, address)
        self._stopping = threading.Event()

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
            if not self._slots.acquire(blocking=False):
                self._refuse(conn)
                continue
            try:
                threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()
            except RuntimeError:  # no thread to be had: give the slot back, drop the connection
                self._slots.release()
                conn.close()
                logger.warning("cannot start a connection thread; connection dropped")

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
                    error_answer(None, None, None, ProtocolError(E_BUSY, "too many connections"))
                )
            )
        except OSError:
            pass
        finally:
            conn.close()

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            with conn:
                while self._serve_one(conn):
                    pass
        finally:
            self._slots.release()

    def _serve_one(self, conn: socket.socket) -> bool:
        """Serve one frame; False when the connection should close."""
        conn.settimeout(self.idle_timeout)
        try:
            body = read_frame_bytes(conn, max_frame=self.max_frame, body_timeout=self.read_timeout)
        except FrameTooLarge as exc:
            logger.warning(
                "frame refused: declared %d bytes > %d; closing", exc.length, self.max_frame
            )
            self._send(conn, error_answer(None, None, None, exc))
            return False
        except TimeoutError:
            logger.info("connection closed: idle or read timeout")
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
            message = decode_message(body)
            req_id, op = message.get("id"), message.get("op")
            request = parse_request(message)
            answer = self.service.handle(request)
        except ProtocolError as exc:
            answer = error_answer(_safe(req_id), _nonce_of(message), _safe(op), exc)
        except Exception as exc:
            # Type and place only: a message or traceback could quote payload values.
            logger.error("request failed unexpectedly: %s", describe_failure(exc))
            answer = error_answer(None, None, None, ProtocolError(E_INTERNAL, "internal error"))
        frame = encode_frame(answer)
        outcome = answer["error"]["code"] if "error" in answer else "ok"
        logger.info(
            "op=%s id=%s in=%dB out=%dB %.1fms outcome=%s",
            _safe(op),
            _safe(req_id),
            len(body),
            len(frame),
            (time.perf_counter() - started) * 1000,
            outcome,
        )
        return self._send(conn, frame)

    def _send(self, conn: socket.socket, frame: bytes | dict[str, Any]) -> bool:
        if isinstance(frame, dict):
            frame = encode_frame(frame)
        try:
            conn.settimeout(self.read_timeout)
            conn.sendall(frame)
            return True
        except OSError:
            return False


def _safe(value: Any) -> Any:
    """Echo ids/ops only when they are short plain values (they end up in logs and answers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) <= 128 and value.isprintable():
        return value
    return None


def _nonce_of(message: dict[str, Any] | None) -> bytes | None:
    nonce = message.get("nonce") if message is not None else None
    return nonce if isinstance(nonce, bytes) and len(nonce) <= 64 else None
