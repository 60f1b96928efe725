"""The status report of CONTRACT section 1: built from records, serialised to bytes.

Pure functions, no I/O. Keys come in the order of the contract's tables,
optional keys are left out rather than sent as null, floats are rounded as the
contract says, and devices come sorted by IP (numerically, IPv4 first), so two
reports of the same state are byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.addresses import ip_sort_key as ip_sort_key  # the report's device order
from bridge.records import DeviceState, GatewayInfo, GatewayMetrics

Json = dict[str, Any]

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
) -> Json:
    """The report as an ordered dict; `devices` must already be in IP order."""
    ext: Json = {"sw_version": info.sw_version}
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
        "sub_devices": [_device(info.dev_sno, view) for view in devices],
    }


def _device(dev_sno: str, view: DeviceView) -> Json:
    record = view.record
    out: Json = {
        "ep_id": ep_id(dev_sno, view.ip),
        "ep_name": record.ep_name,
        "ep_ip": view.ip,
        "ep_status": view.status,
        "ep_location": record.ep_location,
        "ep_type": record.ep_type,
    }
    if record.ep_url is not None:
        out["ep_url"] = record.ep_url
    return out


def dumps(report: Json) -> bytes:
    """The POST body: compact UTF-8 JSON, non-ASCII left as it is."""
    return orjson.dumps(report)


def pretty(report: Json) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
