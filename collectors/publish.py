"""`se3-collector publish device|remove`: one sub-device record from a script or an app.

The record is checked with the bridge's own parser before it is sent, so what
the bridge would refuse is refused here (RecordError, exit 2) with the reason.
The command connects without status topic or will (the broker's `app` user may
write only `devices/+/state`), waits for the broker's acknowledgement and
returns.

With MQTT 3.1.1 the broker acknowledges a publish that its ACL drops, so a
user without write access to the topic sees success here and nothing arrives.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from bridge.addresses import canonical_ip as bridge_canonical_ip
from bridge.config import Config
from bridge.errors import RecordError
from bridge.records import parse_record
from bridge.topics import Kind, Topics
from collectors.devices import ep_ext_data
from collectors.session import connect_once, wait_published

logger = logging.getLogger(__name__)


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
    parse_record(Kind.DEVICE_STATE, payload, key=ip, max_size=max_size)
    return payload


def send(config: Config, topic: str, payload: bytes, timeout: float) -> None:
    """Publish one retained message and wait for the broker's acknowledgement."""
    conn = connect_once(config.mqtt, "publish", timeout)
    try:
        wait_published([conn.publish(topic, payload, retain=True)], timeout)
    finally:
        conn.close()


def publish_device(config: Config, update: DeviceUpdate, ts: float, timeout: float) -> None:
    """Validate and publish one device record."""
    config.require("gateway.sn")
    payload = device_payload(update, ts, config.bridge.max_payload)
    ip = canonical_ip(update.ip)
    send(config, _topic(config, ip), payload, timeout)
    logger.info("device %s published as %s", ip, update.status)


def remove_device(config: Config, ip: str, timeout: float) -> None:
    """Delete one device record (an empty retained payload)."""
    config.require("gateway.sn")
    ip = canonical_ip(ip)
    send(config, _topic(config, ip), b"", timeout)
    logger.info("device %s record deleted", ip)


def _topic(config: Config, ip: str) -> str:
    return Topics(config.mqtt.topic_prefix, config.gateway.serial()).device_state(ip)
