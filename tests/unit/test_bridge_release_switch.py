"""A new platform release on `config/release`: the bridge's reports, schedule and login
follow it at once, without a restart (bridge.platform, bridge.outbox)."""

from __future__ import annotations

import orjson

from bridge.config import parse_config
from bridge.login import LoginRequest
from bridge.service import Bridge
from bridge.topics import Topics
from tests.fakes import FakeClock

SN = "SZCCKQRAIJBAH0002"
TOPICS = Topics("se3", SN)
INFO = orjson.dumps({"gateway_ip": "192.168.1.251", "gateway_name": "gw", "dev_sno": "A1",
                     "sw_version": "v", "gateway_mac": "e0:a5:09:00:0e:6d"})
DEVICE = orjson.dumps({"ep_status": "online", "ep_type": "2", "ep_location": "x",
                       "ep_ext_data": {"sw_version": "1.0"}})


class _Logins:
    def __init__(self) -> None:
        self.requests: list[LoginRequest] = []

    def request(self, request: LoginRequest) -> None:
        self.requests.append(request)


def bridge(announce: bool = False, **platform: object) -> Bridge:
    """A bridge not started (no broker); `announce`: one that would run, with targets."""
    config = parse_config({"gateway": {"sn": SN}, "platform": {
        "report_url": "http://127.0.0.1:9/r", **platform}})
    return Bridge(config, clock=FakeClock(), announce=announce)


class TestReleaseSwitch:
    def test_the_next_report_is_the_new_releases_and_complete(self) -> None:
        """V2R1C01's MQ variant (`ep_ext_data` on each device) to the seed (V2R2C01): the
        report built next is the seed's, with every device, and it is due at once."""
        b = bridge(release="V2R1C01", format="v2")
        try:
            b._apply(TOPICS.gateway_info, INFO, True)
            b._apply(TOPICS.device_state("10.0.0.1"), DEVICE, True)
            assert b.link.release.login == "L0"
            before = b.outbox.build()
            assert before is not None
            assert b"ep_ext_data" in before[0]
            channel = b.link.channels["gateway"]
            channel.schedule.mark_ready(b.clock.monotonic())
            channel.schedule.sent(b.clock.monotonic())
            assert not channel.schedule.is_due(b.clock.monotonic())

            b._apply(TOPICS.release, b"V2R2C01", False)

            assert b.link.release.name == "V2R2C01"
            # due after min_interval (1 s), not at the next period (20 s)
            assert channel.schedule.next_due() == b.clock.monotonic() + 1.0
            after = b.outbox.build()
            assert after is not None
            report = orjson.loads(after[0])
            assert b"ep_ext_data" not in after[0]
            assert [d["ep_ip"] for d in report["sub_devices"]] == ["10.0.0.1"]
        finally:
            b.rim.close()

    def test_a_new_login_variant_logs_in_again(self) -> None:
        """V2R1C01 logs in with L0; the switch to V2R2C01 asks again, in L1."""
        b = bridge(release="V2R1C01", format="v2", login_url="http://127.0.0.1:9/login")
        logins = _Logins()
        b.link._login = logins  # type: ignore[assignment]
        try:
            b._apply(TOPICS.gateway_info, INFO, True)
            b._apply(TOPICS.release, b"V2R2C01", False)
        finally:
            b.rim.close()

        assert [r.variant.name for r in logins.requests] == ["L0", "L1"]

    def test_an_unknown_release_is_refused_and_the_old_kept(self) -> None:
        b = bridge()
        try:
            b._apply(TOPICS.release, b"V7R1C01", False)
            assert b.link.release.name == "V2R2C01"
            assert b.stats.snapshot().rejected["release"] == 1
        finally:
            b.rim.close()


class TestTwoReports:
    def test_a_two_report_release_opens_the_sub_device_channel(self) -> None:
        """The seed to V6R1C01: a second channel with its own targets, the box's report F7
        without devices, the media devices' report F8 with them; and back."""
        b = bridge(announce=True)
        try:
            b._apply(TOPICS.gateway_info, INFO, True)
            b._apply(TOPICS.device_state("10.0.0.1"), DEVICE, True)
            assert list(b.link.channels) == ["gateway"]

            b._apply(TOPICS.release, b"V6R1C01", False)
            b._apply(TOPICS.devices_report_url, b"http://127.0.0.1:9/media", False)
            b._apply(TOPICS.reporter_id, b"site-7", False)

            assert list(b.link.channels) == ["gateway", "devices"]
            assert [t.url for t in b.link.channels["devices"].targets()] == [
                "http://127.0.0.1:9/media"]
            assert [t.url for t in b.link.channels["gateway"].targets()] == [
                "http://127.0.0.1:9/r"]
            box, media = b.outbox.build("gateway"), b.outbox.build("devices")
            assert box is not None
            assert media is not None
            system = orjson.loads(box[0])
            assert system["reporter_id"] == "site-7"
            assert "sub_devices" not in system
            assert "media_devices" not in system
            report = orjson.loads(media[0])
            assert report["mq_license_key"] == "A1"
            assert [d["media_device_ip"] for d in report["media_devices"]] == ["10.0.0.1"]

            b._apply(TOPICS.release, b"", False)
            assert list(b.link.channels) == ["gateway"]
            seed = b.outbox.build("gateway")
            assert seed is not None
            assert [d["ep_ip"] for d in orjson.loads(seed[0])["sub_devices"]] == ["10.0.0.1"]
        finally:
            for target in b.link.targets():
                target.stop()
            b.rim.close()


class TestDeviceCounts:
    def test_the_box_report_of_a_two_report_release_leaves_the_counts(self) -> None:
        """Under V6 the devices' report counts the devices; the box's report, which carries
        none, does not set the device gauges back to zero."""
        b = bridge(release="V6R1C01")
        try:
            b._apply(TOPICS.gateway_info, INFO, True)
            b._apply(TOPICS.device_state("10.0.0.1"), DEVICE, True)
            devices = b.outbox.build("devices")
            gateway = b.outbox.build()
            assert (devices is not None and devices[1], gateway is not None and gateway[1]) == (
                1, 0)
            snap = b.stats.snapshot()
            assert (snap.devices_online, snap.devices_offline) == (1, 0)
        finally:
            b.rim.close()
