"""What the reference platform remembers: the latest reports, logins, counters, timelines.

Everything here is shared by the server's request threads, so one lock guards
it; a condition lets tests wait for a report with a deadline instead of
sleeping. Received-at times are strictly increasing, so a client that polls
`since=<last received_at>` never misses a report that arrived in the same
clock tick as the previous one.

Timelines are kept apart from the reports, change by change, so they reach
further back than the `keep` latest reports: per gateway its `gateway_status`,
per device (by `ep_ip`) its `ep_status`, and `absent` when a report no longer
lists a device it listed before.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TIMELINE_KEEP = 100  # changes kept per gateway or device
TIMELINE_SUBJECTS = 50_000  # gateways and devices with a timeline, at most


@dataclass(frozen=True)
class Report:
    """One POST to /DeviceStatus as received, with its conformance verdict."""

    received_at: float
    violations: tuple[str, ...]
    payload: object
    report_id: str | None
    rejected: bool = False
    formats: tuple[str, ...] = ()  # the payload versions the body conforms to

    @property
    def gateway(self) -> str | None:
        """The body's gateway_sn, if it is an object with a text one."""
        sn = self.payload.get("gateway_sn") if isinstance(self.payload, dict) else None
        return sn if isinstance(sn, str) else None

    def device_statuses(self) -> dict[str, object]:
        """ep_status by ep_ip of the sub-devices the body lists (objects with a text ep_ip)."""
        devices = self.payload.get("sub_devices") if isinstance(self.payload, dict) else None
        if not isinstance(devices, list):
            return {}
        return {d["ep_ip"]: d.get("ep_status") for d in devices
                if isinstance(d, dict) and isinstance(d.get("ep_ip"), str)}

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
        # (gateway, device ip or "" for the gateway itself) -> its changes, oldest first
        self._timelines: dict[tuple[str, str], deque[dict[str, Any]]] = {}
        self._devices: dict[str, set[str]] = {}  # gateway -> device ips with a timeline

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
            self._note_changes(report)
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

    def reports(self, since: float | None = None, gateway: str | None = None,
                device: str | None = None) -> list[Report]:
        """The kept reports, oldest first; only those after `since`, of `gateway`, and
        listing the sub-device with ep_ip `device`, when given."""
        with self._changed:
            kept = [r for r in self._reports if since is None or r.received_at > since]
        if gateway is not None:
            kept = [r for r in kept if r.gateway == gateway]
        if device is not None:
            kept = [r for r in kept if device in r.device_statuses()]
        return kept

    def timeline(self, gateway: str, device: str | None = None) -> list[dict[str, Any]]:
        """The status changes of `gateway` (device None) or of its sub-device `device`,
        oldest first: {received_at, status, report_id}; at most TIMELINE_KEEP."""
        with self._changed:
            return list(self._timelines.get((gateway, device or ""), ()))

    def _note_changes(self, report: Report) -> None:
        gateway = report.gateway
        if gateway is None:
            return
        payload = report.payload if isinstance(report.payload, dict) else {}
        statuses: dict[str, object] = {"": payload.get("gateway_status")}
        statuses.update(report.device_statuses())
        known = self._devices.setdefault(gateway, set())
        for ip in known - statuses.keys():
            statuses[ip] = "absent"  # listed before, not any more
        for ip, status in statuses.items():
            key = (gateway, ip)
            changes = self._timelines.get(key)
            if changes is None:
                if len(self._timelines) >= TIMELINE_SUBJECTS:
                    continue  # bounded memory: later newcomers get no timeline
                changes = deque(maxlen=TIMELINE_KEEP)
                self._timelines[key] = changes
                if ip:
                    known.add(ip)
            shown = status if isinstance(status, str) else repr(status)
            if not changes or changes[-1]["status"] != shown:
                changes.append({"received_at": report.received_at, "status": shown,
                                "report_id": report.report_id})

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
