"""What every report format is built from, and the record of what it had to leave out.

`Gateway` is the gateway's side of a report (its records and the settings a
report names it by), `DeviceView` one sub-device as a report shows it. `Gaps`
collects the required fields a report had no measured value for, under the
one rule of every format: a string becomes "", a value the vendor's document
gives an "absent" form for takes it, anything else is left out, and each is
named (`bridge.report.missing_fields`, shown by `status` and the console).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.records import DeviceState, GatewayHardware, GatewayInfo, GatewayMetrics

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One sub-device as the report shows it: its record and its effective status."""

    ip: str
    record: DeviceState
    status: str


@dataclass(frozen=True, slots=True)
class Gateway:
    """The gateway's side of a report: its records, status and report settings."""

    sn: str
    info: GatewayInfo
    metrics: GatewayMetrics | None = None
    hardware: GatewayHardware | None = None
    status: str = "online"
    port: int | None = None  # `gateway_port`: the port of the box's application
    reporter_id: str = ""  # F7's `reporter_id`; "" means dev_sno


def ep_id(dev_sno: str, ip: str) -> str:
    return f"{dev_sno}__{ip}"


@dataclass(slots=True)
class Gaps:
    """The dotted names of required fields a report filled without a measured value."""

    names: list[str] = field(default_factory=list)

    def text(self, out: Json, key: str, value: str | None, path: str) -> None:
        """`out[key]` = value, or "" (and named) when unknown."""
        if value is None:
            self.names.append(path)
            value = ""
        out[key] = value

    def value(self, out: Json, key: str, value: object, path: str) -> None:
        """`out[key]` = value, or left out (and named) when unknown."""
        if value is None:
            self.names.append(path)
        else:
            out[key] = value

    def absent(self, out: Json, key: str, value: object, absent: object, path: str) -> None:
        """`out[key]` = value, or the document's own `absent` value (and named)."""
        if value is None:
            self.names.append(path)
            value = absent
        out[key] = value
