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
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bridge.config import MqttSection
from console.errors import PublishError

logger = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], None]
_ACK_TIMEOUT = 5.0


class BrokerLink:
    """A paho MQTT 5 client subscribed to `{base}/#` that hands every message to `on_message`."""

    def __init__(self, settings: MqttSection, base: str, on_message: OnMessage) -> None:
        self.settings = settings
        self.base = base
        self.connected = threading.Event()
        self._on_message_cb = on_message
        self._acks: dict[int, ReasonCode | None] = {}
        self._cond = threading.Condition()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"se3-console-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv5,
        )
        if settings.username:
            client.username_pw_set(settings.username, settings.password())
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self.client = client

    def start(self) -> None:
        """Connect in the background; paho keeps retrying until the broker answers."""
        self.client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive,
            clean_start=True,
        )
        self.client.loop_start()

    def is_connected(self) -> bool:
        return self.connected.is_set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: str, retain: bool) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK; PublishError unless it took it."""
        if not self.connected.is_set():
            raise PublishError(503, "not connected to the MQTT broker; nothing was changed")
        with self._cond:
            info = self.client.publish(topic, payload.encode("utf-8"), qos=1, retain=retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise PublishError(503, f"could not publish to the MQTT broker: "
                                        f"{mqtt.error_string(info.rc)}")
            self._acks.setdefault(info.mid, None)
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

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            logger.warning("broker %s:%s refused the connection: %s",
                           self.settings.host, self.settings.port, reason)
            return
        logger.info("connected to broker %s:%s", self.settings.host, self.settings.port)
        # Subscribed on every connect, so a reconnect brings the retained state back.
        # QoS 0: mosquitto cuts a QoS 1 retained replay short (max_queued_messages).
        client.subscribe(f"{self.base}/#", qos=0)
        self.connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if self.connected.is_set():
            logger.warning("disconnected from broker: %s", reason)
        self.connected.clear()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._on_message_cb(msg.topic, bytes(msg.payload))

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        with self._cond:
            self._acks[mid] = reason
            self._cond.notify_all()
