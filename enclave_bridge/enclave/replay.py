"""Replay protection and idempotent retries: every nonce is remembered for the replay window;
a retry (same nonce, id, op and args) gets the first answer, anything else with a known nonce is
refused."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from enclave_bridge.wire.protocol import E_BUSY, E_IN_PROGRESS, E_REPLAY, ProtocolError, Request


@dataclass
class _Seen:
    req_id: str | int
    op: str
    digest: bytes
    expires: float
    answer: dict[str, Any] | None = None
    size: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class NonceCache:
    """Refuses a nonce seen within the window; replays the stored answer for a retried request.

    A retry (same nonce, same id, same op and args) is idempotent: it gets the first answer, or
    waits for it while the first attempt is still running. Anything else with a known nonce is a
    replay and is refused.
    """

    def __init__(self, window: float, max_entries: int = 200_000, max_bytes: int = 256 << 20):
        self.window = window
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Seen] = OrderedDict()
        self._bytes = 0

    def _expire(self, now: float) -> None:
        """Drop expired nonces only: evicting one still inside the window would let it replay."""
        while self._entries:
            nonce, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            self._entries.popitem(last=False)
            self._bytes -= entry.size

    def begin(self, req: Request, digest: bytes) -> dict[str, Any] | None:
        """None for a fresh nonce (caller must call finish); the stored answer for a retry."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            entry = self._entries.get(req.nonce)
            if entry is None:
                if len(self._entries) >= self.max_entries:
                    raise ProtocolError(
                        E_BUSY, "too many requests inside the replay window; retry later"
                    )
                self._entries[req.nonce] = _Seen(req.id, req.op, digest, now + self.window)
                return None
        if entry.req_id != req.id or entry.op != req.op or entry.digest != digest:
            raise ProtocolError(E_REPLAY, "nonce was already used by another request (replay)")
        if not entry.done.wait(timeout=120):
            raise ProtocolError(E_IN_PROGRESS, "the first attempt of this request is still running")
        if entry.answer is None:
            raise ProtocolError(E_REPLAY, "nonce was already used; its answer is no longer kept")
        return entry.answer

    def finish(self, nonce: bytes, answer: dict[str, Any] | None, size: int) -> None:
        """Store the answer (if it fits the byte budget) and wake any waiting retry."""
        with self._lock:
            entry = self._entries.get(nonce)
            if entry is None:
                return
            if answer is not None and self._bytes + size <= self.max_bytes:
                entry.answer, entry.size = answer, size
                self._bytes += size
        entry.done.set()

    def __len__(self) -> int:
        return len(self._entries)
