"""The platform releases the reference platform can play: data, one entry per release.

A release (`se3-receiver --release`) picks the login variant the platform
answers in (L0-L4, the vendor's "管理平台系统登录接口" as each release printed
it) and the report(s) it receives: where (the paths of the vendor's examples)
and in which format (`receiver.tables`). The first format of a route is the
one a report is checked against; the others are the release's variants, which
the page says a report matches and `--format` may check instead.

This table is the receiver's own reading of the vendor's documents, kept apart
from the bridge's on purpose: the reference platform is a second opinion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from receiver.tables import FormatName

LoginName = Literal["L0", "L1", "L2", "L3", "L4"]
RouteKind = Literal["gateway", "devices"]

# The sample receiver the vendor ships with the box listens at /DeviceStatus; the
# platform's login examples issue /box/monitor/status/report for the box's report,
# V6's /box/media/monitor/status/report for the media devices', and V5R7C01's
# configuration example sets WEB_HEART_URL to /box/monitor/device/status/report.
SAMPLE_PATH = "/DeviceStatus"
MONITOR_PATH = "/box/monitor/status/report"
V5R7_DEVICES_PATH = "/box/monitor/device/status/report"
V6_DEVICES_PATH = "/box/media/monitor/status/report"


@dataclass(frozen=True)
class Route:
    """One report of a release: what it carries, its paths, its format(s)."""

    kind: RouteKind  # "gateway": the box's report (with its devices where it has them)
    paths: tuple[str, ...]  # the first is the one the login issues
    formats: tuple[FormatName, ...]  # the first is checked; the rest are variants


@dataclass(frozen=True)
class Release:
    """One release: its login variant and its report(s)."""

    name: str
    login: LoginName
    gateway: Route
    devices: Route | None = None  # the separate sub-device report of two-report releases

    @property
    def routes(self) -> tuple[Route, ...]:
        return (self.gateway,) if self.devices is None else (self.gateway, self.devices)


_ONE = (SAMPLE_PATH, MONITOR_PATH)
_SEED = Route("gateway", _ONE, ("v1", "F2", "v2"))
_PORT = Route("gateway", _ONE, ("F4", "F3"))
_TWO = (MONITOR_PATH, SAMPLE_PATH)

RELEASES: dict[str, Release] = {r.name: r for r in (
    Release("V2R1C01", "L0", Route("gateway", _ONE, ("F1", "v2"))),
    Release("V2R2C01", "L1", _SEED),
    Release("V2R3C01", "L2", _SEED),
    Release("V2R4C01", "L2", _SEED),
    Release("V2R6C01", "L3", _PORT),
    Release("V5R2C01", "L3", _SEED),
    Release("V5R3C01", "L3", _SEED),
    Release("V5R4C01", "L3", _SEED),
    Release("V5R5C01", "L3", _SEED),
    Release("V5R6C01", "L3", _PORT),
    Release("V5R7C01", "L3", Route("gateway", _TWO, ("F5",)),
            Route("devices", (V5R7_DEVICES_PATH,), ("F6",))),
    Release("V6R1C01", "L4", Route("gateway", _TWO, ("F7",)),
            Route("devices", (V6_DEVICES_PATH,), ("F8",))),
    Release("V6R2C01", "L4", Route("gateway", _TWO, ("F7",)),
            Route("devices", (V6_DEVICES_PATH,), ("F8",))),
)}
RELEASE_NAMES = tuple(RELEASES)
DEFAULT_RELEASE = "V2R2C01"  # the seed


def release(name: str) -> Release:
    """The release called `name`; ValueError naming the known ones otherwise."""
    found = RELEASES.get(name)
    if found is None:
        raise ValueError(f"unknown release {name!r}; known: {', '.join(RELEASES)}")
    return found


def checked(rel: Release, fmt: FormatName | None) -> Release:
    """`rel` with its gateway report checked against `fmt` (one of its variants) first;
    ValueError if the release has no such variant."""
    if fmt is None or fmt == rel.gateway.formats[0]:
        return rel
    if fmt not in rel.gateway.formats:
        offered = ", ".join(rel.gateway.formats)
        raise ValueError(f"release {rel.name} reports in {offered}, not {fmt}")
    others = tuple(f for f in rel.gateway.formats if f != fmt)
    gateway = Route("gateway", rel.gateway.paths, (fmt, *others))
    return Release(rel.name, rel.login, gateway, rel.devices)
