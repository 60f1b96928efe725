"""The sub-device collector: probes the `[[devices]]` registry, keeps `devices/{ip}/state` true.

Every `collectors.probe_interval` seconds all devices are probed at once (up
to `probe_concurrency` in flight, each bounded by `probe_timeout`), and each
record is published, retained, as soon as its probe answers: a change reaches
the broker at once, and every cycle refreshes `ts`. Records carry `source:
"devices"` and `ttl = ttl_factor * probe_interval + probe_timeout * waves`,
where `waves = ceil(devices / probe_concurrency)` bounds how long one cycle can
take when every probe times out: dead devices never make the live ones flap.
The last will is on `collectors/devices/status`.

A device taken out of the config must not linger as a retained record. After
each connect the collector subscribes to `devices/+/state`, then to a fence
topic nobody publishes on (`bridge.mqttclient.ReplayFence`): mosquitto sends
the first subscription's retained messages before the second SUBACK, so that
SUBACK ends the replay without a guess at how long to wait; then every record
with our `source` whose IP is no longer configured is deleted. (The status
topic is the Connection's: it says `online` again if someone overwrites it.)
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from bridge.addresses import canonical_ip
from bridge.config import Config, DeviceEntry
from bridge.mqttclient import Connection, ReplayFence
from bridge.topics import Topics
from collectors.probes import probe_all
from collectors.session import client_id, connect_once, wait_published
from collectors.ticker import Ticker

logger = logging.getLogger(__name__)

NAME = SOURCE = "devices"


def device_record(device: DeviceEntry, online: bool, ts: float, ttl: float) -> dict[str, object]:
    """The `devices/{ip}/state` record for one probe result."""
    record: dict[str, object] = {
        "ep_status": "online" if online else "offline",
        "ep_type": device.type,
        "ep_location": device.location,
        "ep_ip": device.ip,
        "ep_name": device.name,
    }
    if device.url:
        record["ep_url"] = device.url
    extra = ep_ext_data(device.sw_version, device.group_name)
    if extra:
        record["ep_ext_data"] = extra
    record.update(ts=ts, ttl=ttl, source=SOURCE)
    return record


def ep_ext_data(sw_version: str, group_name: str) -> dict[str, str]:
    """A record's `ep_ext_data` from the values given ("" is not given); {} for none."""
    extra = {"sw_version": sw_version, "group_name": group_name}
    return {key: value for key, value in extra.items() if value}


def owned_ip(topic: str, payload: bytes | bytearray) -> str | None:
    """The device IP of a `.../devices/{ip}/state` record published by us, else None."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[-1] != "state" or parts[-3] != "devices" or not payload:
        return None
    try:
        ip = canonical_ip(parts[-2])
        record = orjson.loads(payload)
    except (ValueError, orjson.JSONDecodeError):
        return None
    return ip if isinstance(record, dict) and record.get("source") == SOURCE else None


def stale_topics(held: Mapping[str, str], configured: Collection[str]) -> list[str]:
    """Topics of our records (`held`: topic -> IP) whose IP is no longer configured."""
    return sorted(topic for topic, ip in held.items() if ip not in configured)


class RetainedScan:
    """Which of our device records the broker holds, learnt from its retained replay.

    The replay ends at the SUBACK of a fence subscription (`ReplayFence`), so
    the status topic is left to the Connection, which watches it.
    `start` (connect hook) and the callbacks run on the paho network thread:
    they only update this in-memory state and never block. The worker takes
    the finished result with `take()`.
    """

    def __init__(self, topics: Topics, fence_topic: str, on_done: Callable[[], None]) -> None:
        self._filter = topics.device_state("+")
        self._fence = ReplayFence(self._filter, fence_topic, self._complete)
        self._on_done = on_done
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}
        self._scanning = False
        self._result: dict[str, str] | None = None
        self._client: mqtt.Client | None = None
        self.done = threading.Event()

    def listen(self, client: mqtt.Client) -> None:
        """Route the records and the SUBACKs here; once per client."""
        client.message_callback_add(self._filter, self._on_record)
        client.on_subscribe = self._fence.on_subscribe

    def start(self, client: mqtt.Client) -> None:
        """Subscribe (records, then the fence) and begin a scan; an `on_connected` hook."""
        with self._lock:
            self._held = {}
            self._scanning = True
            self._client = client
            self.done.clear()
        # QoS 0: a QoS 1 replay is cut short by the broker's queue limits (PITFALLS).
        self._fence.subscribe(client)

    def take(self) -> dict[str, str] | None:
        """The records found by the last finished scan (topic -> IP), once; else None."""
        with self._lock:
            result, self._result = self._result, None
            return result

    def _on_record(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        ip = owned_ip(msg.topic, msg.payload)
        with self._lock:
            if not self._scanning:
                return
            if ip is None:
                self._held.pop(msg.topic, None)
            else:
                self._held[msg.topic] = ip

    def _complete(self) -> None:
        with self._lock:
            if not self._scanning:
                return
            self._scanning = False
            self._result = self._held
            client = self._client
        if client is not None:
            client.unsubscribe([self._filter, self._fence.fence_topic])
        self.done.set()
        self._on_done()


class DevicesCollector:
    """Probes and publishes the configured devices: `run()` until `stop()`, or `once()`."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        config.require("gateway.sn")
        self._config = config
        self._devices = list(config.devices)
        self._configured = frozenset(device.ip for device in self._devices)
        self._topics = Topics(config.mqtt.topic_prefix, config.gateway.serial())
        self._status_topic = self._topics.collector_status(NAME)
        self._fence_topic = f"{self._topics.base}/collectors/{NAME}/fence"
        self._clock = clock
        options = config.collectors
        self._timeout = options.probe_timeout
        self._workers = max(1, min(options.probe_concurrency, len(self._devices)))
        waves = math.ceil(len(self._devices) / self._workers)
        self._ttl = options.ttl_factor * options.probe_interval + options.probe_timeout * waves
        self._online: dict[str, bool] = {}
        self.ticker = Ticker(options.probe_interval)

    def run(self) -> None:
        """Probe and publish until `stop()`, then say `offline` on the status topic."""
        ident = client_id(NAME, self._config.gateway.serial())
        conn = Connection(self._config.mqtt, ident, self._status_topic)
        scan = RetainedScan(self._topics, self._fence_topic, on_done=self.ticker.poke)
        scan.listen(conn.client)
        conn.on_connected(scan.start)
        self.ticker.attach(conn)
        pool = ThreadPoolExecutor(self._workers, thread_name_prefix="probe")
        logger.info(
            "devices collector: %d devices, probed every %g s",
            len(self._devices), self._config.collectors.probe_interval,
        )
        conn.start()
        try:
            self.ticker.run(
                lambda _fresh: self._cycle(conn, pool),
                between=lambda: self._delete_stale(conn, scan.take()),
            )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            conn.close()

    def stop(self) -> None:
        self.ticker.stop()

    def once(self, timeout: float) -> None:
        """One probe cycle and one removal pass, acknowledged by the broker.

        No status, no will and no `offline` (see `collectors.session`): the
        daemon's status is its own. A fence subscription ends the replay.
        """
        scan = RetainedScan(self._topics, self._fence_topic, on_done=lambda: None)

        def before_start(conn: Connection) -> None:
            scan.listen(conn.client)
            conn.on_connected(scan.start)

        conn = connect_once(self._config.mqtt, NAME, timeout, before_start=before_start)
        try:
            sent: list[mqtt.MQTTMessageInfo] = []
            pool = ThreadPoolExecutor(self._workers, thread_name_prefix="probe")
            try:
                sent += self._cycle(conn, pool)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            if scan.done.wait(timeout):
                sent += self._delete_stale(conn, scan.take())
            else:
                logger.warning(
                    "the broker's retained replay did not end within %g s: "
                    "records of removed devices are left for the next run", timeout,
                )
            wait_published(sent, timeout)
        finally:
            conn.close()

    def _cycle(self, conn: Connection, pool: ThreadPoolExecutor) -> list[mqtt.MQTTMessageInfo]:
        sent = []
        for device, online in self._probe(pool):
            record = device_record(device, online, round(self._clock(), 3), self._ttl)
            topic = self._topics.device_state(device.ip)
            sent.append(conn.publish(topic, orjson.dumps(record), retain=True))
        return sent

    def _probe(self, pool: ThreadPoolExecutor) -> Iterator[tuple[DeviceEntry, bool]]:
        first = not self._online
        for device, online in probe_all(self._devices, pool, self._timeout):
            if self.ticker.stopping:
                return
            was = self._online.get(device.ip)
            self._online[device.ip] = online
            status = "online" if online else "offline"
            if was is None:
                logger.debug("device %s is %s", device.ip, status)
            elif was != online:
                logger.info("device %s is now %s", device.ip, status)
            yield device, online
        if first and self._devices:
            up = sum(self._online.values())
            logger.info("first probe: %d of %d devices online", up, len(self._devices))

    def _delete_stale(
        self, conn: Connection, held: Mapping[str, str] | None
    ) -> list[mqtt.MQTTMessageInfo]:
        if held is None:
            return []
        sent = []
        for topic in stale_topics(held, self._configured):
            logger.info("device %s is no longer configured: deleting its record", held[topic])
            sent.append(conn.publish(topic, b"", retain=True))
        return sent
