"""What the reference platform remembers: the latest reports, logins and counters.

Everything here is shared by the server's request threads, so one lock guards
it; a condition lets tests wait for a report with a deadline instead of
sleeping. Received-at times are strictly increasing, so a client that polls
`since=<last received_at>` never misses a report that arrived in the same
clock tick as the previous one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Report:
    """One POST to /DeviceStatus as received, with its conformance verdict."""

    received_at: float
    violations: tuple[str, ...]
    payload: object
    report_id: str | None
    rejected: bool = False
    formats: tuple[str, ...] = ()  # the payload versions the body conforms to

    def as_json(self) -> dict[str, Any]:
        """The shape of /api/reports: received_at, violations, payload (+ extras)."""
        return {
            "received_at": self.received_at,
            "violations": list(self.violations),
            "payload": self.payload,
            "headers": {"X-Report-Id": self.report_id},
            "report_id": self.report_id,
            "rejected": self.rejected,
            "formats": list(self.formats),
        }


@dataclass
class Stats:
    """Counts of POSTs: checked and kept, refused in strict mode, failed on purpose."""

    received: int = 0
    rejected: int = 0
    faulted: int = 0
    nonconforming: int = 0


@dataclass
class ReportStore:
    """The latest `keep` reports and logins, oldest first, and the counters."""

    keep: int = 200
    clock: Callable[[], float] = time.time
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        if self.keep < 1:
            raise ValueError("keep must be at least 1")
        self._reports: deque[Report] = deque(maxlen=self.keep)
        self._logins: deque[dict[str, Any]] = deque(maxlen=self.keep)
        self._changed = threading.Condition()
        self._last = 0.0

    def add(
        self,
        payload: object,
        violations: list[str],
        report_id: str | None,
        rejected: bool = False,
        formats: tuple[str, ...] = (),
    ) -> Report:
        """Keep one checked report and count it."""
        with self._changed:
            self._last = max(self.clock(), self._last + 1e-6)
            report = Report(self._last, tuple(violations), payload, report_id, rejected, formats)
            self._reports.append(report)
            self.stats.received += 1
            self.stats.rejected += rejected
            self.stats.nonconforming += bool(violations)
            self._changed.notify_all()
        return report

    def count_fault(self) -> None:
        """Count one POST that was answered by an injected fault."""
        with self._changed:
            self.stats.faulted += 1
            self._changed.notify_all()

    def add_login(self, login: dict[str, Any]) -> None:
        """Remember one login request (never its token)."""
        with self._changed:
            self._logins.append({"at": self.clock(), **login})
            self._changed.notify_all()

    def reports(self, since: float | None = None) -> list[Report]:
        """The kept reports, oldest first; only those after `since` if given."""
        with self._changed:
            return [r for r in self._reports if since is None or r.received_at > since]

    def logins(self) -> list[dict[str, Any]]:
        """The kept login requests, oldest first."""
        with self._changed:
            return list(self._logins)

    def stats_json(self) -> dict[str, int]:
        """A consistent copy of the counters."""
        with self._changed:
            return dict(vars(self.stats))

    def wait_for(self, predicate: Callable[[Report], bool], timeout: float) -> Report | None:
        """Block until a kept report satisfies `predicate`; the newest such, or None."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [r for r in self._reports if predicate(r)]
                if found:
                    return found[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
