"""When to send a report (docs/protocol.md), as pure logic over a monotonic clock.

- Nothing goes out until the gateway is `ready` (its retained state replayed
  and its identity known): the first report is complete, not the first record.
- A change is reported at once when no report went out in the last
  `min_interval`, else at the end of it: a burst of changes becomes one report.
- Every `interval` seconds after the last report, a periodic one.
"""

from __future__ import annotations


class Schedule:
    def __init__(self, interval: float, min_interval: float) -> None:
        self.interval = interval
        self.min_interval = min_interval
        self.ready = False
        self._last: float | None = None
        self._change_due: float | None = None

    def mark_ready(self, now: float) -> None:
        """The first report is due now."""
        if not self.ready:
            self.ready = True
            self._change_due = now

    def changed(self, now: float) -> None:
        """Something the platform sees has changed."""
        if self._change_due is None:
            earliest = now if self._last is None else self._last + self.min_interval
            self._change_due = max(now, earliest)

    def next_due(self) -> float | None:
        """The monotonic time of the next report, or None while not ready."""
        if not self.ready:
            return None
        periodic = None if self._last is None else self._last + self.interval
        candidates = [t for t in (self._change_due, periodic) if t is not None]
        return min(candidates) if candidates else None

    def is_due(self, now: float) -> bool:
        due = self.next_due()
        return due is not None and due <= now

    def sent(self, now: float) -> None:
        """A report was handed to delivery at `now`."""
        self._last = now
        self._change_due = None
