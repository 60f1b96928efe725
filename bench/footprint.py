"""Footprint: memory and CPU of the bridge and the collectors over 60 s, when nothing changes.

The stack as it runs on a box: `se3-collector gateway` (identity, metrics every
10 s), `se3-collector devices` with 1,000 configured devices (probe `none`, so
no network and always online; every 30 s it republishes all 1,000 records with
a new `ts` and `ttl` 90 s) and the bridge (defaults: a report every 20 s). No
status changes, so the bridge's work is taking in the refreshes and the
periodic reports.

Once the bridge's first complete report has arrived, each process is sampled
once a second for 60 s: RSS (the largest sample is reported) and CPU time
(user + system over the window, as a percentage of one core).

Baseline: the bare paho subscriber, subscribed to the same topics for the same
window, doing nothing with what it receives.

If a collector cannot run here, the bench publishes the same records itself
and says so in the results (`collectors_ran: false`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.stack import (
    DEV_SNO,
    LOCATION,
    PREFIX,
    ROOT,
    SN,
    SW_VERSION,
    BridgeProcess,
    Platform,
    Row,
    cpu_seconds,
    device_ip,
    device_packets,
    gateway_packets,
    pahosub_command,
    raw_publisher,
    start_broker,
    stop_process,
    sub_devices,
)
from demo.broker import Broker

NAME = "footprint"
WINDOW = 60.0
RSS_TARGET_MB = 60.0
CPU_TARGET = 1.0
PROBE_INTERVAL = 30.0  # the defaults of [collectors]
TTL = 3 * PROBE_INTERVAL


def write_stack_config(path: Path, broker: Broker, platform: Platform, devices: int) -> Path:
    """One config for the bridge and both collectors, all defaults except what a box sets."""
    buildinfo = path.with_name("buildinfo.txt")
    buildinfo.write_text(SW_VERSION, encoding="utf-8")
    lines = [
        "[gateway]", f'sn = "{SN}"', f'dev_sno = "{DEV_SNO}"', 'name = "bench"',
        f'sw_version_file = "{buildinfo}"', 'sdk_version = "1.1.56d1e91"', 'data_path = "/"', "",
        "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}", f'topic_prefix = "{PREFIX}"',
        "", "[platform]", f'report_url = "{platform.url}"', "",
    ]
    for i in range(devices):
        lines += ["[[devices]]", f'ip = "{device_ip(i)}"', f'name = "camera-{i}"',
                  f'location = "{LOCATION}"', 'type = "2"', 'probe = "none"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class _Refresher:
    """Stands in for the collectors: the same records, refreshed at the same intervals."""

    def __init__(self, broker: Broker, devices: int) -> None:
        self._broker = broker
        self._devices = devices
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-refresher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            with raw_publisher(self._broker) as publisher:
                publisher.send(gateway_packets()
                               + device_packets(self._devices, ts=time.time(), ttl=TTL))
            if self._stop.wait(PROBE_INTERVAL):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _collector(config: Path, broker: Broker, command: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **broker.env(f"collector-{command}")}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "collectors", "--config", str(config), command],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )


def _sample(procs: dict[str, psutil.Process], window: float) -> dict[str, dict[str, float]]:
    cpu0 = {name: cpu_seconds(p) for name, p in procs.items()}
    rss: dict[str, list[int]] = {name: [] for name in procs}
    began = time.monotonic()
    while (left := began + window - time.monotonic()) > 0:
        for name, proc in procs.items():
            rss[name].append(proc.memory_info().rss)
        time.sleep(min(1.0, left))
    elapsed = time.monotonic() - began
    return {
        name: {
            "rss_mb": max(rss[name]) / 2**20,
            "rss_mb_last": rss[name][-1] / 2**20,
            "cpu_percent": (cpu_seconds(proc) - cpu0[name]) / elapsed * 100,
        }
        for name, proc in procs.items()
    }


def run(workdir: Path, devices: int = 1_000,
        window: float = WINDOW) -> tuple[list[Row], dict[str, Any]]:
    broker = start_broker(workdir)
    platform = Platform(keep=8)
    config = write_stack_config(workdir / "stack.toml", broker, platform, devices)
    started: list[subprocess.Popen[Any]] = []
    refresher: _Refresher | None = None
    bridge = BridgeProcess(config, broker, workdir / "footprint-bridge.log")
    try:
        collectors = {
            "gateway collector": _collector(config, broker, "gateway", workdir / "gateway.log"),
            "devices collector": _collector(config, broker, "devices", workdir / "devices.log"),
        }
        started += collectors.values()
        baseline = subprocess.Popen(pahosub_command(broker, 10**9), stdout=subprocess.DEVNULL)
        started.append(baseline)
        after = time.time()
        bridge.start()
        try:
            platform.wait(lambda r: len(sub_devices(r)) == devices, 30, after)
            collectors_ran = all(p.poll() is None for p in collectors.values())
        except TimeoutError:
            collectors_ran = False
        if not collectors_ran:
            for proc in collectors.values():
                stop_process(proc)
            collectors = {}
            refresher = _Refresher(broker, devices)
            refresher.start()
            platform.wait(lambda r: len(sub_devices(r)) == devices, 30, after)
        procs = {"bridge": psutil.Process(bridge.pid), "bare paho": psutil.Process(baseline.pid)}
        procs.update({name: psutil.Process(p.pid) for name, p in collectors.items()})
        sampled = _sample(procs, window)
        reports = [r for r in platform.server.state.store.reports() if r.received_at > after]
    finally:
        if refresher is not None:
            refresher.stop()
        bridge.stop()
        for proc in started:
            stop_process(proc)
        platform.stop()
        broker.stop()

    paho = sampled["bare paho"]
    rows = []
    for name, got in sampled.items():
        if name == "bare paho":
            continue
        is_bridge = name == "bridge"
        rows.append(Row(NAME, f"{name} RSS (max)", got["rss_mb"], "MB", "bare paho subscriber",
                        paho["rss_mb"], f"≤ {RSS_TARGET_MB:g} MB" if is_bridge else "",
                        got["rss_mb"] <= RSS_TARGET_MB if is_bridge else None))
        rows.append(Row(NAME, f"{name} CPU, {window:g} s idle", got["cpu_percent"], "% core",
                        "bare paho subscriber", paho["cpu_percent"],
                        f"≤ {CPU_TARGET:g} %" if is_bridge else "",
                        got["cpu_percent"] <= CPU_TARGET if is_bridge else None))
    return rows, {"devices": devices, "window_seconds": window, "collectors_ran": collectors_ran,
                  "processes": sampled, "reports_in_window": len(reports)}
