"""`se3-collector publish device|remove`: one sub-device record from a script or an app.

The record is checked with the bridge's own parser before it is sent, so what
the bridge would refuse is refused here (RecordError, exit 2) with the reason.
The command connects without status topic or will, waits for the broker's
acknowledgement and returns.

Where the record goes follows the broker user: an app user (`app`,
`app-NAME`) writes in its own space, `apps/<user>/devices/{ip}/state`, where
the bridge takes the user as the record's `source`; the `collector` user
writes the collectors' `devices/{ip}/state`.

It speaks MQTT 5, because only MQTT 5 tells a publish the broker dropped from
one it took: mosquitto acknowledges a publish its ACL denies as if it stored it
under MQTT 3.1.1, and answers 0x87 "Not authorized" in the PUBACK under MQTT 5.
A refused publish is a `PublishRefused` (exit 1) naming the topic and the user.

`publish remove` first looks for the record (a subscription to the user's own
device records — an app user reads its own space, the `collector` user the
collectors' — the broker replays retained records before it acknowledges a
second, fence subscription), so that removing a device that has no record says
so (`NoRecord`, exit 1) instead of claiming a deletion.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from bridge.addresses import canonical_ip as bridge_canonical_ip
from bridge.config import Config, MqttSection
from bridge.errors import BrokerError, RecordError, Se3Error
from bridge.mqttclient import Connection, ReplayFence
from bridge.records import parse_record
from bridge.topics import APP_USER, Kind, Topics
from collectors.devices import ep_ext_data
from collectors.session import connect_once, wait_published

logger = logging.getLogger(__name__)

_NOT_AUTHORIZED = 0x87  # the MQTT 5 reason code mosquitto gives an ACL-denied publish


@dataclass(frozen=True, slots=True)
class DeviceUpdate:
    """What `publish device` was asked to say; None means "not given"."""

    ip: str
    status: str
    type: str | None = None
    location: str | None = None
    name: str = ""
    url: str = ""
    ttl: float | None = None
    source: str | None = None
    sw_version: str = ""  # for ep_ext_data, sent by payload version v2
    group_name: str = ""


# The record's keys as `publish device` takes them.
FLAGS = {
    "ep_status": "--status", "ep_type": "--type", "ep_location": "--location",
    "ep_ip": "--ip", "ep_name": "--name", "ep_url": "--url", "ttl": "--ttl", "ts": "ts",
    "source": "--source", "ep_ext_data.sw_version": "--sw-version",
    "ep_ext_data.group_name": "--group-name",
}


def canonical_ip(text: str) -> str:
    """`text` as an IP address in canonical form, or RecordError."""
    try:
        return bridge_canonical_ip(text.strip())
    except ValueError:
        raise RecordError(f"not an IP address: {text!r}", field="--ip") from None


def device_payload(update: DeviceUpdate, ts: float, max_size: int = 16_384) -> bytes:
    """The record as JSON, validated as the bridge would; RecordError if refused."""
    ip = canonical_ip(update.ip)
    record: dict[str, object] = {"ep_status": update.status}
    if update.type is not None:
        record["ep_type"] = update.type
    if update.location is not None:
        record["ep_location"] = update.location
    record.update(ep_ip=ip, ep_name=update.name)
    if update.url:
        record["ep_url"] = update.url
    extra = ep_ext_data(update.sw_version, update.group_name)
    if extra:
        record["ep_ext_data"] = extra
    record["ts"] = ts
    if update.ttl is not None:
        record["ttl"] = update.ttl
    if update.source is not None:
        record["source"] = update.source
    payload = orjson.dumps(record)
    try:
        parse_record(Kind.DEVICE_STATE, payload, key=ip, max_size=max_size)
    except RecordError as exc:
        # Said in the command's own words: the flag, not the record's key.
        flag = FLAGS.get(exc.field, exc.field)
        raise RecordError(exc.reason, field=flag, code=exc.code) from None
    return payload


class PublishRefused(BrokerError):
    """The broker answered a publish with a failure reason code (MQTT 5 PUBACK)."""


class NoRecord(Se3Error):
    """`publish remove` of a device that has no record on the broker."""


def _refused(settings: MqttSection, topic: str, reason: ReasonCode) -> PublishRefused:
    user = settings.username or "anonymous"
    if reason.value == _NOT_AUTHORIZED:
        return PublishRefused(
            f"not authorised to write {topic} as {user} (the app or collector role can)")
    return PublishRefused(f"the MQTT broker refused the publish to {topic} as {user}: {reason}")


class _Session:
    """One MQTT 5 connection that publishes retained records and checks each PUBACK.

    With `look_for` (a topic), it also subscribes to it first and keeps the
    retained payload the broker replays, if any.
    """

    def __init__(self, config: Config, timeout: float, look_for: str | None = None) -> None:
        self._config = config
        self._timeout = timeout
        self._acks: dict[int, ReasonCode] = {}
        self._look_for = look_for
        self.found: bytes | None = None  # the retained payload of `look_for`
        self._replayed = threading.Event()
        self._fence: ReplayFence | None = None
        if look_for is not None:
            topics = Topics(config.mqtt.topic_prefix, config.gateway.serial())
            self._fence = ReplayFence(_topic(config, "+"), topics.fence, self._replayed.set)
        self.conn = connect_once(config.mqtt, "publish", timeout, mqtt5=True,
                                 before_start=self._install)

    # paho callbacks: network thread; they only store what came (STYLE, PITFALLS).
    def _install(self, conn: Connection) -> None:
        conn.client.on_publish = self._on_publish
        if self._fence is not None:
            conn.client.on_message = self._on_message
            conn.client.on_subscribe = self._fence.on_subscribe
            conn.on_connected(self._fence.subscribe)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode,
                    _p: Any) -> None:
        self._acks[mid] = reason

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and msg.topic == self._look_for:
            self.found = bytes(msg.payload) or None

    def replayed(self) -> bool:
        """Wait for the retained replay of `look_for`; False if the broker refused to show it."""
        end = time.monotonic() + self._timeout
        while not self._replayed.is_set():
            if self._fence is not None and self._fence.refused:
                return False
            left = end - time.monotonic()
            if left <= 0:
                raise BrokerError(f"the MQTT broker did not answer a subscription to "
                                  f"{self._look_for} within {self._timeout:g} s")
            self._replayed.wait(min(left, 0.02))
        return True

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish retained at QoS 1 (so there is a PUBACK); PublishRefused on a failure code."""
        info = self.conn.publish(topic, payload, retain=True, qos=1)
        wait_published([info], self._timeout)
        reason = self._acks.get(info.mid)
        if reason is not None and reason.is_failure:
            raise _refused(self._config.mqtt, topic, reason)

    def close(self) -> None:
        self.conn.close()


def send(config: Config, topic: str, payload: bytes, timeout: float) -> None:
    """Publish one retained message; PublishRefused unless the broker took it."""
    session = _Session(config, timeout)
    try:
        session.publish(topic, payload)
    finally:
        session.close()


def publish_device(config: Config, update: DeviceUpdate, ts: float, timeout: float) -> None:
    """Validate and publish one device record."""
    config.require("gateway.sn")
    user = config.mqtt.username or ""
    if APP_USER.fullmatch(user) and update.source not in (None, user):
        raise RecordError(f"an app's records are its own: as broker user {user}, leave "
                          f"--source out or give {user!r}", field="--source")
    payload = device_payload(update, ts, config.bridge.max_payload)
    ip = canonical_ip(update.ip)
    if APP_USER.fullmatch(user) and ip in {canonical_ip(d.ip) for d in config.devices}:
        raise RecordError(f"device {ip} is configured ([[devices]] in the config): the devices "
                          "collector publishes it, and the bridge refuses an app's record for "
                          "it", field="--ip", code="claimed")
    send(config, _topic(config, ip), payload, timeout)
    logger.info("device %s published as %s", ip, update.status)


def remove_device(config: Config, ip: str, timeout: float) -> None:
    """Delete one device record (an empty retained payload); NoRecord if there was none.

    The empty payload is published even then: it costs nothing, and the broker's
    answer tells whether this user may write the topic at all.
    """
    config.require("gateway.sn")
    ip = canonical_ip(ip)
    topic = _topic(config, ip)
    session = _Session(config, timeout, look_for=topic)
    try:
        visible = session.replayed()
        session.publish(topic, b"")
    finally:
        session.close()
    if not visible:
        logger.info("device %s: delete published (whether it had a record is unknown: "
                    "broker user %r may not read its device records)", ip, config.mqtt.username)
    elif session.found is None:
        raise NoRecord(f"device {ip} has no record on the broker for gateway "
                       f"{config.gateway.serial()}: nothing to remove (check --ip)")
    else:
        logger.info("device %s record deleted", ip)


def _topic(config: Config, ip: str) -> str:
    """The record's topic: the app user's own space, or the collectors' devices/."""
    topics = Topics(config.mqtt.topic_prefix, config.gateway.serial())
    user = config.mqtt.username or ""
    if APP_USER.fullmatch(user):
        return topics.app_device_state(user, ip)
    return topics.device_state(ip)
