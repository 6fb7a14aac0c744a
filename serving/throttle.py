"""Per-client backoff after failed authentication (API keys and UI sign-in).

Each client (its address as the server sees it; behind a proxy, run uvicorn with
``--forwarded-allow-ips`` so this is the caller, not the proxy) may fail ``free`` times; after
that every further failure doubles a lock-out, from ``base_seconds`` up to ``max_seconds``.
While locked out a client gets 429 with ``Retry-After`` whatever it sends, so guessing a key
costs an attacker exponentially more time while a typo costs a person nothing. A success
clears the client's record. The table is bounded (least recently failed clients are forgotten
first) so a flood of addresses cannot grow memory without limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Record:
    failures: int
    blocked_until: float


class FailureThrottle:
    """Counts authentication failures per client and says how long one must wait."""

    def __init__(
        self,
        free: int = 5,
        base_seconds: float = 1.0,
        max_seconds: float = 300.0,
        forget_seconds: float = 3600.0,
        max_clients: int = 10_000,
    ) -> None:
        self.free, self.base, self.max = free, base_seconds, max_seconds
        self.forget, self.max_clients = forget_seconds, max_clients
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds ``client`` must still wait before its next attempt is even checked (0: go)."""
        record = self._records.get(client)
        if record is None:
            return 0.0
        return max(0.0, record.blocked_until - (time.monotonic() if now is None else now))

    def failed(self, client: str, now: float | None = None) -> float:
        """Record one failure; returns the lock-out it starts (0 while still within ``free``)."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            record = self._records.pop(client, None)
            if record is None or moment - record.blocked_until > self.forget:
                record = _Record(0, moment)
            record.failures += 1
            over = record.failures - self.free
            wait = 0.0 if over <= 0 else min(self.max, self.base * math.pow(2, min(over - 1, 30)))
            record.blocked_until = moment + wait
            self._records[client] = record
            while len(self._records) > self.max_clients:
                self._records.popitem(last=False)
            return wait

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._records.pop(client, None)
