"""Tests for bridge.state: one gateway's latest valid state, fed message by message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

import bridge.devicetable
import bridge.gatewayrecords
from bridge.errors import RecordError
from bridge.records import parse_as
from bridge.report import dumps
from bridge.state import GatewayState, Outcome
from bridge.topics import Kind, TopicRef, Topics, parse
from receiver.conformance import check_payload
from tests.fakes import FakeClock

PREFIX = "se3"
SN = "SZCCKQRAIJBAH0002"
DEV_SNO = "ZKZCPI000120190807142601"
TOPICS = Topics(PREFIX, SN)
WALL = 1_700_000_000.0
LOCATION = "95274d2c-0941-4d96-b032-ab200f81362c"



def js(value: Any) -> bytes:
    return orjson.dumps(value)


def info(**changes: Any) -> bytes:
    record: dict[str, Any] = {
        "gateway_ip": "192.168.1.251",
        "gateway_name": "bm1682landy93",
        "dev_sno": DEV_SNO,
        "sw_version": "VERSION: V2R1C01\n",
        "gateway_mac": "e0:a5:09:00:0e:6d",
    }
    record.update(changes)
    return js(record)


def device(**changes: Any) -> bytes:
    record: dict[str, Any] = {"ep_status": "online", "ep_type": "2", "ep_location": LOCATION}
    record.update(changes)
    return js(record)


class Harness:
    """A GatewayState, its clock, and shorthand for publishing to it."""

    def __init__(self, max_devices: int = 20_000, with_info: bool = True) -> None:
        self.clock = FakeClock()
        self.state = GatewayState(SN, max_devices=max_devices)
        if with_info:
            self.send(TOPICS.gateway_info, info())

    def send(self, topic: str, payload: bytes, replayed: bool = False) -> Outcome:
        return self.state.apply(parse(topic, PREFIX), payload, self.clock, replayed)

    def dev(self, ip: str, payload: bytes, replayed: bool = False) -> Outcome:
        return self.send(TOPICS.device_state(ip), payload, replayed)

    def collector(self, name: str, payload: bytes) -> Outcome:
        return self.send(TOPICS.collector_status(name), payload)

    def metrics(self, payload: bytes) -> Outcome:
        return self.send(TOPICS.gateway_metrics, payload)

    def report(self) -> dict[str, Any]:
        report = self.state.report(self.clock)
        assert report is not None
        return report

    def body(self) -> bytes:
        return dumps(self.report())

    def statuses(self) -> dict[str, str]:
        return {d["ep_ip"]: d["ep_status"] for d in self.report()["sub_devices"]}

    def ext(self) -> dict[str, Any]:
        ext: dict[str, Any] = self.report()["gateway_ext_data"]
        return ext


CHANGED = Outcome(changed=True)
UNCHANGED = Outcome()


class TestDevices:
    def test_new_device_is_a_change(self) -> None:
        """A device's first record is a change of membership and shows in the report."""
        h = Harness()

        assert h.dev("10.0.0.1", device()) == CHANGED
        assert h.statuses() == {"10.0.0.1": "online"}

    @pytest.mark.parametrize(
        "change",
        [
            {"ep_status": "offline"},
            {"ep_type": "3"},
            {"ep_location": "elsewhere"},
            {"ep_name": "gate 1"},
            {"ep_url": "rtsp://10.0.0.1/ch1"},
        ],
    )
    def test_a_visible_attribute_is_a_change(self, change: dict[str, str]) -> None:
        """A new status, type, location, name or url is a change."""
        h = Harness()
        h.dev("10.0.0.1", device())

        assert h.dev("10.0.0.1", device(**change)) == CHANGED
        assert h.report()["sub_devices"][0][next(iter(change))] == next(iter(change.values()))

    def test_dropping_ep_url_is_a_change(self) -> None:
        """A record that no longer has ep_url is a change: the key leaves the report."""
        h = Harness()
        h.dev("10.0.0.1", device(ep_url="rtsp://x"))

        assert h.dev("10.0.0.1", device()) == CHANGED
        assert "ep_url" not in h.report()["sub_devices"][0]

    @pytest.mark.parametrize(
        "change",
        [
            {"ts": WALL, "ttl": 600},
            {"source": "probe"},
            {"ep_ip": "10.0.0.1"},
            {"ep_id": "whatever"},
            {"vendor": "acme"},
        ],
    )
    def test_an_invisible_difference_is_no_change(self, change: dict[str, Any]) -> None:
        """A new record that the platform would see the same is no change."""
        h = Harness()
        h.dev("10.0.0.1", device())

        assert h.dev("10.0.0.1", device(**change)) == UNCHANGED

    def test_same_record_other_key_order_is_no_change(self) -> None:
        """Different bytes, same record: no change."""
        h = Harness()
        h.dev("10.0.0.1", b'{"ep_status":"online","ep_type":"2","ep_location":"L"}')

        assert h.dev("10.0.0.1", b'{"ep_location":"L","ep_type":"2","ep_status":"online"}') == (
            UNCHANGED
        )

    def test_remove_with_empty_payload(self) -> None:
        """An empty retained payload deletes the device: a change of membership."""
        h = Harness()
        h.dev("10.0.0.1", device())
        h.dev("10.0.0.2", device())

        assert h.dev("10.0.0.1", b"") == CHANGED
        assert h.statuses() == {"10.0.0.2": "online"}

    def test_removing_an_unknown_device_is_no_change(self) -> None:
        """Deleting a device the state never had changes nothing."""
        assert Harness().dev("10.0.0.1", b"") == UNCHANGED

    def test_readding_after_removal(self) -> None:
        """A deleted device published again is back, and that is a change."""
        h = Harness()
        h.dev("10.0.0.1", device())
        h.dev("10.0.0.1", b"")

        assert h.dev("10.0.0.1", device()) == CHANGED
        assert h.statuses() == {"10.0.0.1": "online"}

    def test_ipv6_device(self) -> None:
        """A device on an IPv6 topic is reported under its canonical address (ep_ip in the
        record may be spelled otherwise; the topic may not, see test_bridge_topics)."""
        h = Harness()
        h.dev("2001:db8::1", device(ep_ip="2001:DB8::0001"))

        assert h.statuses() == {"2001:db8::1": "online"}
        assert h.report()["sub_devices"][0]["ep_id"] == f"{DEV_SNO}__2001:db8::1"

    def test_ep_ip_must_match_the_topic(self) -> None:
        """A record whose ep_ip names another device is refused."""
        h = Harness()

        with pytest.raises(RecordError) as info_:
            h.dev("10.0.0.1", device(ep_ip="10.0.0.2"))

        assert info_.value.field == "ep_ip"
        assert h.statuses() == {}

    def test_counts(self) -> None:
        """counts() gives online and offline devices now."""
        h = Harness()
        h.dev("10.0.0.1", device())
        h.dev("10.0.0.2", device(ep_status="offline"))
        h.dev("10.0.0.3", device(ttl=5))
        h.clock.advance(6)

        assert h.state.counts(h.clock) == (1, 2)


class TestBadMessages:
    @pytest.mark.parametrize(
        "bad",
        [b"not json", b"[]", device(ep_status="up"), device(ep_type="9"), device(ep_type=2),
         js({"ep_status": "online"}), device(ep_ip="10.0.0.99"), b"{" + b" " * 20_000 + b"}"],
    )
    def test_bad_device_message_keeps_the_last_valid_record(self, bad: bytes) -> None:
        """A refused device message raises RecordError and the previous record stays."""
        h = Harness()
        h.dev("10.0.0.1", device(ep_name="kept"))
        before = h.body()

        with pytest.raises(RecordError):
            h.dev("10.0.0.1", bad)

        assert h.body() == before

    def test_bad_first_message_adds_nothing(self) -> None:
        """A device whose only message is bad does not appear."""
        h = Harness()

        with pytest.raises(RecordError):
            h.dev("10.0.0.1", device(ep_status="up"))

        assert h.report()["sub_devices"] == []

    def test_bad_metrics_keep_the_last_valid(self) -> None:
        """Refused metrics leave the previous metrics in the report."""
        h = Harness()
        h.metrics(js({"cpu_usage": 6.5}))

        with pytest.raises(RecordError):
            h.metrics(js({"memory_usage": 1.5}))

        assert h.ext()["cpu_usage"] == 6.5
        assert "memory_usage" not in h.ext()

    def test_bad_metrics_do_not_refresh_the_deadline(self) -> None:
        """A refused metrics message does not keep the old metrics alive."""
        h = Harness()
        h.metrics(js({"cpu_usage": 6.5, "ttl": 10}))
        h.clock.advance(8)
        with pytest.raises(RecordError):
            h.metrics(js({"cpu_usage": 600, "ttl": 10}))
        h.clock.advance(3)

        assert "cpu_usage" not in h.ext()

    def test_bad_info_keeps_the_last_valid(self) -> None:
        """Refused gateway info leaves the previous identity in force."""
        h = Harness()

        with pytest.raises(RecordError):
            h.send(TOPICS.gateway_info, info(gateway_ip="not an ip"))

        assert h.report()["gateway_ip"] == "192.168.1.251"

    def test_a_refused_message_does_not_poison_the_next(self) -> None:
        """After a refusal, the same valid record as before is still recognised as unchanged."""
        h = Harness()
        h.dev("10.0.0.1", device())
        with pytest.raises(RecordError):
            h.dev("10.0.0.1", b"junk")

        assert h.dev("10.0.0.1", device()) == UNCHANGED

    def test_bridge_topics_change_nothing(self) -> None:
        """The bridge's own topics are no input to the state."""
        h = Harness()
        before = h.body()

        for topic in (TOPICS.bridge_status, TOPICS.bridge_report, TOPICS.bridge_errors):
            assert h.send(topic, b"anything") == UNCHANGED
        assert h.body() == before


class TestRepeats:
    def test_identical_payload_is_not_parsed_again(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A byte-identical repeat of a device record skips validation."""
        h = Harness()
        payload = device(ttl=30)
        h.dev("10.0.0.1", payload)
        calls: list[bytes] = []
        real: Callable[..., Any] = parse_as

        def counting(*args: Any, **kwargs: Any) -> Any:
            calls.append(args[1])
            return real(*args, **kwargs)

        monkeypatch.setattr(bridge.devicetable, "parse_as", counting)
        monkeypatch.setattr(bridge.gatewayrecords, "parse_as", counting)

        assert h.dev("10.0.0.1", payload) == UNCHANGED
        assert h.metrics(js({"cpu_usage": 1.0})) == UNCHANGED
        assert h.metrics(js({"cpu_usage": 1.0})) == UNCHANGED
        assert h.send(TOPICS.gateway_info, info()) == UNCHANGED
        assert calls == [js({"cpu_usage": 1.0})]

    def test_repeat_refreshes_the_deadline_without_ts(self) -> None:
        """Re-publishing a record without ts restarts its ttl from the new arrival."""
        h = Harness()
        payload = device(ttl=30)
        h.dev("10.0.0.1", payload)
        h.clock.advance(20)
        h.dev("10.0.0.1", payload)
        h.clock.advance(20)  # 40 s after the first, 20 after the repeat

        assert not h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "online"}
        h.clock.advance(10.5)
        assert h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "offline"}

    def test_replay_of_a_record_without_ts_does_not_renew_it(self) -> None:
        """A broker replaying (after a reconnect) the bytes we hold is no sign of life: an
        expired record without ts stays offline; a live publish of it renews it."""
        h = Harness()
        payload = device(ttl=30)
        h.dev("10.0.0.1", payload)
        h.clock.advance(31)
        assert h.state.expire(h.clock)

        assert h.dev("10.0.0.1", payload, replayed=True) == UNCHANGED
        assert h.statuses() == {"10.0.0.1": "offline"}
        assert not h.state.expire(h.clock)
        assert h.dev("10.0.0.1", payload) == CHANGED
        assert h.statuses() == {"10.0.0.1": "online"}

    def test_replay_keeps_the_running_deadline(self) -> None:
        """A replay before the deadline neither extends nor cuts the record's life."""
        h = Harness()
        payload = device(ttl=30)
        h.dev("10.0.0.1", payload)
        h.clock.advance(20)
        h.dev("10.0.0.1", payload, replayed=True)
        h.clock.advance(10)

        assert h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "offline"}

    def test_replayed_metrics_without_ts_stay_stale(self) -> None:
        """Metrics without ts that went stale are not made current by a replay."""
        h = Harness()
        payload = js({"cpu_usage": 5.0, "ttl": 30})
        h.metrics(payload)
        h.clock.advance(31)
        assert "cpu_usage" not in h.report()["gateway_ext_data"]

        h.send(TOPICS.gateway_metrics, payload, replayed=True)

        assert "cpu_usage" not in h.report()["gateway_ext_data"]
        h.metrics(payload)
        assert h.report()["gateway_ext_data"]["cpu_usage"] == 5.0

    def test_repeat_with_the_same_ts_does_not_extend(self) -> None:
        """Re-publishing the same stamped record does not make it live longer."""
        h = Harness()
        payload = device(ts=WALL, ttl=30)
        h.dev("10.0.0.1", payload)
        h.clock.advance(20)
        h.dev("10.0.0.1", payload)
        h.clock.advance(10)

        assert h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "offline"}

    def test_refresh_after_expiry_brings_the_device_back(self) -> None:
        """An expired device refreshed with the same record is online again: a change."""
        h = Harness()
        payload = device(ttl=30)
        h.dev("10.0.0.1", payload)
        h.clock.advance(31)
        assert h.state.expire(h.clock)

        assert h.dev("10.0.0.1", payload) == CHANGED
        assert h.statuses() == {"10.0.0.1": "online"}

    def test_new_stamp_refreshes(self) -> None:
        """A new record with a newer ts keeps the device online: no change."""
        h = Harness()
        h.dev("10.0.0.1", device(ts=WALL, ttl=30))
        h.clock.advance(25)

        assert h.dev("10.0.0.1", device(ts=WALL + 25, ttl=30)) == UNCHANGED
        h.clock.advance(25)
        assert not h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "online"}


class TestExpiry:
    def test_expiry_turns_the_device_offline_once(self) -> None:
        """After its ttl a device is offline in the report, and expire() says so once."""
        h = Harness()
        h.dev("10.0.0.1", device(ttl=30))
        h.dev("10.0.0.2", device())

        assert h.state.next_expiry() == h.clock.monotonic() + 30
        h.clock.advance(29.9)
        assert not h.state.expire(h.clock)
        assert h.statuses()["10.0.0.1"] == "online"
        h.clock.advance(0.1)

        assert h.state.expire(h.clock) is True
        assert h.statuses() == {"10.0.0.1": "offline", "10.0.0.2": "online"}
        assert h.state.expire(h.clock) is False
        h.clock.advance(1000)
        assert h.state.expire(h.clock) is False

    def test_status_is_read_at_report_time(self) -> None:
        """Even before expire() runs, the report shows an expired device offline."""
        h = Harness()
        h.dev("10.0.0.1", device(ttl=5))
        h.clock.advance(5)

        assert h.statuses() == {"10.0.0.1": "offline"}

    def test_no_ttl_never_expires(self) -> None:
        """A record without ttl stays online until replaced or deleted."""
        h = Harness()
        h.dev("10.0.0.1", device(ts=WALL - 10 * 86400))
        h.clock.advance(365 * 86400)

        assert h.state.next_expiry() is None
        assert not h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "online"}

    def test_stale_replay_is_offline_on_arrival(self) -> None:
        """A retained record older than its ttl (a replay after restart) is reported offline."""
        h = Harness()
        h.dev("10.0.0.1", device(ts=WALL - 3600, ttl=60))

        assert h.statuses() == {"10.0.0.1": "offline"}

    def test_future_ts_lives_at_most_ttl(self) -> None:
        """A record stamped in the future still expires ttl after its arrival."""
        h = Harness()
        h.dev("10.0.0.1", device(ts=WALL + 7200, ttl=60))
        h.clock.advance(60)

        assert h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "offline"}

    def test_wall_clock_step_after_arrival_changes_nothing(self) -> None:
        """A wall-clock step of hours after arrival neither expires nor extends a record."""
        h = Harness()
        h.dev("10.0.0.1", device(ts=WALL, ttl=60))
        h.clock.wall_time += 5 * 3600
        h.clock.mono_time += 30

        assert not h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "online"}
        h.clock.wall_time -= 10 * 3600
        h.clock.mono_time += 30
        assert h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "offline"}

    def test_superseded_deadline_is_ignored(self) -> None:
        """The old deadline of a refreshed device expires nothing."""
        h = Harness()
        h.dev("10.0.0.1", device(ttl=30))
        h.clock.advance(10)
        h.dev("10.0.0.1", device(ttl=30, ep_name="new"))
        h.clock.advance(25)  # past the first deadline, not the second

        assert not h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "online"}

    def test_replacement_without_ttl_cancels_expiry(self) -> None:
        """A record without ttl replacing one with ttl never expires."""
        h = Harness()
        h.dev("10.0.0.1", device(ttl=30))
        h.dev("10.0.0.1", device())
        h.clock.advance(60)

        assert not h.state.expire(h.clock)
        assert h.statuses() == {"10.0.0.1": "online"}

    def test_deleted_device_does_not_expire(self) -> None:
        """The deadline of a deleted device changes nothing."""
        h = Harness()
        h.dev("10.0.0.1", device(ttl=30))
        h.dev("10.0.0.1", b"")
        h.clock.advance(31)

        assert not h.state.expire(h.clock)

    def test_offline_device_expiring_is_no_change(self) -> None:
        """A device already reported offline does not change when its ttl passes."""
        h = Harness()
        h.dev("10.0.0.1", device(ep_status="offline", ttl=30))
        h.clock.advance(31)

        assert not h.state.expire(h.clock)

    def test_record_expired_on_arrival_is_no_later_change(self) -> None:
        """A record past its ttl when it arrives is offline at once, and nothing more."""
        h = Harness()
        h.dev("10.0.0.1", device(ts=WALL - 3600, ttl=60))

        assert h.state.next_expiry() is None
        assert not h.state.expire(h.clock)

    def test_compaction_does_not_count_an_expiry_twice(self) -> None:
        """Refreshes that compact the deadline heap do not bring back a handled expiry
        (which would send a report with nothing new in it)."""
        h = Harness()
        h.dev("10.0.0.99", device(ttl=5))
        h.clock.advance(6)
        assert h.state.expire(h.clock)

        for n in range(300):  # each refresh is a new deadline: the heap grows, then compacts
            h.clock.advance(0.01)
            h.dev("10.0.0.1", device(ttl=60, ep_name=f"v{n}"))
            assert not h.state.expire(h.clock), n

        assert len(h.state.table._expiries) < 100
        assert h.statuses() == {"10.0.0.1": "online", "10.0.0.99": "offline"}

    def test_several_expire_at_once(self) -> None:
        """Several passed deadlines are all dropped in one expire() call."""
        h = Harness()
        for n in range(1, 6):
            h.dev(f"10.0.0.{n}", device(ttl=n))
        h.clock.advance(10)

        assert h.state.expire(h.clock)
        assert set(h.statuses().values()) == {"offline"}
        assert h.state.next_expiry() is None


class TestCollectors:
    def setup_devices(self, h: Harness) -> None:
        h.dev("10.0.0.1", device(source="probe"))
        h.dev("10.0.0.2", device(source="probe"))
        h.dev("10.0.0.3", device(source="app"))
        h.dev("10.0.0.4", device())

    def test_offline_collector_turns_its_devices_offline_at_once(self) -> None:
        """A collector's `offline` status turns only its own devices offline, without ttl."""
        h = Harness()
        self.setup_devices(h)

        assert h.collector("probe", b"offline") == CHANGED
        assert h.statuses() == {"10.0.0.1": "offline", "10.0.0.2": "offline",
                                "10.0.0.3": "online", "10.0.0.4": "online"}

    def test_online_restores_them(self) -> None:
        """The collector's `online` brings its devices back as their records say."""
        h = Harness()
        self.setup_devices(h)
        h.collector("probe", b"offline")

        assert h.collector("probe", b"online") == CHANGED
        assert set(h.statuses().values()) == {"online"}

    def test_repeated_status_is_no_change(self) -> None:
        """The same collector status twice is no change."""
        h = Harness()
        self.setup_devices(h)
        h.collector("probe", b"offline")

        assert h.collector("probe", b"offline") == UNCHANGED
        assert h.collector("app", b"online") == UNCHANGED

    def test_collector_without_devices(self) -> None:
        """An offline collector with no devices is no change, but its later devices are offline."""
        h = Harness()

        assert h.collector("late", b"offline") == UNCHANGED
        h.dev("10.0.0.9", device(source="late"))
        assert h.statuses() == {"10.0.0.9": "offline"}

    def test_device_already_offline_is_no_change(self) -> None:
        """A collector going offline whose devices already say offline is no change."""
        h = Harness()
        h.dev("10.0.0.1", device(source="probe", ep_status="offline"))

        assert h.collector("probe", b"offline") == UNCHANGED

    def test_device_moving_to_an_offline_source_is_a_change(self) -> None:
        """A device republished under an offline collector's name goes offline: a change."""
        h = Harness()
        h.collector("probe", b"offline")
        h.dev("10.0.0.1", device(source="app"))

        assert h.dev("10.0.0.1", device(source="probe")) == CHANGED
        assert h.statuses() == {"10.0.0.1": "offline"}

    def test_status_with_whitespace(self) -> None:
        """A status with surrounding whitespace (`offline\\n`) is understood."""
        h = Harness()
        self.setup_devices(h)

        assert h.collector("probe", b"offline\n") == CHANGED

    def test_deleted_status_counts_as_online(self) -> None:
        """An empty (deleted) collector status says nothing against its devices."""
        h = Harness()
        self.setup_devices(h)
        h.collector("probe", b"offline")

        assert h.collector("probe", b"") == CHANGED
        assert set(h.statuses().values()) == {"online"}

    @pytest.mark.parametrize("bad", [b"down", b"ONLINE", b'{"status":"offline"}', b"\xff"])
    def test_bad_status_is_refused(self, bad: bytes) -> None:
        """A status other than online/offline is refused and changes nothing."""
        h = Harness()
        self.setup_devices(h)
        h.collector("probe", b"offline")

        with pytest.raises(RecordError):
            h.collector("probe", bad)

        assert h.statuses()["10.0.0.1"] == "offline"

    def test_expiry_under_an_offline_collector_is_no_change(self) -> None:
        """A device already offline through its collector does not change when its ttl passes."""
        h = Harness()
        h.dev("10.0.0.1", device(source="probe", ttl=30))
        h.collector("probe", b"offline")
        h.clock.advance(31)

        assert not h.state.expire(h.clock)

    def test_collector_back_online_after_ttl_keeps_it_offline(self) -> None:
        """Devices whose ttl passed while their collector was down stay offline when it returns."""
        h = Harness()
        h.dev("10.0.0.1", device(source="probe", ttl=30))
        h.collector("probe", b"offline")
        h.clock.advance(31)
        h.state.expire(h.clock)

        assert h.collector("probe", b"online") == UNCHANGED
        assert h.statuses() == {"10.0.0.1": "offline"}


class TestDeviceLimit:
    def test_new_device_over_the_limit_is_refused(self) -> None:
        """At max_devices a new device is refused with code `limit`."""
        h = Harness(max_devices=2)
        h.dev("10.0.0.1", device())
        h.dev("10.0.0.2", device())

        with pytest.raises(RecordError) as info_:
            h.dev("10.0.0.3", device())

        assert info_.value.code == "limit"
        assert set(h.statuses()) == {"10.0.0.1", "10.0.0.2"}

    def test_existing_devices_still_update(self) -> None:
        """At max_devices, updates to devices already known are accepted."""
        h = Harness(max_devices=2)
        h.dev("10.0.0.1", device())
        h.dev("10.0.0.2", device())

        assert h.dev("10.0.0.2", device(ep_status="offline")) == CHANGED
        assert h.statuses()["10.0.0.2"] == "offline"

    def test_removal_makes_room(self) -> None:
        """After a device is deleted, a new one fits again."""
        h = Harness(max_devices=1)
        h.dev("10.0.0.1", device())
        h.dev("10.0.0.1", b"")

        assert h.dev("10.0.0.2", device()) == CHANGED

    def test_device_refused_at_the_cap_comes_in_when_room_frees(self) -> None:
        """A retained record refused at the cap is not published again by its owner: it is
        kept (its latest valid version) and taken in when a device is deleted."""
        h = Harness(max_devices=2)
        h.dev("10.0.0.1", device())
        h.dev("10.0.0.2", device())
        for name in ("first", "latest"):
            with pytest.raises(RecordError):
                h.dev("10.0.0.3", device(ep_name=name))

        assert h.dev("10.0.0.2", b"") == CHANGED

        assert set(h.statuses()) == {"10.0.0.1", "10.0.0.3"}
        assert h.report()["sub_devices"][1]["ep_name"] == "latest"

    def test_deleted_while_waiting_never_comes_in(self) -> None:
        h = Harness(max_devices=1)
        h.dev("10.0.0.1", device())
        with pytest.raises(RecordError):
            h.dev("10.0.0.2", device())

        assert h.dev("10.0.0.2", b"") == UNCHANGED
        h.dev("10.0.0.1", b"")

        assert h.statuses() == {}

    def test_bad_record_is_refused_for_what_it_is(self) -> None:
        """Over the limit, a malformed record is refused for its content, not the limit."""
        h = Harness(max_devices=1)
        h.dev("10.0.0.1", device())

        with pytest.raises(RecordError) as info_:
            h.dev("10.0.0.2", b"junk")

        assert info_.value.code == "json"


class TestMetrics:
    def test_metrics_never_trigger_a_report(self) -> None:
        """Metrics are reported, but a new metrics record is never a change."""
        h = Harness()

        assert h.metrics(js({"cpu_usage": 1.0})) == UNCHANGED
        assert h.metrics(js({"cpu_usage": 99.0})) == UNCHANGED
        assert h.ext()["cpu_usage"] == 99.0

    def test_metrics_expire_from_the_report(self) -> None:
        """Metrics not refreshed within their ttl are left out of the report."""
        h = Harness()
        h.metrics(js({"cpu_usage": 6.5, "memory_usage": 0.5, "ttl": 30}))
        h.clock.advance(29)
        assert h.ext()["cpu_usage"] == 6.5

        h.clock.advance(1)

        assert set(h.ext()) == {"sw_version", "gateway_mac"}

    def test_stale_metrics_are_left_out_on_arrival(self) -> None:
        """Metrics whose ts is older than their ttl are left out at once."""
        h = Harness()
        h.metrics(js({"cpu_usage": 6.5, "ts": WALL - 100, "ttl": 30}))

        assert "cpu_usage" not in h.ext()

    def test_repeated_metrics_refresh_the_deadline(self) -> None:
        """Identical metrics without ts restart their ttl."""
        h = Harness()
        payload = js({"cpu_usage": 6.5, "ttl": 30})
        h.metrics(payload)
        h.clock.advance(20)
        h.metrics(payload)
        h.clock.advance(20)

        assert h.ext()["cpu_usage"] == 6.5

    def test_metrics_without_ttl_stay(self) -> None:
        """Metrics without ttl stay until replaced."""
        h = Harness()
        h.metrics(js({"disk_size": 10.39}))
        h.clock.advance(86400)

        assert h.ext()["disk_size"] == 10.39

    def test_empty_payload_deletes_metrics(self) -> None:
        """An empty metrics payload removes the metrics from the report."""
        h = Harness()
        h.metrics(js({"cpu_usage": 6.5}))

        assert h.metrics(b"") == UNCHANGED
        assert "cpu_usage" not in h.ext()

    def test_metrics_before_info(self) -> None:
        """Metrics that arrive before the gateway info are kept for the first report."""
        h = Harness(with_info=False)
        h.metrics(js({"cpu_usage": 6.5}))
        h.send(TOPICS.gateway_info, info())

        assert h.ext()["cpu_usage"] == 6.5


class TestGatewayInfo:
    def test_report_is_none_until_info(self) -> None:
        """Without gateway info there is no report, even with devices and metrics."""
        h = Harness(with_info=False)
        h.dev("10.0.0.1", device())
        h.metrics(js({"cpu_usage": 1.0}))

        assert h.state.report(h.clock) is None
        assert h.send(TOPICS.gateway_info, info()) == CHANGED
        assert h.statuses() == {"10.0.0.1": "online"}

    @pytest.mark.parametrize(
        "change",
        [{"gateway_ip": "192.168.1.252"}, {"gateway_name": "other"}, {"dev_sno": "NEW"},
         {"sw_version": "VERSION: V2R1C02\n"}, {"gateway_mac": "e0:a5:09:00:0e:6e"},
         {"sdk_version": "2.0"}],
    )
    def test_identity_change_is_a_change(self, change: dict[str, str]) -> None:
        """A gateway info the platform would see differently is a change."""
        h = Harness()

        assert h.send(TOPICS.gateway_info, info(**change)) == CHANGED

    def test_dev_sno_change_renames_every_ep_id(self) -> None:
        """ep_id follows the current dev_sno."""
        h = Harness()
        h.dev("10.0.0.1", device())
        h.send(TOPICS.gateway_info, info(dev_sno="NEW"))

        assert h.report()["sub_devices"][0]["ep_id"] == "NEW__10.0.0.1"

    def test_same_info_other_bytes_is_no_change(self) -> None:
        """A gateway info equal after normalisation (spaces, MAC case) is no change."""
        h = Harness()

        assert h.send(TOPICS.gateway_info,
                      info(gateway_ip=" 192.168.1.251 ", gateway_mac="E0:A5:09:00:0E:6D")) == (
            UNCHANGED
        )

    def test_empty_info_withdraws_the_report(self) -> None:
        """A deleted gateway info is a change, and there is no report until it returns."""
        h = Harness()

        assert h.send(TOPICS.gateway_info, b"") == CHANGED
        assert h.state.report(h.clock) is None
        assert h.send(TOPICS.gateway_info, b"") == UNCHANGED

    def test_gateway_status_is_passed_through(self) -> None:
        """report() carries the gateway status it is asked for (offline at shutdown)."""
        h = Harness()
        report = h.state.report(h.clock, "offline")

        assert report is not None
        assert report["gateway_status"] == "offline"
        assert h.report()["gateway_status"] == "online"

    def test_gateway_sn_comes_from_the_state(self) -> None:
        """gateway_sn is the serial the state was made for."""
        assert Harness().report()["gateway_sn"] == SN

    def test_source_only_change_is_no_change(self) -> None:
        """Gateway info differing only in `source`, which the platform never sees, is no change."""
        h = Harness()

        assert h.send(TOPICS.gateway_info, info(source="gw-collector-2")) == UNCHANGED


class TestScopedAddresses:
    @pytest.mark.parametrize("first", ["fe80::1%eth0", "fe80::1%eth1"])
    def test_one_order_whatever_the_arrival(self, first: str) -> None:
        """The same address on two links: one stable order (by scope), not by arrival, so
        the report passes the strict platform's check and two reports are identical."""
        h = Harness()
        for ip in (first, *{"fe80::1%eth0", "fe80::1%eth1"} - {first}, "fe80::1"):
            h.dev(ip, device())
        order = [d["ep_ip"] for d in h.report()["sub_devices"]]
        assert order == ["fe80::1", "fe80::1%eth0", "fe80::1%eth1"]
        assert check_payload(h.report()) == []


class TestTopicKinds:
    def test_every_kind_is_handled(self) -> None:
        """apply() accepts a message of every kind of topic without an unexpected error."""
        h = Harness()
        payloads = {
            Kind.GATEWAY_INFO: info(),
            Kind.GATEWAY_METRICS: js({"cpu_usage": 1.0}),
            Kind.GATEWAY_HARDWARE: js({"tpu_usage": 0.5}),
            Kind.DEVICE_STATE: device(),
            Kind.COLLECTOR_STATUS: b"online",
        }
        for kind in Kind:
            topic = {
                Kind.GATEWAY_INFO: TOPICS.gateway_info,
                Kind.GATEWAY_METRICS: TOPICS.gateway_metrics,
                Kind.GATEWAY_HARDWARE: TOPICS.gateway_hardware,
                Kind.DEVICE_STATE: TOPICS.device_state("10.0.0.1"),
                Kind.COLLECTOR_STATUS: TOPICS.collector_status("c"),
                Kind.BRIDGE_STATUS: TOPICS.bridge_status,
                Kind.BRIDGE_REPORT: TOPICS.bridge_report,
                Kind.BRIDGE_ERRORS: TOPICS.bridge_errors,
                Kind.BRIDGE_SETTINGS: TOPICS.bridge_settings,
                Kind.REPORT_URL: TOPICS.report_url,
                Kind.REPORT_PERIOD: TOPICS.report_period,
                Kind.LOGIN_URL: TOPICS.login_url,
                Kind.DEV_SNO: TOPICS.dev_sno,
                Kind.DEVICES_REPORT_URL: TOPICS.devices_report_url,
                Kind.DEVICES_REPORT_PERIOD: TOPICS.devices_report_period,
                Kind.REPORTER_ID: TOPICS.reporter_id,
                Kind.RELEASE: TOPICS.release,
                Kind.REPORT_NOW: TOPICS.report_now,
                Kind.BRIDGE_ARRIVAL: TOPICS.arrival("10.0.0.1"),
            }[kind]
            assert isinstance(h.send(topic, payloads.get(kind, b"online")), Outcome)


class TestOfflineSources:
    def test_offline_publishers_are_bounded(self) -> None:
        """Past 1,024 offline publishers a further `offline` status is refused, code limit."""
        state = GatewayState(SN)
        clock = FakeClock()
        for n in range(1024):
            state.apply(TopicRef(SN, Kind.COLLECTOR_STATUS, f"app{n}"), b"offline", clock)
        with pytest.raises(RecordError) as err:
            state.apply(TopicRef(SN, Kind.COLLECTOR_STATUS, "one-more"), b"offline", clock)
        assert err.value.code == "limit"
        assert "one-more" not in state.offline_sources


class TestRetainOnly:
    def test_what_the_replay_did_not_bring_back_is_forgotten(self) -> None:
        """After a replay, devices, metrics and offline marks not seen are gone."""
        h = Harness()
        h.dev("10.0.0.1", device())
        h.dev("10.0.0.2", device())
        h.metrics(js({"cpu_usage": 5.0}))
        h.collector("probe", b"offline")
        seen = {parse(TOPICS.gateway_info, PREFIX), parse(TOPICS.device_state("10.0.0.1"), PREFIX)}

        outcome = h.state.retain_only(seen, h.clock)

        assert outcome == Outcome(changed=True)
        assert list(h.state.devices) == ["10.0.0.1"]
        assert h.state.metrics is None
        assert h.state.offline_sources == set()
        assert h.state.info is not None

    def test_room_freed_by_the_replay_goes_to_devices_refused_in_it(self) -> None:
        """At the cap, a device deleted and another added while the bridge was away: the
        new one, refused during the replay, takes the deleted one's place at its end."""
        h = Harness(max_devices=2)
        h.dev("10.0.0.1", device())
        h.dev("10.0.0.2", device())
        h.dev("10.0.0.1", device(), replayed=True)  # the replay after a reconnect
        with pytest.raises(RecordError):
            h.dev("10.0.0.3", device(), replayed=True)
        seen = {parse(TOPICS.gateway_info, PREFIX), parse(TOPICS.device_state("10.0.0.1"), PREFIX),
                parse(TOPICS.device_state("10.0.0.3"), PREFIX)}

        assert h.state.retain_only(seen, h.clock) == Outcome(changed=True)
        assert set(h.statuses()) == {"10.0.0.1", "10.0.0.3"}

    def test_a_full_replay_changes_nothing(self) -> None:
        """When everything came back, nothing is dropped and nothing is reported changed."""
        h = Harness()
        h.dev("10.0.0.1", device())
        seen = {parse(TOPICS.gateway_info, PREFIX), parse(TOPICS.device_state("10.0.0.1"), PREFIX)}

        assert h.state.retain_only(seen, h.clock) == Outcome()
        assert list(h.state.devices) == ["10.0.0.1"]


class TestArrivalsAcrossRestarts:
    """A record with a ttl and no ts counts from its arrival, also after a bridge restart:
    the arrival is kept on the broker (bridge/arrivals/{key}) and read back in the replay."""

    @staticmethod
    def restart(h: Harness) -> tuple[Harness, dict[str, bytes]]:
        """What the broker holds of the bridge's arrivals, and a new bridge's state."""
        kept = {TOPICS.arrival(key): payload for key, payload in h.state.arrivals.take()}
        new = Harness(with_info=False)
        new.clock = h.clock
        new.send(TOPICS.gateway_info, info(), replayed=True)
        return new, kept

    @pytest.mark.parametrize("arrival_first", [False, True])
    def test_a_dead_publishers_device_stays_offline(self, arrival_first: bool) -> None:
        h = Harness()
        payload = device(ttl=30)
        h.dev("10.0.0.1", payload)
        h.clock.advance(31)
        new, kept = self.restart(h)

        (arrival,) = kept.items()
        if arrival_first:
            new.send(*arrival, replayed=True)
            new.dev("10.0.0.1", payload, replayed=True)
        else:
            new.dev("10.0.0.1", payload, replayed=True)
            assert new.send(*arrival, replayed=True) == CHANGED

        assert new.statuses() == {"10.0.0.1": "offline"}

    def test_a_live_one_keeps_the_rest_of_its_ttl(self) -> None:
        h = Harness()
        payload = device(ttl=30)
        h.dev("10.0.0.1", payload)
        h.clock.advance(20)
        new, kept = self.restart(h)
        new.dev("10.0.0.1", payload, replayed=True)
        for topic, arrival in kept.items():
            new.send(topic, arrival, replayed=True)

        assert new.statuses() == {"10.0.0.1": "online"}
        new.clock.advance(10.5)
        assert new.state.expire(new.clock)
        assert new.statuses() == {"10.0.0.1": "offline"}

    def test_another_record_counts_from_now(self) -> None:
        """An arrival kept for other bytes says nothing of the record the broker holds now
        (published while the bridge was down)."""
        h = Harness()
        h.dev("10.0.0.1", device(ttl=30))
        h.clock.advance(31)
        new, kept = self.restart(h)
        new.dev("10.0.0.1", device(ttl=30, ep_name="renamed"), replayed=True)
        for topic, arrival in kept.items():
            new.send(topic, arrival, replayed=True)

        assert new.statuses() == {"10.0.0.1": "online"}

    def test_stale_metrics_stay_out(self) -> None:
        h = Harness()
        payload = js({"cpu_usage": 5.0, "ttl": 30})
        h.metrics(payload)
        h.clock.advance(31)
        new, kept = self.restart(h)
        assert list(kept) == [TOPICS.arrival("metrics")]
        new.send(TOPICS.gateway_metrics, payload, replayed=True)
        for topic, arrival in kept.items():
            new.send(topic, arrival, replayed=True)

        assert "cpu_usage" not in new.report()["gateway_ext_data"]

    def test_stale_hardware_stays_out(self) -> None:
        h = Harness()
        payload = js({"tpu_usage": 0.5, "ttl": 30})
        h.send(TOPICS.gateway_hardware, payload)
        h.clock.advance(31)
        new, kept = self.restart(h)
        assert list(kept) == [TOPICS.arrival("hardware")]
        new.send(TOPICS.gateway_hardware, payload, replayed=True)
        assert new.state.current_hardware(new.clock) is not None  # judged from now, so far
        for topic, arrival in kept.items():
            new.send(topic, arrival, replayed=True)

        assert new.state.current_hardware(new.clock) is None

    def test_arrivals_no_record_needs_are_deleted(self) -> None:
        """A deleted record, or one that now carries ts, leaves no arrival behind."""
        h = Harness()
        h.dev("10.0.0.1", device(ttl=30))
        h.dev("10.0.0.2", device(ttl=30))
        h.state.arrivals.take()
        h.dev("10.0.0.1", b"")
        h.dev("10.0.0.2", device(ts=WALL, ttl=30))

        assert h.state.arrivals.take() == [("10.0.0.1", b""), ("10.0.0.2", b"")]

    def test_a_malformed_arrival_is_refused(self) -> None:
        h = Harness()
        with pytest.raises(RecordError, match="arrival must be"):
            h.send(TOPICS.arrival("10.0.0.1"), js({"at": "yesterday"}), replayed=True)


class TestClaims:
    """One address, one publisher: configured devices, then the first held claim."""

    def app(self, h: Harness, user: str, ip: str, payload: bytes) -> Outcome:
        return h.send(TOPICS.app_device_state(user, ip), payload)

    def test_an_apps_record_is_reported_with_its_user_as_source(self) -> None:
        h = Harness()
        assert self.app(h, "app-door", "10.0.0.1", device()) == CHANGED
        assert h.state.devices["10.0.0.1"].record.source == "app-door"
        h.send(TOPICS.app_status("app-door"), b"offline")
        assert h.statuses() == {"10.0.0.1": "offline"}

    def test_an_app_cannot_name_another_source(self) -> None:
        h = Harness()
        with pytest.raises(RecordError, match="source 'devices' in the space of app app"):
            self.app(h, "app", "10.0.0.1", device(source="devices"))
        assert h.state.devices == {}
        self.app(h, "app", "10.0.0.1", device(source="app"))
        assert h.state.devices["10.0.0.1"].record.source == "app"

    def test_the_first_claim_holds_until_its_record_is_deleted(self) -> None:
        h = Harness()
        self.app(h, "app", "10.0.0.1", device(ep_name="first"))
        with pytest.raises(RecordError, match="already reported by app app") as refused:
            self.app(h, "app-other", "10.0.0.1", device(ep_name="second"))
        assert refused.value.code == "claimed"
        with pytest.raises(RecordError, match="already reported by app app"):
            h.dev("10.0.0.1", device(ep_name="collector"))
        assert self.app(h, "app-other", "10.0.0.1", b"") == UNCHANGED  # not its to delete
        assert h.report()["sub_devices"][0]["ep_name"] == "first"
        assert self.app(h, "app", "10.0.0.1", b"") == CHANGED
        self.app(h, "app-other", "10.0.0.1", device(ep_name="second"))
        assert h.report()["sub_devices"][0]["ep_name"] == "second"

    def test_a_collectors_address_is_not_an_apps(self) -> None:
        h = Harness()
        h.dev("10.0.0.1", device())
        with pytest.raises(RecordError, match="already reported by a collector"):
            self.app(h, "app", "10.0.0.1", device())

    def test_configured_devices_are_the_collectors_whoever_comes_first(self) -> None:
        h = Harness()
        h.state = GatewayState(SN, configured=frozenset({"10.0.0.9"}))
        h.send(TOPICS.gateway_info, info())
        with pytest.raises(RecordError, match="configured device"):
            self.app(h, "app", "10.0.0.9", device())
        assert h.dev("10.0.0.9", device()) == CHANGED

    def test_a_replay_forgets_a_claim_whose_record_is_gone(self) -> None:
        h = Harness()
        self.app(h, "app", "10.0.0.1", device())
        seen = {parse(TOPICS.gateway_info, PREFIX),
                parse(TOPICS.app_device_state("app-other", "10.0.0.1"), PREFIX)}
        assert h.state.retain_only(seen, h.clock).changed
        assert h.state.devices == {}
