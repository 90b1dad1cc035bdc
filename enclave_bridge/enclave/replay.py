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

# The ops whose answers are remembered for the replay window (they change what the enclave holds,
# or their answer could not be recomputed on a retry: a computed batch is consumed).
# Not here, on purpose: ``registry`` (staging is keyed by the list's digest, so running it again
# leaves the enclave as the first run did and returns the same answer) and ``split`` (a retry
# re-encrypts the same payloads to the same key: an equivalent answer, and one far too large to
# keep for the window). Kept out of the cache, a flood of either cannot fill it and lock the
# host's stateful ops out.
STATEFUL_OPS = frozenset({"init", "unseal", "rotate", "batch_open", "batch_add", "compute"})


@dataclass
class _Seen:
    req_id: str | int
    op: str
    digest: bytes
    expires: float
    answer: dict[str, Any] | None = None
    size: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    waiting: bool = False  # one retry may wait for the first attempt; others are told to come back


class NonceCache:
    """Refuses a nonce seen within the window; replays the stored answer for a retried request.

    Only for the ops that change the enclave's state (``STATEFUL_OPS``): a retry (same nonce, id,
    op and args) is idempotent: it gets the first answer, or waits for it while the first attempt
    is still running (one waiter at a time). Anything else with a known nonce is a replay and is
    refused. Pure ops (health, describe, attest, validate) never enter the cache: running one
    again changes nothing, and a flood of them cannot fill it.
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
        with self._lock:
            if not entry.done.is_set() and entry.waiting:
                # Many copies of one slow request must not hold a connection slot each.
                raise ProtocolError(
                    E_IN_PROGRESS, "the first attempt of this request is still running"
                )
            entry.waiting = True
        try:
            if not entry.done.wait(timeout=120):
                raise ProtocolError(
                    E_IN_PROGRESS, "the first attempt of this request is still running"
                )
        finally:
            entry.waiting = False
        if entry.answer is None:
            raise ProtocolError(E_REPLAY, "nonce was already used; its answer is no longer kept")
        return entry.answer

    def finish(self, nonce: bytes, answer: dict[str, Any] | None, size: int) -> None:
        """Store the answer (if it fits the byte budget) and wake any waiting retry.

        A refused request changed nothing, so its entry is released rather than kept for the
        window: a flood of bad requests cannot fill the cache and lock out the host's own.
        """
        with self._lock:
            entry = self._entries.get(nonce)
            if entry is None:
                return
            if answer is None or "error" in answer:
                del self._entries[nonce]
                entry.answer = answer
                entry.done.set()
                return
            if self._bytes + size <= self.max_bytes:
                entry.answer, entry.size = answer, size
                self._bytes += size
        entry.done.set()

    def __len__(self) -> int:
        return len(self._entries)
