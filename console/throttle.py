"""Failed logins per client: after `limit` failures within `window` seconds, refuse for a while."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

_MAX_CLIENTS = 10_000  # a flood of source addresses cannot grow the table without bound


class LoginThrottle:
    """Counts failed logins per client address (thread-safe; takes a monotonic clock)."""

    def __init__(
        self, limit: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def wait(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may try now."""
        with self._lock:
            times = self._recent(client)
            if len(times) < self.limit:
                return 0.0
            return max(0.0, times[0] + self.window - self._clock())

    def failed(self, client: str) -> int:
        """Count a failure; returns the failures of `client` within the window."""
        with self._lock:
            if client not in self._failures and len(self._failures) >= _MAX_CLIENTS:
                self._prune()
            times = self._failures.setdefault(client, deque(maxlen=self.limit))
            times.append(self._clock())
            return len(self._recent(client))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        times = self._failures.get(client, deque())
        cutoff = self._clock() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def _prune(self) -> None:
        for client in list(self._failures):
            if not self._recent(client):
                del self._failures[client]
        if len(self._failures) >= _MAX_CLIENTS:  # all recent: forget the oldest
            oldest = min(self._failures, key=lambda c: self._failures[c][-1])
            del self._failures[oldest]
