"""The console's one connection to the local broker: it reads the gateway's topics and
publishes the config topics, knowing whether the broker took each one.

It speaks MQTT 5 because only there does the broker's PUBACK say "not
authorized": under 3.1.1 mosquitto acks a refused QoS 1 publish as if it had
been taken, and a call must never answer success for a change that was dropped.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bridge.config import MqttSection
from bridge.mqttclient import Connection
from console.errors import PublishError

logger = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], None]
_ACK_TIMEOUT = 5.0


class BrokerLink:
    """The project's MQTT 5 `Connection`, subscribed to `{base}/#` after every connect,
    handing every message to `on_message`."""

    def __init__(self, settings: MqttSection, base: str, on_message: OnMessage) -> None:
        self.base = base
        self._on_message_cb = on_message
        self._acks: dict[int, ReasonCode | None] = {}
        self._cond = threading.Condition()
        self.conn = Connection(settings, f"se3-console-{secrets.token_hex(4)}", mqtt5=True)
        self.connected = self.conn.connected
        self.conn.client.on_message = self._on_message
        self.conn.client.on_publish = self._on_publish
        self.conn.on_connected(self._subscribe)

    def start(self) -> None:
        """Connect in the background; paho keeps retrying until the broker answers."""
        self.conn.start()

    def is_connected(self) -> bool:
        return self.connected.is_set()

    def close(self) -> None:
        self.conn.close()

    def publish(self, topic: str, payload: str, retain: bool) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK; PublishError unless it took it."""
        if not self.connected.is_set():
            raise PublishError(503, "not connected to the MQTT broker; nothing was changed")
        with self._cond:
            info = self.conn.publish(topic, payload.encode("utf-8"), retain=retain, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise PublishError(503, f"could not publish to the MQTT broker: "
                                        f"{mqtt.error_string(info.rc)}")
            self._acks[info.mid] = None  # a late ack of an earlier use of this mid is stale
            acked = self._cond.wait_for(lambda: self._acks.get(info.mid) is not None,
                                        _ACK_TIMEOUT)
            reason = self._acks.pop(info.mid, None)
        if not acked or reason is None:
            raise PublishError(504, f"the MQTT broker did not acknowledge {topic} within "
                                    f"{_ACK_TIMEOUT:g} s; the change may not be in force")
        if reason.is_failure:
            logger.warning("broker refused %s: %s", topic, reason)
            raise PublishError(502, f"the MQTT broker refused {topic}: {reason}")
        logger.info("published %s (%d bytes, retained=%s)", topic, len(payload), retain)

    # -- paho callbacks: network thread; cheap, never blocking ---------------

    def _subscribe(self, client: mqtt.Client) -> None:
        # On every connect, so a reconnect brings the retained state back. QoS 0:
        # mosquitto cuts a QoS 1 retained replay short (max_queued_messages).
        client.subscribe(f"{self.base}/#", qos=0)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._on_message_cb(msg.topic, bytes(msg.payload))

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        with self._cond:
            self._acks[mid] = reason
            self._cond.notify_all()
