"""The status reports of every release: built from records, serialised to bytes.

Pure functions, no I/O. Keys come in the order of the vendor's tables,
optional keys are left out rather than sent as null, floats are rounded as
the documents say, and devices come sorted by IP (numerically, IPv4 first), so
two reports of the same state are byte-identical.

The formats are those of bridge.releases (docs/payload.md has them key by key):
- F1, F2, F3: the flat reports of the SE3 releases; F2 is the seed, F1 its
  V2R1C01 release (no `temperature`), F3 adds `gateway_port`; F1-MQ is
  V2R1C01's MQ 7.3 variant: each device carries `ep_ext_data` (always, `{}`
  when empty), `ep_url` is not sent, `sw_version` is left out when empty;
- F4: nested metrics (bridge.nested), devices as F2;
- F5, F7: the gateway alone, nested (bridge.nested);
- F6, F8: the devices alone (bridge.media).

`build_gateway_report` builds the report with the gateway (and, for a
one-report release, its devices), `build_devices_report` the separate
sub-device report. A device's part of either is `device_json(fmt, dev_sno,
view)` and depends on nothing else, so it can be kept and reused while its
inputs stay the same (`device_body`, `splice`). `missing_fields` names what a
report had to leave out or fill with the vendor's "absent" value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import orjson

from bridge.addresses import ip_sort_key as ip_sort_key  # the report's device order
from bridge.media import entry_f6, entry_f8
from bridge.nested import ext_f4, ext_f5, ext_f7
from bridge.releases import CARRIES, ReportFormat
from bridge.reportparts import DeviceView as DeviceView
from bridge.reportparts import Gaps
from bridge.reportparts import Gateway as Gateway
from bridge.reportparts import Json as Json
from bridge.reportparts import ep_id as ep_id

# (key, decimals) in the seed's order; None: an int, sent as is.
_METRICS: tuple[tuple[str, int | None], ...] = (
    ("cpu_usage", 1),
    ("memory_size", 2),
    ("memory_usage", 2),
    ("disk_size", 2),
    ("disk_free_size", 2),
    ("temperature", None),
)
_F1_METRICS = _METRICS[:-1]  # V2R1C01's table has no temperature


def _flat_ext(gaps: Gaps, gateway: Gateway, metrics: tuple[tuple[str, int | None], ...],
              required: bool, keep_blank_sw: bool = True) -> Json:
    """The flat `gateway_ext_data`: the seed's keys, each left out when unknown.

    `required`: the release's table makes them required (F2, F3), so each one
    left out is named; the seed's own table (F1) makes them optional.
    """
    info, found = gateway.info, gateway.metrics
    ext: Json = {}
    if keep_blank_sw or info.sw_version:
        ext["sw_version"] = info.sw_version
    for key, value in (("sdk_version", info.sdk_version), ("gateway_mac", info.gateway_mac)):
        if value is not None:
            ext[key] = value
        elif required:
            gaps.names.append(f"gateway_ext_data.{key}")
    for key, decimals in metrics:
        value = None if found is None else getattr(found, key)
        if value is not None:
            ext[key] = value if decimals is None else round(value, decimals)
        elif required:
            gaps.names.append(f"gateway_ext_data.{key}")
    return ext


def _top(gateway: Gateway) -> Json:
    info = gateway.info
    return {
        "gateway_ip": info.gateway_ip,
        "gateway_name": info.gateway_name,
        "gateway_status": gateway.status,
        "gateway_sn": gateway.sn,
        "dev_sno": info.dev_sno,
    }


def _with_port(gaps: Gaps, gateway: Gateway, ext: Json) -> Json:
    out = _top(gateway)
    gaps.value(out, "gateway_port", gateway.port, "gateway_port")
    out["gateway_ext_data"] = ext
    return out


def _head_f1(gaps: Gaps, gateway: Gateway) -> Json:
    return {**_top(gateway), "gateway_ext_data": _flat_ext(gaps, gateway, _F1_METRICS, False)}


def _head_f1_mq(gaps: Gaps, gateway: Gateway) -> Json:
    ext = _flat_ext(gaps, gateway, _METRICS, False, keep_blank_sw=False)
    return {**_top(gateway), "gateway_ext_data": ext}


def _head_f2(gaps: Gaps, gateway: Gateway) -> Json:
    return {**_top(gateway), "gateway_ext_data": _flat_ext(gaps, gateway, _METRICS, True)}


def _head_f3(gaps: Gaps, gateway: Gateway) -> Json:
    return _with_port(gaps, gateway, _flat_ext(gaps, gateway, _METRICS, True))


def _head_f4(gaps: Gaps, gateway: Gateway) -> Json:
    return _with_port(gaps, gateway, ext_f4(gaps, gateway))


def _head_f5(gaps: Gaps, gateway: Gateway) -> Json:
    return _with_port(gaps, gateway, ext_f5(gaps, gateway))


def _head_f7(gaps: Gaps, gateway: Gateway) -> Json:
    info = gateway.info
    out: Json = {
        "gateway_ip": info.gateway_ip,
        "gateway_name": info.gateway_name,
        "gateway_status": gateway.status,
        "gateway_sn": gateway.sn,
    }
    gaps.text(out, "gateway_mac", info.gateway_mac, "gateway_mac")
    out["reporter_id"] = gateway.reporter_id or info.dev_sno
    out["gateway_ext_data"] = ext_f7(gaps, gateway)
    return out


_HEADS: dict[ReportFormat, Callable[[Gaps, Gateway], Json]] = {
    "F1": _head_f1, "F1-MQ": _head_f1_mq, "F2": _head_f2, "F3": _head_f3, "F4": _head_f4,
    "F5": _head_f5, "F7": _head_f7,
}


def _entry_seed(dev_sno: str, view: DeviceView) -> Json:
    """The keys every flat format's device starts with, in the tables' order."""
    record = view.record
    return {
        "ep_id": ep_id(dev_sno, view.ip),
        "ep_name": record.ep_name,
        "ep_ip": view.ip,
        "ep_status": view.status,
        # Optional in F1-MQ ("sent when known"), but every record carries one.
        "ep_location": record.ep_location,
        "ep_type": record.ep_type,
    }


def _entry_flat(dev_sno: str, view: DeviceView) -> Json:
    out = _entry_seed(dev_sno, view)
    if view.record.ep_url is not None:
        out["ep_url"] = view.record.ep_url
    return out


def _entry_f1_mq(dev_sno: str, view: DeviceView) -> Json:
    out = _entry_seed(dev_sno, view)
    ext: Json = {}
    extra = view.record.ep_ext_data
    if extra is not None:
        if extra.sw_version is not None:
            ext["sw_version"] = extra.sw_version
        if extra.group_name is not None:
            ext["group_name"] = extra.group_name
    out["ep_ext_data"] = ext
    return out


_ENTRIES: dict[ReportFormat, Callable[[str, DeviceView], Json]] = {
    "F1": _entry_flat, "F1-MQ": _entry_f1_mq, "F2": _entry_flat, "F3": _entry_flat,
    "F4": _entry_flat, "F6": entry_f6, "F8": entry_f8,
}
_FLAT_FIELDS = ("ep_type", "ep_location", "ep_name", "ep_url")
# The record fields each format shows of a device (with its status): a change of
# any other field sends no report.
DEVICE_FIELDS: dict[ReportFormat, tuple[str, ...]] = {
    "F1": _FLAT_FIELDS, "F2": _FLAT_FIELDS, "F3": _FLAT_FIELDS, "F4": _FLAT_FIELDS,
    "F1-MQ": ("ep_type", "ep_location", "ep_name", "ep_ext_data"),
    "F5": (), "F7": (),
    "F6": ("ep_type", "media_type", "ep_location", "ep_name"),
    "F8": ("ep_type", "media_type", "ep_name", "ep_url", "media_device_id", "permission_id"),
}
# The key of the device list and of the authorisation code, per format with devices.
_DEVICES_KEY: dict[ReportFormat, str] = {"F8": "media_devices"}
_CODE_KEY: dict[ReportFormat, str] = {"F6": "dev_sno", "F8": "mq_license_key"}


def devices_key(fmt: ReportFormat) -> str:
    """The key of the device list in format `fmt`."""
    return _DEVICES_KEY.get(fmt, "sub_devices")


def build_gateway_report(
    fmt: ReportFormat, gateway: Gateway, devices: Iterable[DeviceView] = (),
    gaps: Gaps | None = None,
) -> Json:
    """The report with the gateway in format `fmt` (F1-F5, F7), as an ordered dict.

    A one-report format (F1-F4) carries `devices`, which must already be in IP
    order; F5 and F7 carry none.
    """
    head = _HEADS[fmt](Gaps() if gaps is None else gaps, gateway)
    if CARRIES[fmt] == "both":
        entry, dev_sno = _ENTRIES[fmt], gateway.info.dev_sno
        head["sub_devices"] = [entry(dev_sno, view) for view in devices]
    return head


def build_devices_report(fmt: ReportFormat, dev_sno: str,
                         devices: Iterable[DeviceView] = ()) -> Json:
    """The separate sub-device report (F6, F8); `devices` in IP order."""
    entry = _ENTRIES[fmt]
    return {_CODE_KEY[fmt]: dev_sno, devices_key(fmt): [entry(dev_sno, v) for v in devices]}


def device_json(fmt: ReportFormat, dev_sno: str, view: DeviceView) -> Json:
    """One entry of the device list of format `fmt`, keys in the document's order."""
    return _ENTRIES[fmt](dev_sno, view)


def device_body(fmt: ReportFormat, dev_sno: str, view: DeviceView) -> bytes:
    """One entry of the device list serialised as `dumps` would within the report, with
    the comma that comes before it there (`splice` drops the first entry's)."""
    # A new bytes of its own size: orjson's result keeps the 4 KiB buffer it wrote into,
    # 16 times the entry, and this one is kept for as long as the device is unchanged.
    return b"," + orjson.dumps(_ENTRIES[fmt](dev_sno, view))


def splice(head: Json, bodies: list[bytes], key: str = "sub_devices") -> bytes:
    """`dumps` of `head` with the entries of `device_body` in its (empty) device list `key`.

    Byte for byte what `dumps` gives for the whole report: compact JSON, and
    the device list is the last key, so `head` ends in `[]}`. One copy of the
    entries: the report's largest cost at 10,000 devices after the status checks.
    """
    start = orjson.dumps(head)
    if not start.endswith(b'"' + key.encode() + b'":[]}'):
        raise ValueError(f"{key} must be the report's last key, and empty")
    if not bodies:
        return start
    parts = [start[:-2]]
    parts.extend(bodies)
    parts[1] = bodies[0][1:]
    parts.append(b"]}")
    return b"".join(parts)


def missing_fields(fmt: ReportFormat, gateway: Gateway | None,
                   devices: Iterable[DeviceView] = ()) -> list[str]:
    """The required fields of format `fmt` that had no value, as dotted names.

    Each was sent as "", as the document's "absent" value, or left out. A
    device field missing for some devices is named once with their count,
    e.g. "media_devices[].permission_id (3 of 10 devices)".
    """
    gaps = Gaps()
    if gateway is not None and fmt in _HEADS:
        _HEADS[fmt](gaps, gateway)
    if fmt == "F8":
        views = list(devices)
        lacking = sum(1 for v in views if v.record.permission_id is None)
        if lacking:
            gaps.names.append(f"media_devices[].permission_id ({lacking} of {len(views)} devices)")
    return gaps.names


def dumps(report: Json) -> bytes:
    """The POST body: compact UTF-8 JSON, non-ASCII left as it is."""
    return orjson.dumps(report)


def pretty(report: Json) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
