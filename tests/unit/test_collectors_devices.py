"""The device collector's pure parts: records, ownership, the removal decision, the scan."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from bridge.config import DeviceEntry
from bridge.records import DeviceState, parse_record
from bridge.topics import Kind, Topics
from collectors.devices import RetainedScan, device_record, owned_ip, stale_topics

TOPICS = Topics("se3", "SN1")
CAMERA = DeviceEntry(
    ip="127.0.0.11", name="gate-cam", location="cfb19e96", type="2",
    url="rtsp://127.0.0.11:8554/ch2", probe="rtsp",
)
TURNSTILE = DeviceEntry(ip="127.0.0.13", location="218ad054", type="0", probe="tcp:8554")


def ours(ip: str, **extra: Any) -> bytes:
    return orjson.dumps({"ep_status": "online", "ep_ip": ip, "source": "devices", **extra})


class TestDeviceRecord:
    @pytest.mark.parametrize("online", [True, False])
    def test_parses_as_the_bridge_parses_it(self, online: bool) -> None:
        """The record is a valid DeviceState for its topic, with every configured field."""
        record = device_record(CAMERA, online, ts=1_700_000_000.5, ttl=90.0)
        parsed = parse_record(Kind.DEVICE_STATE, orjson.dumps(record), key=CAMERA.ip)
        assert isinstance(parsed, DeviceState)
        assert parsed.ep_status == ("online" if online else "offline")
        assert (parsed.ep_type, parsed.ep_location, parsed.ep_ip) == ("2", "cfb19e96", CAMERA.ip)
        assert (parsed.ep_name, parsed.ep_url) == ("gate-cam", "rtsp://127.0.0.11:8554/ch2")
        assert (parsed.ts, parsed.ttl, parsed.source) == (1_700_000_000.5, 90.0, "devices")

    def test_ep_ext_data_only_when_given(self) -> None:
        """sw_version / group_name from [[devices]] go into ep_ext_data; none, no key."""
        entry = DeviceEntry(ip="127.0.0.11", location="L", type="2", sw_version="V1.0")
        record = device_record(entry, True, ts=1.0, ttl=90.0)

        assert record["ep_ext_data"] == {"sw_version": "V1.0"}
        assert "ep_ext_data" not in device_record(TURNSTILE, True, ts=1.0, ttl=90.0)
        parsed = parse_record(Kind.DEVICE_STATE, orjson.dumps(record), key=entry.ip)
        assert isinstance(parsed, DeviceState)
        assert parsed.ep_ext_data is not None
        assert parsed.ep_ext_data.sw_version == "V1.0"

    def test_keys_in_order_and_url_only_when_set(self) -> None:
        """ep_url is left out for a device without one; ep_name is "" then."""
        record = device_record(TURNSTILE, False, ts=1.0, ttl=90.0)
        assert list(record) == [
            "ep_status", "ep_type", "ep_location", "ep_ip", "ep_name", "ts", "ttl", "source",
        ]
        assert record["ep_name"] == ""
        parse_record(Kind.DEVICE_STATE, orjson.dumps(record), key=TURNSTILE.ip)


class TestOwnership:
    def test_our_record(self) -> None:
        """A record with source "devices" is ours; the IP comes from the topic."""
        assert owned_ip(TOPICS.device_state("127.0.0.12"), ours("127.0.0.12")) == "127.0.0.12"

    def test_ipv6_topic_is_canonical(self) -> None:
        """The topic's IP is compared in canonical form."""
        assert owned_ip("se3/SN1/devices/fe80:0::1/state", ours("fe80::1")) == "fe80::1"

    @pytest.mark.parametrize(
        ("topic", "payload"),
        [
            (TOPICS.device_state("127.0.0.12"), ours("127.0.0.12", source="my-app")),
            (TOPICS.device_state("127.0.0.12"), b'{"ep_status": "online"}'),
            (TOPICS.device_state("127.0.0.12"), b""),
            (TOPICS.device_state("127.0.0.12"), b"not json"),
            (TOPICS.device_state("127.0.0.12"), b'["source", "devices"]'),
            (TOPICS.device_state("not-an-ip"), ours("127.0.0.12")),
            (TOPICS.gateway_info, ours("127.0.0.12")),
        ],
    )
    def test_not_ours(self, topic: str, payload: bytes) -> None:
        """Another publisher's record, a deletion, garbage or another topic is not ours."""
        assert owned_ip(topic, payload) is None


class TestStaleTopics:
    def test_only_unconfigured_ips(self) -> None:
        """Our records for IPs still configured stay; the others are stale, in topic order."""
        held = {
            TOPICS.device_state("127.0.0.11"): "127.0.0.11",
            TOPICS.device_state("127.0.0.14"): "127.0.0.14",
            TOPICS.device_state("127.0.0.12"): "127.0.0.12",
        }
        assert stale_topics(held, {"127.0.0.11"}) == [
            TOPICS.device_state("127.0.0.12"), TOPICS.device_state("127.0.0.14"),
        ]

    def test_nothing_held(self) -> None:
        """An empty broker: nothing to delete."""
        assert stale_topics({}, {"127.0.0.11"}) == []


FENCE = f"{TOPICS.base}/collectors/devices/fence"
GRANTED = [ReasonCode(PacketTypes.SUBACK, identifier=0)]


class FakeClient:
    """Records what RetainedScan asks of a paho client, delivers messages and SUBACKs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.callbacks: dict[str, Any] = {}
        self.on_subscribe: Any = None
        self._mids = itertools.count(1)
        self.mids: dict[str, int] = {}

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self.callbacks[sub] = callback

    def subscribe(self, topic: str, qos: int) -> tuple[int, int]:
        self.calls.append(("subscribe", topic))
        self.mids[topic] = next(self._mids)
        return 0, self.mids[topic]

    def unsubscribe(self, topics: list[str]) -> None:
        self.calls.append(("unsubscribe", topics))

    def deliver(self, topic: str, payload: bytes) -> None:
        msg = mqtt.MQTTMessage(topic=topic.encode())
        msg.payload = payload
        self.callbacks[TOPICS.device_state("+")](self, None, msg)

    def suback(self, topic: str) -> None:
        """The broker's SUBACK of the last subscription to `topic`."""
        self.on_subscribe(self, None, self.mids[topic], GRANTED, None)

    def replayed(self) -> None:
        """Both SUBACKs: the records', then the fence's, which ends the replay."""
        self.suback(TOPICS.device_state("+"))
        self.suback(FENCE)


def started_scan() -> tuple[RetainedScan, FakeClient, list[int]]:
    done: list[int] = []
    scan = RetainedScan(TOPICS, FENCE, on_done=lambda: done.append(1))
    client = FakeClient()
    scan.listen(client)  # type: ignore[arg-type]
    scan.start(client)  # type: ignore[arg-type]
    return scan, client, done


class TestRetainedScan:
    def test_subscribes_records_first_then_the_fence(self) -> None:
        """The fence subscription comes second: its SUBACK marks the end of the replay, and
        the status topic is left alone (the Connection watches it)."""
        _, client, _ = started_scan()
        assert client.calls == [("subscribe", "se3/SN1/devices/+/state"), ("subscribe", FENCE)]

    def test_result_after_the_fence(self) -> None:
        """Our records seen before the fence's SUBACK are the result, given once."""
        scan, client, done = started_scan()
        client.deliver(TOPICS.device_state("127.0.0.11"), ours("127.0.0.11"))
        client.deliver(TOPICS.device_state("127.0.0.20"), ours("127.0.0.20", source="app"))
        client.deliver(TOPICS.device_state("127.0.0.12"), ours("127.0.0.12"))
        client.suback(TOPICS.device_state("+"))
        assert scan.take() is None
        client.suback(FENCE)
        assert done == [1]
        assert scan.done.is_set()
        assert scan.take() == {
            TOPICS.device_state("127.0.0.11"): "127.0.0.11",
            TOPICS.device_state("127.0.0.12"): "127.0.0.12",
        }
        assert scan.take() is None
        assert client.calls[-1] == ("unsubscribe", ["se3/SN1/devices/+/state", FENCE])

    def test_deleted_or_taken_over_during_replay(self) -> None:
        """A record deleted or replaced by another publisher during the scan is not ours."""
        scan, client, _ = started_scan()
        topic = TOPICS.device_state("127.0.0.12")
        client.deliver(topic, ours("127.0.0.12"))
        client.deliver(topic, b"")
        client.deliver(TOPICS.device_state("127.0.0.14"), ours("127.0.0.14"))
        client.deliver(TOPICS.device_state("127.0.0.14"), ours("127.0.0.14", source="app"))
        client.replayed()
        assert scan.take() == {}

    def test_messages_after_the_fence_are_ignored(self) -> None:
        """After the scan, records and further SUBACKs change nothing."""
        scan, client, done = started_scan()
        client.replayed()
        client.deliver(TOPICS.device_state("127.0.0.11"), ours("127.0.0.11"))
        client.suback(FENCE)
        assert done == [1]
        assert scan.take() == {}

    def test_a_new_connection_starts_afresh(self) -> None:
        """Each connect scans again from nothing."""
        scan, client, done = started_scan()
        client.deliver(TOPICS.device_state("127.0.0.11"), ours("127.0.0.11"))
        client.replayed()
        scan.start(client)  # type: ignore[arg-type]
        assert not scan.done.is_set()
        client.replayed()
        assert scan.take() == {}
        assert done == [1, 1]

