"""Connections to one enclave address: a small pool of idle connections (closed after
``max_idle``), framing, and retries with backoff on connection failures and ``busy``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from enclave_bridge.wire.protocol import (
    E_BUSY,
    ConnectionClosed,
    decode_message,
    read_frame_bytes,
)
from enclave_bridge.wire.transport import Address, connect

from .errors import EnclaveConnectionError


class ConnectionPool:
    """Thread-safe; reuses up to ``pool_size`` idle connections to ``address``."""

    def __init__(
        self,
        address: Address,
        *,
        retries: int,
        backoff: float,
        pool_size: int,
        max_idle: float,
        max_answer_frame: int,
    ) -> None:
        self.address = address
        self.retries = retries
        self.backoff = backoff
        self.pool_size = pool_size
        self.max_idle = max_idle
        self.max_answer_frame = max_answer_frame
        self._idle: list[tuple[socket.socket, float]] = []  # (connection, released at)
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._closed = threading.Event()

    @property
    def idle(self) -> list[tuple[socket.socket, float]]:
        """The pooled idle connections with the time each was released (a copy)."""
        with self._lock:
            return list(self._idle)

    def _take_stale(self) -> list[socket.socket]:
        """Remove (under the lock) and return the pooled connections idle past max_idle."""
        limit = time.monotonic() - self.max_idle
        stale = [c for c, released in self._idle if released < limit]
        self._idle = [(c, released) for c, released in self._idle if released >= limit]
        return stale

    def _sweep(self) -> None:
        """Background: close idle connections past max_idle even if this process stays quiet."""
        while not self._closed.wait(max(self.max_idle / 2, 0.05)):
            with self._lock:
                stale = self._take_stale()
            for old in stale:
                old.close()

    def _acquire(self, timeout: float) -> socket.socket:
        with self._lock:
            stale = self._take_stale()
            sock = self._idle.pop()[0] if self._idle else None
        for old in stale:
            old.close()
        if sock is None:
            sock = connect(self.address, timeout=timeout)
        sock.settimeout(timeout)
        return sock

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < self.pool_size and not self._closed.is_set():
                self._idle.append((sock, time.monotonic()))
                if self._sweeper is None:
                    self._sweeper = threading.Thread(
                        target=self._sweep, name="enclave-pool-sweep", daemon=True
                    )
                    self._sweeper.start()
                return
        sock.close()

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            idle, self._idle = self._idle, []
        for sock, _ in idle:
            sock.close()

    def exchange(self, frame: bytes, timeout: float) -> dict[str, Any]:
        attempt = 0
        while True:
            sock = None
            try:
                sock = self._acquire(timeout)
                try:
                    sock.sendall(frame)
                except (BrokenPipeError, ConnectionResetError):
                    # The enclave may have refused the frame and closed: read its refusal, if
                    # it sent one, rather than report a bare broken pipe.
                    body = read_frame_bytes(sock, max_frame=self.max_answer_frame)
                    if body is None:
                        raise
                else:
                    body = read_frame_bytes(sock, max_frame=self.max_answer_frame)
                if body is None:
                    raise ConnectionClosed("enclave closed the connection")
                # An answer is as large as the batch the host asked for: bounded by the answer
                # frame limit, not by the enclave's per-request item budget.
                answer = decode_message(body, max_items=max(len(body), 1))
                if _refused_busy(answer) and attempt < self.retries:
                    # All connection slots were taken: the enclave closed without running the
                    # request, so it is retried like a connection failure.
                    raise ConnectionClosed("enclave refused the connection: busy")
                if answer.get("id") is None:
                    sock.close()  # a frame-level refusal: the enclave closes after sending it
                else:
                    self._release(sock)
                return answer
            except (OSError, ConnectionClosed) as exc:
                if sock is not None:
                    sock.close()
                attempt += 1
                if attempt > self.retries:
                    raise EnclaveConnectionError(
                        f"enclave at {self.address} unreachable after {attempt} attempt(s): "
                        f"{type(exc).__name__}"
                    ) from exc
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            except BaseException:
                # Anything else (an oversized or undecodable answer frame, an interrupt): the
                # connection is in an unknown state, so it is never pooled.
                if sock is not None:
                    sock.close()
                raise


def _refused_busy(answer: Mapping[str, Any]) -> bool:
    """The framing-level refusal a full enclave sends at accept, before reading any request."""
    error = answer.get("error")
    return answer.get("id") is None and isinstance(error, dict) and error.get("code") == E_BUSY
