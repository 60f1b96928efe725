"""Each release family end to end: records through a real mosquitto and the bridge,
configured for that release, to a real platform of the same release, as its tables say.

The records are those of the golden reports (tests/unit/test_bridge_formats.py):
a box that measures what the vendor's example shows, with its hardware record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.records import fields_of
from bridge.releases import ReportFormat
from demo.broker import Broker
from receiver.app import create_app
from receiver.releases import MONITOR_PATH, V5R7_DEVICES_PATH, V6_DEVICES_PATH
from receiver.server import ReceiverServer
from tests.integration.stack import SN, publish, running_bridge, wait_report, write_config
from tests.unit.test_bridge_formats import (
    AS_RECEIVER,
    DEVICE,
    EXPECTED,
    HARDWARE,
    INFO,
    MEDIA_DEVICE,
    METRICS,
)


def dumped(record: Any) -> dict[str, Any]:
    return fields_of(record)


@pytest.mark.parametrize(("release", "fmt", "sent"), [
    ("V2R1C01", "v1", "F1"),
    ("V5R6C01", "port", "F3"),
    ("V2R6C01", "v1", "F4"),
])
def test_release_sends_its_report(tmp_path: Path, broker: Broker, release: str, fmt: str,
                                  sent: ReportFormat) -> None:
    """The bridge sends exactly the release's report: its table's keys, in order, with the
    measured values, `gateway_port` from [gateway] port; the reference platform of the
    same release, strict, finds no violation."""
    platform = ReceiverServer(create_app(strict=True, release_name=release,
                                         fmt=AS_RECEIVER[sent])).start()
    try:
        report = _run(tmp_path, broker, platform, release, fmt)
    finally:
        platform.stop()

    expected = {**EXPECTED[sent], "gateway_sn": SN}
    assert report.payload == expected
    assert str(report.payload) == str(expected)  # the same keys in the same order
    assert (report.violations, report.rejected) == ((), False)


def _run(tmp_path: Path, broker: Broker, platform: ReceiverServer, release: str,
         fmt: str) -> Any:
    config = write_config(tmp_path / "bridge.toml", broker, f"{platform.url}/DeviceStatus",
                          release=release, format=fmt)
    text = config.read_text(encoding="utf-8").replace("[gateway]\n", "[gateway]\nport = 80\n")
    config.write_text(text, encoding="utf-8")
    publish(broker, "collector", {
        "gateway/info": dumped(INFO),
        "gateway/metrics": dumped(METRICS),
        "gateway/hardware": dumped(HARDWARE),
        f"devices/{DEVICE.ip}/state": dumped(DEVICE.record),
    })
    with running_bridge(config, broker, tmp_path / "bridge.log"):
        return wait_report(platform, lambda r: True)


@pytest.mark.parametrize(("release", "gateway", "devices", "devices_path"), [
    ("V5R7C01", "F5", "F6", V5R7_DEVICES_PATH),
    ("V6R1C01", "F7", "F8", V6_DEVICES_PATH),
])
def test_two_report_release_sends_both(tmp_path: Path, broker: Broker, release: str,
                                       gateway: ReportFormat, devices: ReportFormat,
                                       devices_path: str) -> None:
    """V5R7C01 and V6: the box's report and the sub-devices' report, each to its own URL,
    each exactly its table's, and neither with a violation by the strict platform."""
    platform = ReceiverServer(create_app(strict=True, release_name=release)).start()
    try:
        config = write_config(tmp_path / "bridge.toml", broker, f"{platform.url}{MONITOR_PATH}",
                              release=release,
                              devices_report_url=[f"{platform.url}{devices_path}"])
        text = config.read_text(encoding="utf-8").replace("[gateway]\n", "[gateway]\nport = 80\n")
        config.write_text(text, encoding="utf-8")
        shown = MEDIA_DEVICE if devices == "F8" else DEVICE
        publish(broker, "collector", {
            "gateway/info": dumped(INFO),
            "gateway/metrics": dumped(METRICS),
            "gateway/hardware": dumped(HARDWARE),
            f"devices/{shown.ip}/state": dumped(shown.record),
        })
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            box = wait_report(platform, lambda r: r.path == MONITOR_PATH)
            subs = wait_report(platform, lambda r: r.path == devices_path)
    finally:
        platform.stop()

    expected_box = {**EXPECTED[gateway]}
    if "gateway_sn" in expected_box:
        expected_box["gateway_sn"] = SN
    assert str(box.payload) == str(expected_box)  # the same keys in the same order
    assert str(subs.payload) == str(EXPECTED[devices])
    assert (box.violations, subs.violations, box.rejected, subs.rejected) == ((), (), False, False)
