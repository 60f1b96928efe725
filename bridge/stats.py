"""Counters of what the bridge did, for the metrics endpoint and `bridge/status` readers.

Written by the main loop and the delivery threads, read by the metrics
exporter; one lock keeps the reads consistent.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Snapshot:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    # by (report, target): the gateway's report and, in two-report releases, the devices'
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_success: dict[tuple[str, str], float] = field(default_factory=dict)
    devices_online: int = 0
    devices_offline: int = 0


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = Snapshot()
        # (report, target) of the targets in force; None: every target counts
        self._targets: frozenset[tuple[str, str]] | None = None

    def targets(self, keys: Iterable[tuple[str, str]]) -> None:
        """The targets in force, as (report, target): the counts of any other are
        forgotten, and a late attempt of a removed target (its POST was in flight)
        is not counted."""
        with self._lock:
            self._targets = frozenset(keys)
            d = self._data
            for counts in (d.sent, d.failed, d.last_success):
                for gone in [key for key in counts if key not in self._targets]:
                    del counts[gone]

    def accepted(self, n: int = 1) -> None:
        # Once per message, from the main loop only (the one writer of this
        # count): no lock; `snapshot` copies it under the lock as it stands.
        self._data.accepted += n

    def rejected(self, code: str) -> None:
        with self._lock:
            self._data.rejected[code] += 1

    def attempt(self, target: str, ok: bool, when: float, report: str = "gateway") -> None:
        """One delivery attempt of `report` (gateway or devices) to `target`."""
        key = (report, target)
        with self._lock:
            if self._targets is not None and key not in self._targets:
                return
            if ok:
                self._data.sent[key] += 1
                self._data.last_success[key] = when
            else:
                self._data.failed[key] += 1

    def devices(self, online: int, offline: int) -> None:
        with self._lock:
            self._data.devices_online, self._data.devices_offline = online, offline

    def snapshot(self) -> Snapshot:
        with self._lock:
            d = self._data
            return Snapshot(
                d.accepted, Counter(d.rejected), Counter(d.sent), Counter(d.failed),
                dict(d.last_success), d.devices_online, d.devices_offline,
            )
