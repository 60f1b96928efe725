"""What the reference platform remembers: the latest reports, logins, counters, timelines.

Everything here is shared by the server's request threads, so one lock guards
it; a condition lets tests wait for a report with a deadline instead of
sleeping. Received-at times are strictly increasing, so a client that polls
`since=<last received_at>` never misses a report that arrived in the same
clock tick as the previous one.

Timelines are kept apart from the reports, change by change, so they reach
further back than the `keep` latest reports: per gateway its `gateway_status`,
per device (by its address, `ep_ip` or `media_device_ip`) its status, and
`absent` when a report no longer lists a device it listed before. A report that
carries devices alone (V5R7C01's and V6's second report) is kept under the code
it names the box by (`dev_sno`, `mq_license_key`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from receiver.tables import FORMATS, Format
from receiver.view import devices_of, identity, view

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
    formats: tuple[str, ...] = ()  # the formats (of those the route offers) the body matches
    format: str = "v1"  # the format it was checked against
    unmeasured: tuple[str, ...] = ()  # the measured values it leaves out
    path: str = "/DeviceStatus"  # where it was posted

    @property
    def table(self) -> Format:
        """The table of the format it was checked against."""
        return FORMATS[self.format]  # type: ignore[index]

    @property
    def gateway(self) -> str | None:
        """What the body names its box by (gateway_sn; dev_sno or mq_license_key in a report
        of devices alone), if it is an object with a text one."""
        return identity(self.table, self.payload)

    def device_statuses(self) -> dict[str, object]:
        """Status by address of the devices the body lists (objects with a text address)."""
        devices = self.table.devices
        if devices is None:
            return {}
        return {d[devices.ip]: d.get(devices.status) for d in devices_of(self.table, self.payload)
                if isinstance(d, dict) and isinstance(d.get(devices.ip), str)}

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
            "format": self.format,
            "path": self.path,
            "unmeasured": list(self.unmeasured),
            "view": view(self.table, self.payload),
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
        *,
        fmt: str = "v1",
        unmeasured: tuple[str, ...] = (),
        path: str = "/DeviceStatus",
    ) -> Report:
        """Keep one checked report and count it."""
        with self._changed:
            self._last = max(self.clock(), self._last + 1e-6)
            report = Report(self._last, tuple(violations), payload, report_id, rejected, formats,
                            fmt, unmeasured, path)
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
        statuses: dict[str, object] = {}
        if report.table.carries != "devices":
            statuses[""] = payload.get("gateway_status")
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
