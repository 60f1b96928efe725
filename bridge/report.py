"""The status report: built from records, serialised to bytes, in either payload version.

Pure functions, no I/O. Keys come in the order of the platform document's
tables, optional keys are left out rather than sent as null, floats are rounded
as the document says, and devices come sorted by IP (numerically, IPv4 first),
so two reports of the same state are byte-identical.

Two payload versions (`platform.format`, see docs/payload.md):
- "v1": the seed release of the vendor's "设备状态上报内容" document;
- "v2": its V2R1C01 release (sophonai/bm1682): every device carries
  `ep_ext_data` (always, `{}` when empty), `ep_url` is not sent, and the
  gateway's `sw_version` is left out when empty.
A device's part of the report is `device_json(dev_sno, view, fmt)` and depends on
nothing else, so it can be kept and reused while its inputs stay the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import orjson

from bridge.addresses import ip_sort_key as ip_sort_key  # the report's device order
from bridge.records import DeviceState, GatewayInfo, GatewayMetrics
from bridge.releases import ReportFormat

Json = dict[str, Any]
Format = Literal["v1", "v2"]
FORMATS: tuple[Format, ...] = get_args(Format)
# The release formats (bridge.releases) this module builds, by the payload version.
BUILT: dict[ReportFormat, Format] = {"F2": "v1", "F1-MQ": "v2"}

# (key, decimals) in contract order; None: an int, sent as is.
_METRICS: tuple[tuple[str, int | None], ...] = (
    ("cpu_usage", 1),
    ("memory_size", 2),
    ("memory_usage", 2),
    ("disk_size", 2),
    ("disk_free_size", 2),
    ("temperature", None),
)


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One sub-device as the report shows it: its record and its effective status."""

    ip: str
    record: DeviceState
    status: str


def ep_id(dev_sno: str, ip: str) -> str:
    return f"{dev_sno}__{ip}"


def build(
    sn: str,
    info: GatewayInfo,
    metrics: GatewayMetrics | None,
    devices: Iterable[DeviceView],
    gateway_status: str = "online",
    fmt: Format = "v1",
) -> Json:
    """The report as an ordered dict; `devices` must already be in IP order."""
    ext: Json = {}
    if fmt == "v1" or info.sw_version:  # v2 makes it optional: "" is unknown there
        ext["sw_version"] = info.sw_version
    if info.sdk_version is not None:
        ext["sdk_version"] = info.sdk_version
    if info.gateway_mac is not None:
        ext["gateway_mac"] = info.gateway_mac
    if metrics is not None:
        for key, decimals in _METRICS:
            value = getattr(metrics, key)
            if value is not None:
                ext[key] = value if decimals is None else round(value, decimals)
    return {
        "gateway_ip": info.gateway_ip,
        "gateway_name": info.gateway_name,
        "gateway_status": gateway_status,
        "gateway_sn": sn,
        "dev_sno": info.dev_sno,
        "gateway_ext_data": ext,
        "sub_devices": [device_json(info.dev_sno, view, fmt) for view in devices],
    }


def device_json(dev_sno: str, view: DeviceView, fmt: Format = "v1") -> Json:
    """One entry of `sub_devices` in payload version `fmt`, keys in the document's order."""
    record = view.record
    out: Json = {
        "ep_id": ep_id(dev_sno, view.ip),
        "ep_name": record.ep_name,
        "ep_ip": view.ip,
        "ep_status": view.status,
        # Optional in v2 ("sent when known"), but every record carries one.
        "ep_location": record.ep_location,
        "ep_type": record.ep_type,
    }
    if fmt == "v1":
        if record.ep_url is not None:
            out["ep_url"] = record.ep_url
        return out
    ext: Json = {}
    extra = record.ep_ext_data
    if extra is not None:
        if extra.sw_version is not None:
            ext["sw_version"] = extra.sw_version
        if extra.group_name is not None:
            ext["group_name"] = extra.group_name
    out["ep_ext_data"] = ext
    return out


def device_body(dev_sno: str, view: DeviceView, fmt: Format = "v1") -> bytes:
    """One entry of `sub_devices`, serialised as `dumps` would within the report."""
    # Copied to its own size: orjson's result keeps the 4 KiB buffer it wrote into,
    # 16 times the entry, and this one is kept for as long as the device is unchanged.
    return memoryview(orjson.dumps(device_json(dev_sno, view, fmt))).tobytes()


def splice(head: Json, bodies: list[bytes]) -> bytes:
    """`dumps` of `head` with the serialised entries in its (empty) `sub_devices`.

    Byte for byte what `dumps` gives for the whole report: compact JSON, and
    `sub_devices` is the last key, so `head` ends in `[]}`.
    """
    start = orjson.dumps(head)
    if not start.endswith(b'"sub_devices":[]}'):
        raise ValueError("sub_devices must be the report's last key, and empty")
    return b"".join((start[:-2], b",".join(bodies), b"]}"))


def dumps(report: Json) -> bytes:
    """The POST body: compact UTF-8 JSON, non-ASCII left as it is."""
    return orjson.dumps(report)


def pretty(report: Json) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
