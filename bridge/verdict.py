"""The outcome of one look at a gateway's bridge (`se3-bridge status`): what
bridge.judge makes of an observation, and its JSON form for scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.observation import Event


@dataclass(frozen=True, slots=True)
class Devices:
    """Device records by effective status, judged as the bridge judges them."""

    online: int = 0
    offline: int = 0
    stale: int = 0  # of `offline`: said online, but ts + ttl has passed
    orphaned: int = 0  # of `offline`: said online, but their source's status is offline
    invalid: int = 0  # records the bridge refuses (it keeps an earlier valid one, if any)

    @property
    def total(self) -> int:
        return self.online + self.offline


@dataclass(frozen=True, slots=True)
class DevicesReport:
    """The sub-device report of a two-report release: where it goes, how often, and the
    last attempt to each target seen."""

    urls: list[str]
    url_source: str
    period: float
    period_source: str
    targets: dict[str, Event]

    def as_json(self) -> dict[str, Any]:
        return {"report_url": {"source": self.url_source, "urls": self.urls},
                "report_period": {"value": self.period, "source": self.period_source},
                "targets": self.targets}


@dataclass(frozen=True, slots=True)
class Status:
    """One look at the bridge of one gateway; `problems` empty means healthy (exit 0)."""

    gateway_sn: str
    broker: str
    bridge: str  # online | offline | unknown
    collectors: dict[str, str]
    gateway: dict[str, str] | None
    metrics_age: float | None
    metrics_stale: bool
    devices: Devices
    url_source: str  # config topic | login | config file | none
    urls: list[str]  # with a login: the targets seen, as the login's answer is not known here
    login_url: str | None
    targets: dict[str, Event]
    login: Event | None
    errors: list[Event]
    errors_seen: int
    waited: float
    now: float
    problems: list[str]
    notes: list[str]
    settings_known: bool = False  # the bridge published bridge/settings
    period: float = 0.0  # the report period in force (seconds)
    period_source: str = "config file"
    login_state: Event | None = None  # bridge/settings' login: state, at, error
    refused: list[Event] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # targets not seen yet, within a period
    release: str = ""  # the platform release, and its report formats ("V6R1C01: F7 + F8")
    missing: list[str] = field(default_factory=list)  # what its reports cannot fill
    devices_report: DevicesReport | None = None  # a two-report release's sub-device report

    @property
    def healthy(self) -> bool:
        return not self.problems and not self.pending

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 a problem, 3 nothing wrong seen but a delivery not seen yet."""
        if self.problems:
            return 1
        return 3 if self.pending else 0

    def as_json(self) -> dict[str, Any]:
        """The same as the text, for scripts: plain JSON types only."""
        return {
            "healthy": self.healthy,
            "problems": self.problems,
            "pending": self.pending,
            "notes": self.notes,
            "gateway_sn": self.gateway_sn,
            "broker": self.broker,
            "bridge": self.bridge,
            "collectors": self.collectors,
            "gateway": self.gateway,
            "metrics": None if self.metrics_age is None else {
                "age": round(self.metrics_age, 1), "stale": self.metrics_stale},
            "devices": {
                "total": self.devices.total, "online": self.devices.online,
                "offline": self.devices.offline, "stale": self.devices.stale,
                "orphaned": self.devices.orphaned, "invalid": self.devices.invalid,
            },
            "report_url": {"source": self.url_source, "urls": self.urls,
                           "login_url": self.login_url},
            "report_period": {"value": self.period, "source": self.period_source},
            "settings": {"published": self.settings_known, "login": self.login_state,
                         "refused": self.refused},
            "targets": self.targets,
            "login": self.login,
            "errors": {"seen": self.errors_seen, "last": self.errors},
            "release": self.release,
            "devices_report": (None if self.devices_report is None
                               else self.devices_report.as_json()),
            "missing": self.missing,
            "waited": round(self.waited, 1),
        }
