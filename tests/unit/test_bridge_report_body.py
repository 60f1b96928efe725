"""Tests for GatewayState.report_body: the report serialised from each device's kept entry.

The body must be byte for byte `dumps(report(...))` whatever happened since the
last one: a record changed, a status flipped by expiry or by its publisher's
will, a device came or went, the gateway's dev_sno or the report format
changed. The same holds for the separate sub-device report of the two-report
releases (`devices_body`), and for the gateway report beside it.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bridge.releases import ReportFormat
from bridge.report import devices_key, dumps
from bridge.state import GatewayState
from bridge.topics import Topics, parse
from tests.fakes import FakeClock

PREFIX, SN = "se3", "SZCCKQRAIJBAH0002"
TOPICS = Topics(PREFIX, SN)
LOCATION = "95274d2c-0941-4d96-b032-ab200f81362c"


def info(dev_sno: str = "ZKZCPI000120190807142601") -> bytes:
    return orjson.dumps({"gateway_ip": "192.168.1.251", "gateway_name": "gw", "dev_sno": dev_sno,
                         "sw_version": "V2R1C01"})


def device(**changes: Any) -> bytes:
    record = {"ep_status": "online", "ep_type": "2", "ep_location": LOCATION,
              "ep_url": "rtsp://x/ch2", "source": "devices", **changes}
    return orjson.dumps(record)


# (gateway report, separate sub-device report) of each release family.
Formats = tuple[ReportFormat, ReportFormat | None]
FORMATS: list[Formats] = [
    ("F1", None), ("F1-MQ", None), ("F2", None), ("F3", None), ("F4", None),
    ("F5", "F6"), ("F7", "F8"),
]


class Rig:
    def __init__(self, fmt: Formats = ("F2", None)) -> None:
        self.clock = FakeClock()
        self.state = GatewayState(SN, fmt=fmt[0], devices_fmt=fmt[1])
        self.send(TOPICS.gateway_info, info())
        for i in range(1, 6):
            self.send(TOPICS.device_state(f"10.0.0.{i}"), device(ep_name=f"cam{i}"))
        self.send(TOPICS.device_state("10.0.0.6"), device(ttl=5.0))

    def send(self, topic: str, payload: bytes) -> None:
        self.state.apply(parse(topic, PREFIX), payload, self.clock)

    def check(self, gateway_status: str = "online") -> bytes:
        """Each body equals dumps() of its report, and the counts match the devices;
        returns the body that carries the devices."""
        built = self.state.report_body(self.clock, gateway_status)
        report = self.state.report(self.clock, gateway_status)
        assert built is not None
        assert report is not None
        body, online, count = built
        assert body == dumps(report)
        fmt = self.state.devices_fmt
        if fmt is not None:
            assert (online, count) == (0, 0)  # the box's report carries no device
            built = self.state.devices_body(self.clock)
            report = self.state.devices_report(self.clock)
            assert built is not None
            assert report is not None
            body, online, count = built
            assert body == dumps(report)
        devices = report[devices_key(self.state.device_format)]
        statuses = [d.get("ep_status", d.get("media_device_status")) for d in devices]
        assert count == len(devices)
        assert online == statuses.count("online")
        return body


@pytest.mark.parametrize("fmt", FORMATS)
class TestReportBody:
    def test_same_bytes_as_the_whole_report_serialised(self, fmt: Formats) -> None:
        rig = Rig(fmt)
        assert rig.check() == rig.check()
        rig.check("offline")

    def test_a_changed_record_shows_in_the_next_body(self, fmt: Formats) -> None:
        rig = Rig(fmt)
        rig.check()
        rig.send(TOPICS.device_state("10.0.0.2"), device(ep_name="renamed"))
        assert b'"renamed"' in rig.check()

    def test_status_flips_by_expiry_and_by_the_publisher_show(self, fmt: Formats) -> None:
        rig = Rig(fmt)
        rig.check()
        rig.clock.advance(10)  # 10.0.0.6's ttl passes
        rig.state.expire(rig.clock)
        rig.check()
        rig.send(TOPICS.collector_status("devices"), b"offline")
        key = devices_key(rig.state.device_format).encode()
        assert b'"online"' not in rig.check().split(key)[1]
        rig.send(TOPICS.collector_status("devices"), b"online")
        rig.check()

    def test_devices_come_and_go(self, fmt: Formats) -> None:
        rig = Rig(fmt)
        rig.check()
        rig.send(TOPICS.device_state("10.0.0.3"), b"")
        rig.send(TOPICS.device_state("10.0.0.10"), device())
        rig.send(TOPICS.device_state("9.0.0.1"), device())
        rig.check()

    def test_a_new_dev_sno_renews_every_entry(self, fmt: Formats) -> None:
        rig = Rig(fmt)
        rig.check()
        rig.send(TOPICS.gateway_info, info(dev_sno="OTHER0001"))
        assert b"ZKZCPI" not in rig.check()

    def test_an_unchanged_replay_keeps_the_entry(self, fmt: Formats) -> None:
        """The same bytes again (a replay) keep the serialised entry: nothing is redone."""
        rig = Rig(fmt)
        rig.check()
        slot = rig.state.devices["10.0.0.1"]
        rig.state.apply(parse(TOPICS.device_state("10.0.0.1"), PREFIX), slot.raw, rig.clock, True)
        assert rig.state.devices["10.0.0.1"].body is slot.body is not None
        rig.check()


def test_the_format_changing_renews_every_entry() -> None:
    """A release switched (set_formats) renews every kept entry, to the new format's."""
    rig = Rig(("F2", None))
    rig.check()
    rig.state.set_formats("F1-MQ")
    assert b"ep_ext_data" in rig.check()
    rig.state.set_formats("F7", "F8")
    assert b"media_device_id" in rig.check()



def test_a_kept_entry_takes_its_own_size() -> None:
    """orjson's result keeps its 4 KiB write buffer; a kept entry must not (10,000 devices:
    40 MB against 2.5 MB)."""
    import tracemalloc

    from bridge.records import DeviceState, parse_as
    from bridge.report import DeviceView, device_body

    view = DeviceView("10.0.0.1", parse_as(DeviceState, device()), "online")
    tracemalloc.start()
    try:
        kept = [device_body("F2", "ZKZCPI0001", view) for _ in range(100)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 100 * (len(kept[0]) + 256)
