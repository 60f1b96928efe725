"""Bounds against a hostile publisher: the report body cap and the topic-parse cache."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from bridge.config import parse_config
from bridge.errors import RecordError
from bridge.login import LoginRequest
from bridge.report import dumps
from bridge.service import Bridge
from bridge.state import GatewayState
from bridge.topics import Topics, parse
from tests.fakes import FakeClock

SN = "SZCCKQRAIJBAH0002"
TOPICS = Topics("se3", SN)
INFO = orjson.dumps({"gateway_ip": "192.168.1.251", "gateway_name": "gw",
                     "dev_sno": "ZKZCPI000120190807142601", "sw_version": "V2R1C01\n"})


def device(name: str = "", **changes: Any) -> bytes:
    record: dict[str, Any] = {"ep_status": "online", "ep_type": "2", "ep_name": name,
                              "ep_location": "95274d2c-0941-4d96-b032-ab200f81362c"}
    record.update(changes)
    return orjson.dumps(record)


class TestReportCap:
    def make(self, cap: int) -> tuple[GatewayState, FakeClock]:
        state, clock = GatewayState(SN, max_report_bytes=cap), FakeClock()
        state.apply(parse(TOPICS.gateway_info, "se3"), INFO, clock)
        return state, clock

    def send(self, state: GatewayState, clock: FakeClock, ip: str, payload: bytes) -> None:
        state.apply(parse(TOPICS.device_state(ip), "se3"), payload, clock)

    def test_devices_past_the_cap_are_refused_and_the_report_stays_under_it(self) -> None:
        """Big records fill the report up to the cap; the next device is refused with code
        report_size, and the report body is never larger than the cap."""
        cap = 65_536
        state, clock = self.make(cap)
        refused = []
        for n in range(1, 60):
            try:
                self.send(state, clock, f"10.0.0.{n}", device("x" * 250, ep_url="u" * 2000))
            except RecordError as exc:
                refused.append((n, exc.code))
        assert refused
        assert {code for _, code in refused} == {"report_size"}
        report = state.report(clock)
        assert report is not None
        assert len(dumps(report)) <= cap
        assert len(report["sub_devices"]) == 59 - len(refused)

    def test_room_freed_by_a_delete_is_used_again(self) -> None:
        """The cap counts what is held: after a delete a refused device fits."""
        state, clock = self.make(65_536)
        big = device(ep_url="u" * 2000)
        n = 1
        while True:
            try:
                self.send(state, clock, f"10.0.1.{n}", big)
            except RecordError:
                break
            n += 1
        self.send(state, clock, "10.0.1.1", b"")
        self.send(state, clock, f"10.0.1.{n}", big)  # no error now

    def test_a_growing_update_past_the_cap_keeps_the_old_record(self) -> None:
        """An update that would pass the cap is refused and the last valid record stays."""
        state, clock = self.make(65_536)
        self.send(state, clock, "10.0.2.1", device("small"))
        for n in range(2, 100):
            try:
                self.send(state, clock, f"10.0.2.{n}", device(ep_url="u" * 2000))
            except RecordError:
                break
        with pytest.raises(RecordError, match="byte cap"):
            self.send(state, clock, "10.0.2.1", device("s" * 256, ep_url="u" * 2048))
        assert state.devices["10.0.2.1"].record.ep_name == "small"


@pytest.fixture
def service() -> Iterator[Bridge]:
    """A bridge that is never started (its loop's sockets closed at the end)."""
    config = parse_config({"gateway": {"sn": SN}, "bridge": {"max_devices": 100}})
    made = Bridge(config, clock=FakeClock(), announce=False)
    yield made
    made.rim.close(timeout=0)


class TestParseCache:
    def test_deletes_of_unknown_devices_are_not_cached(self, service: Bridge) -> None:
        """2,000 empty deletes of devices never seen leave the topic cache empty."""
        for n in range(2000):
            service._apply(TOPICS.device_state(f"10.{n // 250}.{n % 250}.1"), b"", False)
        assert service._refs == {}

    def test_refused_topics_are_not_cached(
        self, service: Bridge, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Scoped addresses with junk scopes and over-long levels are refused, logged and
        never cached."""
        caplog.set_level(logging.WARNING)
        for topic in (TOPICS.device_state("fe80::1%<img src=x onerror=alert(1)>"),
                      TOPICS.device_state("fe80::1%" + "a" * 5000)):
            service._apply(topic, device(), False)
        assert service._refs == {}
        assert service.state.devices == {}
        assert service.stats.snapshot().rejected["topic"] == 2

    def test_held_records_are_cached(self, service: Bridge) -> None:
        """A topic that holds a record is parsed once."""
        service._apply(TOPICS.device_state("10.0.0.1"), device(), False)
        assert list(service._refs) == [TOPICS.device_state("10.0.0.1")]


class TestConfiguredDevices:
    def test_apps_filling_the_cap_never_keep_a_configured_device_out(self) -> None:
        """Devices apps publish up to max_devices do not squat the room of the config's
        [[devices]] (only the devices collector can write their topics): those come in."""
        clock = FakeClock()
        state = GatewayState(SN, max_devices=3, configured=frozenset({"10.9.0.1"}))
        state.apply(parse(TOPICS.gateway_info, "se3"), INFO, clock)
        for n in range(1, 4):
            state.apply(parse(TOPICS.device_state(f"10.0.0.{n}"), "se3"), device(), clock)
        with pytest.raises(RecordError, match="device limit"):
            state.apply(parse(TOPICS.device_state("10.0.0.4"), "se3"), device(), clock)
        state.apply(parse(TOPICS.device_state("10.9.0.1"), "se3"), device("cam"), clock)
        assert "10.9.0.1" in state.devices

    def test_the_bridge_reserves_the_configs_devices(self) -> None:
        """The bridge takes the reserved addresses from the same config file."""
        config = parse_config({"gateway": {"sn": SN},
                               "devices": [{"ip": "10.9.0.1", "location": "L", "type": "2"}]})
        made = Bridge(config, clock=FakeClock(), announce=False)
        try:
            assert made.state.configured == frozenset({"10.9.0.1"})
        finally:
            made.rim.close(timeout=0)


class _Logins:
    def __init__(self) -> None:
        self.requests: list[LoginRequest] = []

    def request(self, request: LoginRequest) -> None:
        self.requests.append(request)


class TestRelogin:
    def test_refusals_log_in_again_at_most_once_per_retry_max(self) -> None:
        """Refused reports ask for a new login; asked again within retry_max (other targets
        refused the token of a login just made), they do not: no login loop."""
        config = parse_config({"gateway": {"sn": SN}, "platform": {
            "login_url": "http://127.0.0.1:9/login", "retry_max": 30.0}})
        clock = FakeClock()
        bridge = Bridge(config, clock=clock, announce=False)
        logins = _Logins()
        bridge.link._login = logins  # type: ignore[assignment]
        try:
            info = orjson.loads(INFO) | {"gateway_mac": "e0:a5:09:00:0e:6d"}
            bridge._apply(TOPICS.gateway_info, orjson.dumps(info), False)
            assert len(logins.requests) == 1
            bridge.link._relogin("http://127.0.0.1:9/r", 3)
            bridge.link._relogin("http://127.0.0.1:9/r2", 3)
            clock.advance(29.0)
            bridge.link._relogin("http://127.0.0.1:9/r", 3)
            assert len(logins.requests) == 2
            clock.advance(1.0)
            bridge.link._relogin("http://127.0.0.1:9/r2", 3)
            assert len(logins.requests) == 3
        finally:
            bridge.rim.close()
