"""One way to make a paho client for this project: credentials, last will, reconnects.

Every program (bridge, collectors, the publish command) gets its client here,
so they all behave alike towards the broker:
- the last will is `offline`, retained, and `online` is published after every
  connect (PITFALLS: paho threading and wills);
- `connect_async` + `loop_start`, so a program started before the broker keeps
  trying instead of dying, with a bounded reconnect backoff;
- `on_connect` callbacks registered with `on_connected` run after every
  (re)connect, which is where subscriptions belong;
- MQTT 5, so a broker that says why it closed a session is heard: ours makes
  each client's id its user name, and a second connection of the same user
  takes the session over. A lost connection is a WARNING (mosquitto 2.0.11
  closes a taken-over session without a reason code, so the message says what
  a repeated loss means);
- the last will fires at once (no MQTT 5 will delay): the broker is on
  loopback, where a lost connection means a dead or hung process, not a
  network blip, and its devices must turn offline within seconds;
- `ReplayFence` is the one way to learn that a subscription's retained
  replay is complete.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bridge.config import MqttSection
from bridge.logs import Damper

logger = logging.getLogger(__name__)

ConnectHook = Callable[[mqtt.Client], None]

SESSION_TAKEN_OVER = 0x8E  # MQTT 5 reason code of a DISCONNECT from the broker


class Connection:
    """A paho client running its own network thread, with an 'online' last will.

    `status_topic` gets `online` (retained) after each connect and `offline` as
    the last will; `close()` publishes `offline` itself before disconnecting.
    The connection also reads its status topic: anything but `online` there
    while it is connected (someone else wrote it) is answered with `online`
    again, and a WARNING.
    """

    def __init__(
        self,
        settings: MqttSection,
        client_id: str,
        status_topic: str | None = None,
        clean_start: bool = True,
        mqtt5: bool = True,
    ) -> None:
        self.settings = settings
        self.status_topic = status_topic
        self.connected = threading.Event()
        self.refusal: str | None = None  # why the broker refused the last CONNECT, if it did
        self._clean_start = clean_start
        self._mqtt5 = mqtt5
        self._hooks: list[ConnectHook] = []
        self._refusals = Damper(burst=3, window=300.0)  # paho retries every few seconds
        self._drops = Damper(burst=3, window=300.0)
        self._overwrites = Damper(burst=3, window=300.0)
        self.closing = False  # set before a disconnect of our own: not a loss to warn about
        # MQTT 5 by default: only it carries a PUBACK reason code (a publish the ACL
        # dropped is told from one the broker took), and a DISCONNECT's reason.
        # The broker replaces the client id with the user name
        # (use_username_as_clientid); the id still names the process elsewhere.
        client = (
            mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
            if mqtt5 else
            mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                        clean_session=clean_start, protocol=mqtt.MQTTv311)
        )
        password = settings.password()
        if settings.username:
            client.username_pw_set(settings.username, password)
        if status_topic:
            client.will_set(status_topic, b"offline", qos=1, retain=True)
            client.message_callback_add(status_topic, self._on_status)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self.client = client

    def on_connected(self, hook: ConnectHook) -> None:
        """Run `hook(client)` on the network thread after every successful connect."""
        self._hooks.append(hook)

    def start(self) -> None:
        """Connect in the background; returns at once, retries until the broker answers."""
        self.connect_async()
        self.client.loop_start()

    def connect_async(self) -> None:
        """Set where and how to connect; the network loop (paho's thread, or
        `bridge.rim`'s) makes the connection."""
        if self._mqtt5:
            self.client.connect_async(self.settings.host, self.settings.port,
                                      keepalive=self.settings.keepalive,
                                      clean_start=self._clean_start)
        else:
            self.client.connect_async(
                self.settings.host, self.settings.port, keepalive=self.settings.keepalive
            )

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def publish(
        self, topic: str, payload: bytes | str, retain: bool = False, qos: int | None = None
    ) -> mqtt.MQTTMessageInfo:
        """Publish; `qos` defaults to `[mqtt] qos` (events pass 0: they are not state)."""
        chosen = self.settings.qos if qos is None else qos
        return self.client.publish(topic, payload, qos=chosen, retain=retain)

    def close(self, timeout: float = 2.0) -> None:
        """Say `offline` (when connected), disconnect and stop the network thread."""
        self.closing = True
        if self.status_topic and self.connected.is_set():
            info = self.client.publish(self.status_topic, b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                logger.debug("offline status not confirmed before disconnect")
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks: network thread; cheap, never blocking ---------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
            allowed, suppressed = self._refusals.allow("refused")
            if allowed:
                logger.warning(
                    "broker %s:%s refused the connection: %s%s",
                    self.settings.host, self.settings.port, reason,
                    f" ({suppressed} more refusals)" if suppressed else "",
                )
            return
        logger.info("connected to broker %s:%s", self.settings.host, self.settings.port)
        self.refusal = None
        self.connected.set()
        if self.status_topic:
            client.publish(self.status_topic, b"online", qos=1, retain=True)
            # After the publish: the replay of the retained status is our `online`.
            client.subscribe(self.status_topic, qos=0)
        for hook in self._hooks:
            hook(client)

    def _on_status(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.payload == b"online" or self.closing or not self.connected.is_set():
            return
        client.publish(msg.topic, b"online", qos=1, retain=True)
        allowed, suppressed = self._overwrites.allow("overwritten")
        if allowed:
            logger.warning("our status %s was overwritten with %r; said online again%s",
                           msg.topic, bytes(msg.payload[:16]),
                           f" ({suppressed} more)" if suppressed else "")

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if self.closing or not was:
            if was:
                logger.info("disconnected from broker: %s", reason)
            return
        allowed, suppressed = self._drops.allow("lost")
        if not allowed:
            return
        more = f" ({suppressed} more)" if suppressed else ""
        if reason == SESSION_TAKEN_OVER:
            logger.warning(
                "the broker closed our session: another connection of broker user %r took "
                "it over (two processes share one user?); reconnecting%s",
                self.settings.username, more,
            )
        else:
            # mosquitto 2.0.11 closes a taken-over session without saying why.
            logger.warning(
                "disconnected from broker unexpectedly (%s); reconnecting%s. If this repeats "
                "every few seconds, another process connects as broker user %r and takes the "
                "session over: give each process its own user",
                reason, more, self.settings.username,
            )


class ReplayFence:
    """Subscribes to a filter and tells when its retained replay is complete.

    The filter is followed by a second SUBSCRIBE, to a topic nobody publishes
    on: mosquitto sends the first subscription's retained messages before the
    second SUBACK, so that SUBACK marks the end of the replay, with no guess at
    how long to wait. Both are QoS 0, since a QoS 1 replay is cut short at
    max_inflight + max_queued (PITFALLS). A filter the broker refuses (its ACL)
    never completes: an empty replay must not pass for "nothing retained".

    Install `on_subscribe` as the client's callback and call `subscribe` only
    from an `on_connected` hook: both then run on paho's network thread, which
    reads the SUBACKs only after the hook has returned.
    """

    def __init__(
        self, topic_filter: str, fence_topic: str, on_complete: Callable[[], None]
    ) -> None:
        self.topic_filter = topic_filter
        self.fence_topic = fence_topic
        self._on_complete = on_complete
        self._filter_mid: int | None = None
        self._fence_mid: int | None = None
        self._granted = False
        self.refused = False  # the broker refused the filter at the last connect
        self._refusals = Damper(burst=1, window=300.0)  # paho resubscribes at every reconnect

    def subscribe(self, client: mqtt.Client) -> None:
        self._granted = False
        _, self._filter_mid = client.subscribe(self.topic_filter, qos=0)
        _, self._fence_mid = client.subscribe(self.fence_topic, qos=0)

    def on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, codes: list[Any], _props: Any
    ) -> None:
        if mid == self._filter_mid:
            self._granted = bool(codes) and not any(code.is_failure for code in codes)
            self.refused = not self._granted
            if self.refused and self._refusals.allow("refused")[0]:
                logger.error(
                    "broker refused the subscription to %s (%s): check the broker's ACL "
                    "for this user", self.topic_filter, ", ".join(str(c) for c in codes),
                )
        elif mid == self._fence_mid and self._granted:
            self._on_complete()
