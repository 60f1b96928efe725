"""Pieces of a real stack for the bridge's integration tests.

A config file written for a test's broker and platform, the bridge as a child
process (`python -m bridge run`, so kill -9 and SIGTERM are the real thing),
and publishing records as the roles that own them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from demo.broker import Broker
from receiver.faults import FaultInjector
from receiver.server import ReceiverServer
from receiver.store import Report
from tests.conftest import mqtt_client, publish_and_wait

SN = "SZCCKQRAIJBAH0002"
DEV_SNO = "ZKZCPI000120190807142601"
BASE = f"se3/{SN}"
SW_VERSION = (
    "build.date=2019年 08月 06日 星期二 17:42:49 CST\nBUILD TIME: 20190806_173257\n"
    "VERSION: V2R1C01\n"
)
LOCATION = "95274d2c-0941-4d96-b032-ab200f81362c"

# The records that, per the golden rule, give the spec's own example payload.
SPEC_INFO: dict[str, Any] = {
    "gateway_ip": "192.168.1.251 ",
    "gateway_name": "bm1682landy93",
    "dev_sno": DEV_SNO,
    "sw_version": SW_VERSION,
    "sdk_version": "1.1.56d1e91",
    "gateway_mac": "e0:a5:09:00:0e:6d",
}
SPEC_METRICS: dict[str, Any] = {
    "cpu_usage": 6.5, "memory_size": 1.55, "memory_usage": 0.77,
    "disk_size": 10.39, "disk_free_size": 9.41,
}
SPEC_DEVICE: dict[str, Any] = {
    "ep_status": "online", "ep_location": LOCATION, "ep_url": "rtsp://192.168.1.101:554/ch2",
    "ep_type": "2", "ep_name": "", "ep_id": f"{DEV_SNO}__192.168.1.101", "ep_ip": "192.168.1.101",
}
SPEC_PAYLOAD: dict[str, Any] = {
    "gateway_ip": "192.168.1.251",
    "gateway_name": "bm1682landy93",
    "gateway_status": "online",
    "gateway_sn": SN,
    "dev_sno": DEV_SNO,
    "gateway_ext_data": {
        "sw_version": SW_VERSION, "sdk_version": "1.1.56d1e91", "gateway_mac": "e0:a5:09:00:0e:6d",
        "cpu_usage": 6.5, "memory_size": 1.55, "memory_usage": 0.77, "disk_size": 10.39,
        "disk_free_size": 9.41,
    },
    "sub_devices": [{
        "ep_id": f"{DEV_SNO}__192.168.1.101", "ep_name": "", "ep_ip": "192.168.1.101",
        "ep_status": "online", "ep_location": LOCATION, "ep_type": "2",
        "ep_url": "rtsp://192.168.1.101:554/ch2",
    }],
}


def write_config(
    path: Path, broker: Broker, report_url: str | list[str] = "", **platform: Any
) -> Path:
    """A bridge config for this broker; `platform` keys go to [platform] as given."""
    urls = [report_url] if isinstance(report_url, str) and report_url else report_url or []
    lines = [
        "[gateway]", f'sn = "{SN}"', "",
        "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}", "",
        "[platform]", f"report_url = {json.dumps(urls)}",
        "min_interval = 0.2", "interval = 30", "retry_min = 0.2", "retry_max = 2", "timeout = 2",
    ]
    for key, value in platform.items():
        lines = [line for line in lines if not line.startswith(f"{key} =")]
        lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class BridgeProcess:
    """`python -m bridge --config ... run` as the `bridge` role, logging to a file."""

    def __init__(self, config: Path, broker: Broker, log: Path) -> None:
        self.config = config
        self.broker = broker
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BridgeProcess:
        env = {**os.environ, **self.broker.env("bridge")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--config", str(self.config),
                 "--log-level", "DEBUG", "run"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        return self

    def terminate(self, timeout: float = 15.0, signum: int = signal.SIGTERM) -> int:
        """SIGTERM (or `signum`) and wait; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signum)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def running_bridge(config: Path, broker: Broker, log: Path) -> Iterator[BridgeProcess]:
    bridge = BridgeProcess(config, broker, log).start()
    try:
        yield bridge
    finally:
        bridge.stop()


def publish(broker: Broker, role: str, records: Mapping[str, object | bytes]) -> None:
    """Publish retained records {topic suffix: JSON-able or raw bytes} as `role`."""
    with mqtt_client(broker, role) as client:
        for suffix, record in records.items():
            payload = record if isinstance(record, bytes) else json.dumps(record).encode()
            publish_and_wait(client, f"{BASE}/{suffix}", payload, retain=True)


def publish_spec_example(broker: Broker) -> None:
    publish(broker, "collector", {
        "gateway/info": SPEC_INFO,
        "gateway/metrics": SPEC_METRICS,
        "devices/192.168.1.101/state": SPEC_DEVICE,
    })


def device(status: str = "online", **extra: object) -> dict[str, object]:
    return {"ep_status": status, "ep_type": "2", "ep_location": LOCATION, **extra}


def fresh(ttl: float, **extra: object) -> dict[str, object]:
    return {"ts": time.time(), "ttl": ttl, **extra}


def statuses(report: Report) -> dict[str, str]:
    """{ep_ip: ep_status} of a received report."""
    payload = report.payload
    assert isinstance(payload, dict)
    return {d["ep_ip"]: d["ep_status"] for d in payload["sub_devices"]}


def faults(platform: ReceiverServer) -> FaultInjector:
    """The platform's fault injector (the fixture's app is made with faults=True)."""
    injector = platform.state.faults
    assert injector is not None, "create_app(faults=True) is needed"
    return injector


def wait_report(platform: ReceiverServer, predicate: Any, timeout: float = 10.0,
                after: float = 0.0) -> Report:
    """The newest report received after `after` (Unix time) that satisfies `predicate`."""
    found = platform.state.store.wait_for(
        lambda r: r.received_at > after and bool(predicate(r)), timeout
    )
    if found is None:
        last = platform.state.store.reports()[-3:]
        raise AssertionError(f"no matching report in {timeout}s; last: {last}")
    return found
