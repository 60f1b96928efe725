"""What the reports of the release in force cannot fill, judged from the retained records.

`se3-bridge status` and the console read the broker, not the bridge's memory:
this takes the records as they hold them (raw bytes, as retained) and names the
required fields the release's report(s) would send as "", as the vendor's
"absent" value, or not at all (bridge.report.missing_fields). A record that
does not parse counts as absent, as the bridge refuses it too.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.errors import RecordError
from bridge.records import DeviceState, GatewayHardware, GatewayInfo, GatewayMetrics, R, parse_as
from bridge.releases import release
from bridge.report import DeviceView, Gateway, missing_fields


def _parsed(model: type[R], raw: bytes | None, key: str = "") -> R | None:
    if not raw:
        return None
    try:
        return parse_as(model, raw, key, max_size=max(len(raw), 1))
    except RecordError:
        return None


def missing_from_records(
    release_name: str, fmt: str, sn: str, *, info: bytes | None, metrics: bytes | None,
    hardware: bytes | None, devices: Mapping[str, bytes], port: int | None,
    reporter_id: str = "",
) -> list[str]:
    """The dotted names of what release `release_name` under `[platform] format = fmt`
    (its own report where it offers no such variant) would miss;
    ["gateway/info"] while the gateway's identity is unknown (no report is sent)."""
    found = release(release_name)
    parsed_info = _parsed(GatewayInfo, info)
    if parsed_info is None:
        return ["gateway/info"]
    gateway = Gateway(sn, parsed_info, _parsed(GatewayMetrics, metrics),
                      _parsed(GatewayHardware, hardware), "online", port, reporter_id)
    # Only F8 asks of its devices what a record may not give (permission_id).
    views = [DeviceView(ip, record, record.ep_status) for ip, raw in sorted(devices.items())
             if (record := _parsed(DeviceState, raw, ip)) is not None] \
        if "F8" in found.reports else []
    sent = found.sent_under(fmt)
    names = missing_fields(sent[0], gateway, views)
    for devices_fmt in sent[1:]:
        names += missing_fields(devices_fmt, None, views)
    return names
