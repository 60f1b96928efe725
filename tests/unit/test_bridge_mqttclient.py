"""Tests for bridge.mqttclient.ReplayFence and the Connection's status guard against a
fake client (the real broker's side is in tests/integration: every report after a
replay is complete; who may write a status)."""

from __future__ import annotations

import itertools
import logging

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from bridge.config import MqttSection
from bridge.mqttclient import Connection, ReplayFence

GRANTED = [ReasonCode(PacketTypes.SUBACK, identifier=0)]
REFUSED = [ReasonCode(PacketTypes.SUBACK, identifier=0x80)]


class FakeClient:
    """Records subscriptions and hands out message ids as paho does."""

    def __init__(self) -> None:
        self.subscribed: list[tuple[str, int]] = []
        self._mids = itertools.count(1)

    def subscribe(self, topic: str, qos: int = 0) -> tuple[int, int]:
        self.subscribed.append((topic, qos))
        return 0, next(self._mids)


class Rig:
    def __init__(self) -> None:
        self.completed = 0
        self.fence = ReplayFence("se3/SN/#", "se3/SN/bridge/fence", self._complete)
        self.client = FakeClient()

    def _complete(self) -> None:
        self.completed += 1

    def connect(self) -> tuple[int, int]:
        """Subscribe as after a connect; return the (filter, fence) message ids."""
        self.fence.subscribe(self.client)  # type: ignore[arg-type]
        return len(self.client.subscribed) - 1, len(self.client.subscribed)

    def suback(self, mid: int, codes: list[ReasonCode]) -> None:
        self.fence.on_subscribe(None, None, mid, codes, None)  # type: ignore[arg-type]


class TestReplayFence:
    def test_filter_then_fence_both_at_qos_0(self) -> None:
        """QoS 0: a QoS 1 replay is cut short by the broker's queue limits."""
        rig = Rig()
        rig.connect()

        assert rig.client.subscribed == [("se3/SN/#", 0), ("se3/SN/bridge/fence", 0)]

    def test_fence_suback_completes_the_replay(self) -> None:
        rig = Rig()
        filter_mid, fence_mid = rig.connect()

        rig.suback(filter_mid, GRANTED)
        assert rig.completed == 0
        rig.suback(fence_mid, GRANTED)

        assert rig.completed == 1
        assert not rig.fence.refused

    def test_other_subacks_are_ignored(self) -> None:
        rig = Rig()
        _, fence_mid = rig.connect()

        rig.suback(fence_mid + 100, GRANTED)

        assert rig.completed == 0

    def test_refused_filter_never_completes_and_says_why(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An ACL that refuses the filter gives an empty replay: not "nothing retained"."""
        rig = Rig()
        filter_mid, fence_mid = rig.connect()

        with caplog.at_level(logging.ERROR, "bridge.mqttclient"):
            rig.suback(filter_mid, REFUSED)
            rig.suback(fence_mid, GRANTED)

        assert rig.completed == 0
        assert rig.fence.refused
        assert "refused the subscription to se3/SN/#" in caplog.text
        assert "ACL" in caplog.text

    def test_each_connect_starts_over(self) -> None:
        """A refusal before a reconnect does not stick; a grant before one does not either."""
        rig = Rig()
        filter_mid, fence_mid = rig.connect()
        rig.suback(filter_mid, REFUSED)
        rig.suback(fence_mid, GRANTED)

        filter_mid, fence_mid = rig.connect()
        rig.suback(fence_mid, GRANTED)  # the new filter's SUBACK not seen yet
        assert rig.completed == 0
        rig.suback(filter_mid, GRANTED)
        rig.suback(fence_mid, GRANTED)

        assert rig.completed == 1
        assert not rig.fence.refused


class Publisher:
    """Records what a Connection publishes through the client it is handed."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.published.append((topic, payload, qos, retain))


class TestStatusGuard:
    """A daemon says `online` again when someone overwrites its status (the broker's ACL
    lets only its own user write there; tests/integration/test_broker.py)."""

    STATUS = "se3/SN/collectors/devices/status"

    def overwrite(self, payload: bytes, connected: bool = True, closing: bool = False
                  ) -> tuple[Publisher, Connection]:
        conn = Connection(MqttSection(), "se3-test", self.STATUS)
        if connected:
            conn.connected.set()
        conn.closing = closing
        client = Publisher()
        message = mqtt.MQTTMessage(topic=self.STATUS.encode())
        message.payload = payload
        conn._on_status(client, None, message)  # type: ignore[arg-type]
        return client, conn

    def test_an_overwrite_is_answered_with_online_and_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        client, _ = self.overwrite(b"offline")
        assert client.published == [(self.STATUS, b"online", 1, True)]
        assert "was overwritten with b'offline'; said online again" in caplog.text

    @pytest.mark.parametrize(("payload", "connected", "closing"), [
        (b"online", True, False),   # our own, replayed
        (b"offline", True, True),   # our own clean stop
        (b"offline", False, False),  # not connected: the next connect says online
    ])
    def test_nothing_to_answer(self, payload: bytes, connected: bool, closing: bool) -> None:
        client, _ = self.overwrite(payload, connected, closing)
        assert client.published == []
