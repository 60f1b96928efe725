"""Sustained ingest: a stream of updates for 1,000 devices, as fast as the broker takes them.

The broker holds 1,000 retained device records. A subscriber is started and
given time to take in that replay; then the raw publisher writes `rounds`
updates of every device (each a new payload: `ts` moves, one in a hundred
flips its status) in one go, and the subscriber's consumption rate is
`messages / (time its last message was consumed - time the stream began)`.

- The bare paho subscriber counts messages in its callback and reports when
  it has them all.
- The bridge (a real `python -m bridge run` process, default `min_interval`,
  so it also builds and posts a report every second while the stream lasts)
  is read through its Prometheus endpoint: `se3_records_accepted`, polled
  every 50 ms, until it has grown by the number of messages sent. The
  polling resolution is ±50 ms on runs of several seconds.

The two alternate, three times each, and each gets the median of its runs; the
bridge also runs pinned to one CPU (see `coldstart`). CPU per message is the
process's user+system CPU time over the stream (from just before it starts to
the last message taken in) divided by the messages: for the bridge read with
psutil, for the subscriber its whole CPU time (rusage at exit) less what it
had used when the stream began.
"""

from __future__ import annotations

import json
import resource
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.mqttraw import publish_packet
from bench.stack import (
    BridgeProcess,
    Platform,
    Row,
    cpu_seconds,
    device_ip,
    device_packets,
    device_payload,
    device_topic,
    gateway_packets,
    median,
    one_cpu,
    pahosub_command,
    raw_publisher,
    scrape_accepted,
    start_broker,
    sub_devices,
    wait_for_line,
    write_config,
)
from demo.broker import Broker, free_port

NAME = "ingest"
TARGET = 0.8
CPU_TARGET = 1.3  # CPU per message, x the bare paho subscriber's
_POLL = 0.05


def stream(devices: int, rounds: int, start_ts: float) -> bytes:
    """`rounds` new payloads for each device, round by round."""
    packets = []
    for r in range(rounds):
        for i in range(devices):
            status = "offline" if (i + r) % 100 == 0 else "online"
            payload = device_payload(i, status, ts=start_ts + r * 0.01, ttl=86400)
            packets.append(publish_packet(device_topic(device_ip(i)), payload, retain=True))
    return b"".join(packets)


def _send_in_background(broker: Broker, data: bytes) -> threading.Thread:
    def send() -> None:
        with raw_publisher(broker) as publisher:
            publisher.send(data)

    return threading.Thread(target=send, name="bench-publisher", daemon=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _paho_once(broker: Broker, data: bytes, count: int) -> tuple[float, float]:
    """(messages per second, CPU seconds over the stream)."""
    before = _children_cpu()
    with subprocess.Popen(pahosub_command(broker, count, live=True), stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            wait_for_line(proc, "ready", 30)
            at_ready = cpu_seconds(psutil.Process(proc.pid))
            sender = _send_in_background(broker, data)
            began = time.monotonic()
            sender.start()
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    sender.join()
    result = json.loads(out.splitlines()[-1])
    if result["count"] != count:
        raise RuntimeError(f"bare paho subscriber got {result['count']} of {count}")
    return count / (float(result["done"]) - began), _children_cpu() - before - at_ready


def _bridge_once(broker: Broker, platform: Platform, workdir: Path, data: bytes, count: int,
                 devices: int, cpus: set[int] | None = None) -> tuple[float, float]:
    """(messages per second, CPU seconds over the stream)."""
    port = free_port()
    config = write_config(workdir / "ingest.toml", broker, platform,
                          metrics_listen=f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}/metrics"
    after = time.time()
    with BridgeProcess(config, broker, workdir / "ingest-bridge.log", cpus) as bridge:
        process = psutil.Process(bridge.pid)
        platform.wait(lambda r: len(sub_devices(r)) == devices, 30, after)
        base = scrape_accepted(url)
        cpu = cpu_seconds(process)
        sender = _send_in_background(broker, data)
        began = time.monotonic()
        sender.start()
        deadline = began + 120
        while True:
            time.sleep(_POLL)
            now = time.monotonic()
            if scrape_accepted(url) - base >= count:
                cpu = cpu_seconds(process) - cpu
                break
            if now > deadline:
                raise TimeoutError("the bridge did not take in the whole stream")
        sender.join()
    return count / (now - began), cpu


def run(workdir: Path, devices: int = 1_000, rounds: int = 60,
        repeats: int = 3) -> tuple[list[Row], dict[str, Any]]:
    broker = start_broker(workdir)
    platform = Platform(keep=10)
    count = devices * rounds
    try:
        with raw_publisher(broker) as publisher:
            publisher.send(gateway_packets() + device_packets(devices, ts=time.time(), ttl=86400))
        data = stream(devices, rounds, time.time())
        pinned = one_cpu()
        rates: dict[str, list[float]] = {"bridge": [], "paho": [], "bridge_pinned": []}
        cpu: dict[str, list[float]] = {"bridge": [], "paho": []}
        for _ in range(repeats):
            rate, used = _paho_once(broker, data, count)
            rates["paho"].append(rate)
            cpu["paho"].append(used)
            rate, used = _bridge_once(broker, platform, workdir, data, count, devices)
            rates["bridge"].append(rate)
            cpu["bridge"].append(used)
            if pinned:
                rates["bridge_pinned"].append(
                    _bridge_once(broker, platform, workdir, data, count, devices, pinned)[0])
    finally:
        platform.stop()
        broker.stop()
    bridge, paho = median(rates["bridge"]), median(rates["paho"])
    measure = f"{devices:,} devices x {rounds} updates"
    rows = [Row(NAME, measure, bridge, "msg/s", "bare paho subscriber", paho, f"≥ {TARGET}x",
                bridge >= TARGET * paho)]
    per_message = {who: median(used) / count * 1e6 for who, used in cpu.items()}
    rows.append(Row(NAME, f"{measure}, CPU per message", per_message["bridge"], "µs",
                    "bare paho subscriber", per_message["paho"], f"≤ {CPU_TARGET}x",
                    per_message["bridge"] <= CPU_TARGET * per_message["paho"]))
    if rates["bridge_pinned"]:
        rows.append(Row(NAME, f"{measure}, bridge pinned to 1 CPU",
                        median(rates["bridge_pinned"]), "msg/s", "bare paho subscriber", paho))
    return rows, {"devices": devices, "messages": count, "repeats": repeats,
                   "rates": rates, "cpu_seconds": cpu}
