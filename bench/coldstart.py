"""Cold start: 10,000 retained device records, from process start to the first full report.

The broker holds the gateway's info and metrics and 10,000 retained device
records. Timed from the moment each process is started:
- the bridge (`python -m bridge run`): until its first report carrying all
  10,000 devices has arrived at the platform;
- the bare paho subscriber (`bench/pahosub.py`): until it has counted every
  retained message under the gateway's filter (its own clock, read in its
  callback; its exit is not counted);
- `mosquitto_sub -C N` on the same filter: until it has exited.
One unmeasured round warms the page cache; the medians of the measured rounds
are compared. Each round also runs the bridge pinned to one CPU (as systemd's
`CPUAffinity=` would): its two busy threads share one GIL, and handing it
between CPUs costs more than sharing one. The CPU seconds of the bridge (by
its first report) and of the paho subscriber (whole run), and the phases of
each run (from the bridge's log lines and the subscriber's own clock), are
kept in the details.

The Node-RED peer (`bench.nodered`: mqtt in -> function -> http request)
runs the same rounds on the same broker and platform, timed the same way; the
bridge must be 2.5 times as fast (0.4x its time) and use at most 0.4x its
memory (RSS right after the first full report). Without npm it is skipped,
and the details say why.
"""

from __future__ import annotations

import datetime
import json
import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench import nodered
from bench.stack import (
    FILTER,
    BridgeProcess,
    Platform,
    Row,
    count_retained,
    cpu_seconds,
    device_packets,
    gateway_packets,
    median,
    one_cpu,
    pahosub_command,
    raw_publisher,
    start_broker,
    sub_devices,
    write_config,
)
from demo.broker import Broker, find_tool

NAME = "cold start"
TARGET = 1.5
NODERED_TARGET = 0.4  # the bridge's time and memory, as a fraction of Node-RED's


@dataclass
class _BridgeRun:
    seconds: float
    cpu_seconds: float
    rss_mb: float
    first_report_complete: bool
    phases: dict[str, float]


def _logged_at(log: str, text: str) -> float:
    """The Unix time of the first log line containing `text` (the bridge's text format)."""
    for line in log.splitlines():
        if text in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()  # asctime is local time, as is a naive timestamp()
    return float("nan")


def _bridge_once(broker: Broker, platform: Platform, config: Path, log: Path,
                 devices: int, cpus: set[int] | None = None) -> _BridgeRun:
    log.unlink(missing_ok=True)
    after = time.time()
    with BridgeProcess(config, broker, log, cpus) as bridge:
        process = psutil.Process(bridge.pid)
        report = platform.wait(lambda r: len(sub_devices(r)) == devices, 60.0, after)
        cpu = cpu_seconds(process)
        rss = process.memory_info().rss / 2**20
        arrived = platform.arrivals.time_of(report.report_id)
    seconds = arrived - bridge.started
    text = log.read_text(encoding="utf-8", errors="replace")
    started = _logged_at(text, "se3-bridge starting")
    replayed = _logged_at(text, "retained state received")
    phases = {
        "start: interpreter, imports, config": started - after,
        "retained replay: connect, take in every record": replayed - started,
        "first report: build, serialise, POST": seconds - (replayed - after),
    }
    return _BridgeRun(seconds, cpu, rss, (report.report_id or "").endswith("-1"), phases)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pahosub_once(broker: Broker, count: int) -> tuple[float, float, dict[str, float]]:
    """Seconds from starting the process to its last message, its CPU seconds, its phases."""
    command = pahosub_command(broker, count)
    cpu = _children_cpu()
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bare paho subscriber failed: {done.stdout}{done.stderr}")
    result = {k: float(v) for k, v in json.loads(done.stdout.splitlines()[-1]).items()}
    phases = {
        "start: interpreter, paho, connect": result["first"] - started,
        "retained replay: every message counted": result["done"] - result["first"],
    }
    return result["done"] - started, _children_cpu() - cpu, phases


def _mosquitto_sub_once(tool: str, broker: Broker, count: int) -> float:
    # Host, port, user and password come from the broker's option file, not argv.
    command = [tool, "-t", FILTER, "-q", "0", "-C", str(count)]
    env = {**os.environ, "XDG_CONFIG_HOME": str(broker.dir / "clients" / "debug")}
    started = time.monotonic()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=60, check=False, env=env)
    ended = time.monotonic()
    if done.returncode != 0:
        raise RuntimeError(f"mosquitto_sub failed: {done.stderr.decode(errors='replace')}")
    return ended - started


def run(workdir: Path, devices: int = 10_000, rounds: int = 5) -> tuple[list[Row], dict[str, Any]]:
    broker = start_broker(workdir)
    platform = Platform(keep=4)
    try:
        started = time.monotonic()
        with raw_publisher(broker) as publisher:
            publisher.send(gateway_packets() + device_packets(devices, ts=time.time(), ttl=86400))
        publish_s = time.monotonic() - started
        config = write_config(workdir / "bridge.toml", broker, platform, max_devices=20_000)
        log = workdir / "bridge.log"
        tool = find_tool("mosquitto_sub")

        # Warm-up round (page cache, .pyc files); it also leaves `bridge/status`
        # retained, so the count below is what every measured round drains.
        _bridge_once(broker, platform, config, log, devices)
        retained = count_retained(broker)
        if retained < devices + 2:
            raise RuntimeError(f"only {retained} retained messages; expected {devices + 2}+")
        _pahosub_once(broker, retained)

        skipped = nodered.install(workdir / "npm.log")
        flow = None
        if skipped is None:
            flow = nodered.write_flow(workdir / "nodered", broker, platform, devices)
            nodered.run_once(flow, platform, devices, workdir / "nodered.log")  # warm-up

        pinned = one_cpu()
        times: dict[str, list[float]] = {"bridge": [], "paho": [], "mosquitto_sub": [],
                                         "bridge_pinned": [], "nodered": []}
        cpu: dict[str, list[float]] = {"bridge": [], "paho": [], "nodered": []}
        rss: dict[str, list[float]] = {"bridge": [], "nodered": []}
        phases: dict[str, dict[str, list[float]]] = {"bridge": {}, "paho": {}}
        firsts: list[bool] = []
        for _ in range(rounds):
            bridge_run = _bridge_once(broker, platform, config, log, devices)
            times["bridge"].append(bridge_run.seconds)
            cpu["bridge"].append(bridge_run.cpu_seconds)
            rss["bridge"].append(bridge_run.rss_mb)
            firsts.append(bridge_run.first_report_complete)
            for phase, seconds in bridge_run.phases.items():
                phases["bridge"].setdefault(phase, []).append(seconds)
            seconds, used, paho_phases = _pahosub_once(broker, retained)
            times["paho"].append(seconds)
            cpu["paho"].append(used)
            for phase, seconds in paho_phases.items():
                phases["paho"].setdefault(phase, []).append(seconds)
            if tool is not None:
                times["mosquitto_sub"].append(_mosquitto_sub_once(tool, broker, retained))
            if pinned:
                times["bridge_pinned"].append(
                    _bridge_once(broker, platform, config, log, devices, pinned).seconds)
            if flow is not None:
                peer_run = nodered.run_once(flow, platform, devices, workdir / "nodered.log")
                times["nodered"].append(peer_run.seconds)
                cpu["nodered"].append(peer_run.cpu_seconds)
                rss["nodered"].append(peer_run.rss_mb)
    finally:
        platform.stop()
        broker.stop()

    bridge, paho = median(times["bridge"]), median(times["paho"])
    measure = f"{devices:,} retained → first full report"
    rows = [Row(NAME, measure, bridge, "s", "bare paho subscriber", paho,
                f"≤ {TARGET}x", bridge <= TARGET * paho)]
    if times["mosquitto_sub"]:
        rows.append(Row(NAME, measure, bridge, "s", "mosquitto_sub -C", median(
            times["mosquitto_sub"])))
    if times["nodered"]:
        peer = median(times["nodered"])
        rows.append(Row(NAME, measure, bridge, "s", "Node-RED flow", peer,
                        f"≤ {NODERED_TARGET}x", bridge <= NODERED_TARGET * peer))
    rows.append(Row(NAME, f"{measure}, CPU user+sys", median(cpu["bridge"]), "s",
                    "bare paho subscriber", median(cpu["paho"])))
    if cpu["nodered"]:
        rows.append(Row(NAME, f"{measure}, CPU user+sys", median(cpu["bridge"]), "s",
                        "Node-RED flow", median(cpu["nodered"])))
        rows.append(Row(NAME, "RSS after the first full report", median(rss["bridge"]), "MB",
                        "Node-RED flow", median(rss["nodered"]), f"≤ {NODERED_TARGET}x",
                        median(rss["bridge"]) <= NODERED_TARGET * median(rss["nodered"])))
    if times["bridge_pinned"]:
        rows.append(Row(NAME, f"{measure}, bridge pinned to 1 CPU",
                        median(times["bridge_pinned"]), "s", "bare paho subscriber", paho))
    details = {
        "devices": devices, "retained_messages": retained, "rounds": rounds,
        "publish_seconds": publish_s, "seconds": times, "cpu_seconds": cpu, "rss_mb": rss,
        "nodered": skipped or f"node-red {nodered.version()}",
        "median_phases": {who: {phase: median(v) for phase, v in got.items()}
                          for who, got in phases.items()},
        "first_report_was_complete": firsts,
    }
    return rows, details
