"""Wrong password guesses per client address, slowed without refusing the right password.

Up to `limit` failures within `window` seconds an address tries at will. Past
that its attempts (right or wrong) are taken one at a time, each no sooner than
`interval` seconds after the one before: a guesser gets `window / interval`
tries a window instead of thousands, while the admin behind the same address (an
SSH tunnel, a NAT) still gets in, a few seconds later. An attempt that would
wait more than `max_wait` is refused (429) with the time to come back: the
connection caps bound how many can queue.

A success does not clear the count: a script calling with the right password
every few seconds would otherwise give a guesser behind its address `limit` free
tries after each call. The count ends with the window.

One throttle serves every way in: the login form, the header credentials, the
box's login calls and the old password of a password change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

_MAX_CLIENTS = 10_000  # a flood of source addresses cannot grow the table without bound


class _Client:
    __slots__ = ("failures", "next_turn")

    def __init__(self, limit: int) -> None:
        self.failures: deque[float] = deque(maxlen=limit)
        self.next_turn = 0.0


class LoginThrottle:
    """Counts failed logins per client address and paces its attempts (thread-safe)."""

    def __init__(
        self, limit: int = 5, window: float = 60.0, interval: float = 3.0,
        max_wait: float = 30.0, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self.interval = interval
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}

    def wait(self, client: str) -> float:
        """Wait for `client`'s turn to try a password: 0 once it may (at once, unless
        its guesses are being slowed), else the seconds after which to come back."""
        with self._lock:
            now = self._clock()
            entry = self._clients.get(client)
            if entry is None or len(self._recent(entry, now)) < self.limit:
                return 0.0
            turn = max(now, entry.next_turn)
            if turn - now > self.max_wait:
                return turn - now
            entry.next_turn = turn + self.interval
        if turn > now:
            self._sleep(turn - now)
        return 0.0

    def failed(self, client: str) -> int:
        """Count a failure; returns the failures of `client` within the window."""
        with self._lock:
            now = self._clock()
            entry = self._clients.get(client)
            if entry is None:
                if len(self._clients) >= _MAX_CLIENTS:
                    self._prune(now)
                entry = self._clients[client] = _Client(self.limit)
            before = len(self._recent(entry, now))
            entry.failures.append(now)
            count = len(entry.failures)
        if before < self.limit == count:
            logger.warning("%d failed logins from %s within %g s: its attempts are taken one "
                           "every %g s from now on", count, client, self.window, self.interval)
        return count

    def _recent(self, entry: _Client, now: float) -> deque[float]:
        cutoff = now - self.window
        while entry.failures and entry.failures[0] <= cutoff:
            entry.failures.popleft()
        return entry.failures

    def _prune(self, now: float) -> None:
        for client, entry in list(self._clients.items()):
            if not self._recent(entry, now) and entry.next_turn <= now:
                del self._clients[client]
        if len(self._clients) >= _MAX_CLIENTS:  # all recent: forget the oldest
            oldest = min(self._clients, key=lambda c: self._clients[c].next_turn)
            del self._clients[oldest]
