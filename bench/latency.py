"""Latency: one device changes; how long until the POST that shows it reaches the platform.

1,000 retained devices; the bridge runs with `min_interval` 0, then 1 (and
the default `interval`, so periodic reports happen as in production). Each
change gives one device a new `ep_name` and is published by the raw publisher
as the `collector` user (the records are the collectors'; an app writes only in
its own space); its latency is the time from just before the packet is written
to the moment the POST whose body first carries the new name had fully arrived
at the platform. One change at a time: the next is published only after the
previous one was seen, so each is measured on its own.

- `min_interval` 0: back to back.
- `min_interval` 1: after each report, a random pause of 0 to 1.2 s before the
  next change, so some changes go out at once and the others wait out the rest
  of `min_interval` after the previous report: the wait the schedule imposes
  is part of what is measured, and p99 is bounded by `min_interval` + delivery.

Baseline: a bare paho subscriber in this process, subscribed to the same
device topics, notes when each change arrives over MQTT (the broker's hop).
"""

from __future__ import annotations

import functools
import random
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.mqttraw import publish_packet
from bench.stack import (
    BASE,
    BridgeProcess,
    Platform,
    Row,
    device_ip,
    device_packets,
    device_payload,
    device_topic,
    gateway_packets,
    percentile,
    raw_publisher,
    start_broker,
    sub_devices,
    write_config,
)
from demo.broker import Broker
from receiver.store import Report

NAME = "latency"
BUDGET = 0.05  # the target: p99 <= min_interval + 50 ms


class MqttArrivals:
    """A bare paho subscriber on the device topics: when did each `ep_name` arrive."""

    def __init__(self, broker: Broker) -> None:
        self._cond = threading.Condition()
        self._seen: dict[bytes, float] = {}
        ready = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.username_pw_set("debug", broker.password("debug"))
        client.on_message = self._on_message
        client.on_subscribe = lambda *_a: ready.set()
        client.on_connect = lambda c, *_a: c.subscribe(f"{BASE}/devices/+/state", qos=0)
        client.connect(broker.host, broker.port)
        client.loop_start()
        if not ready.wait(10):
            raise TimeoutError("no SUBACK for the latency baseline subscriber")
        self.client = client

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        start = msg.payload.find(b'"ep_name":"lat-')
        if start >= 0 and not msg.retain:
            end = msg.payload.index(b'"', start + 11)
            with self._cond:
                self._seen[bytes(msg.payload[start + 11:end])] = now
                self._cond.notify_all()

    def time_of(self, name: str, timeout: float = 5.0) -> float:
        key = name.encode()
        with self._cond:
            if not self._cond.wait_for(lambda: key in self._seen, timeout):
                raise TimeoutError(f"change {name} not seen over MQTT")
            return self._seen[key]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _shows(report: Report, ip: str, name: str) -> bool:
    return any(d.get("ep_ip") == ip and d.get("ep_name") == name for d in sub_devices(report))


def _measure(broker: Broker, platform: Platform, mqtt_seen: MqttArrivals, workdir: Path,
             min_interval: float, changes: int, devices: int,
             rng: random.Random) -> tuple[list[float], list[float]]:
    config = write_config(workdir / f"latency-{min_interval:g}.toml", broker, platform,
                          min_interval=min_interval)
    bridge_s: list[float] = []
    mqtt_s: list[float] = []
    after = time.time()
    with BridgeProcess(config, broker, workdir / "latency-bridge.log"), \
            raw_publisher(broker, "collector") as publisher:
        platform.wait(lambda r: len(sub_devices(r)) == devices, 30, after)
        for k in range(changes):
            if min_interval:
                time.sleep(rng.uniform(0, min_interval + 0.2))
            i = rng.randrange(devices)
            ip, name = device_ip(i), f"lat-{min_interval:g}-{k}"
            packet = publish_packet(device_topic(ip), device_payload(i, name=name), retain=True)
            sent_wall = time.time()
            sent = time.monotonic()
            publisher.send(packet)
            platform.wait(functools.partial(_shows, ip=ip, name=name), 10, sent_wall - 1)
            first = min((r for r in platform.server.state.store.reports()
                         if r.received_at >= sent_wall - 1 and _shows(r, ip, name)),
                        key=lambda r: r.received_at)
            bridge_s.append(platform.arrivals.time_of(first.report_id) - sent)
            mqtt_s.append(mqtt_seen.time_of(name) - sent)
    return bridge_s, mqtt_s


def run(workdir: Path, devices: int = 1_000, fast_changes: int = 300,
        slow_changes: int = 60) -> tuple[list[Row], dict[str, Any]]:
    broker = start_broker(workdir)
    platform = Platform(keep=8)
    rng = random.Random(5)
    rows: list[Row] = []
    details: dict[str, Any] = {"devices": devices}
    try:
        with raw_publisher(broker) as publisher:
            publisher.send(gateway_packets() + device_packets(devices, ts=time.time(), ttl=86400))
        mqtt_seen = MqttArrivals(broker)
        try:
            for min_interval, changes in ((0.0, fast_changes), (1.0, slow_changes)):
                bridge_s, mqtt_s = _measure(broker, platform, mqtt_seen, workdir, min_interval,
                                            changes, devices, rng)
                case = f"min_interval {min_interval:g}, {changes} changes"
                p50, p99 = percentile(bridge_s, 50), percentile(bridge_s, 99)
                bound = min_interval + BUDGET
                rows.append(Row(NAME, f"p50, {case}", p50 * 1000, "ms", "MQTT hop (bare paho)",
                                percentile(mqtt_s, 50) * 1000))
                rows.append(Row(NAME, f"p99, {case}", p99 * 1000, "ms", "MQTT hop (bare paho)",
                                percentile(mqtt_s, 99) * 1000, f"≤ {bound * 1000:g} ms",
                                p99 <= bound))
                details[f"min_interval_{min_interval:g}"] = {
                    "changes": changes, "bridge_seconds": bridge_s, "mqtt_seconds": mqtt_s,
                    "max_seconds": max(bridge_s),
                }
        finally:
            mqtt_seen.close()
    finally:
        platform.stop()
        broker.stop()
    return rows, details
