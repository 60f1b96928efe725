"""A real `se3-collector devices` killed with -9: its devices go offline at once, others not.

The collector publishes its records with `source: "devices"` and a ttl of three
probe intervals (90 s here); the test shows the devices turn offline within a
couple of seconds of the kill, through the collector's last will, long before
the ttl could.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from demo.broker import Broker
from receiver.server import ReceiverServer
from tests.conftest import collect
from tests.integration.stack import (
    BASE,
    device,
    publish,
    publish_spec_example,
    running_bridge,
    statuses,
    wait_report,
    write_config,
)

COLLECTED = ("127.0.0.21", "127.0.0.22")  # probe "none": always online while it runs
DEVICES_STATUS = f"{BASE}/collectors/devices/status"



def add_collector_config(config: Path) -> Path:
    """The bridge's config, plus what `se3-collector devices` needs: its devices, 30 s probes."""
    lines = ["", "[collectors]", "probe_interval = 30", "probe_timeout = 1"]
    for n, ip in enumerate(COLLECTED):
        lines += ["[[devices]]", f'ip = "{ip}"', f'location = "loc-{n}"', 'type = "1"',
                  'probe = "none"']
    with config.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return config


class TestCollectorDeath:
    def test_kill_9_takes_only_its_devices_offline_at_once(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """The collector's last will turns its devices offline within 2 s; others stay online."""
        config = add_collector_config(
            write_config(tmp_path / "se3.toml", broker, f"{platform.url}/DeviceStatus"))
        publish_spec_example(broker)  # no source
        publish(broker, "collector", {"devices/10.0.6.1/state": device(source="door-app")})
        expected = dict.fromkeys((*COLLECTED, "192.168.1.101", "10.0.6.1"), "online")
        with open(tmp_path / "collector.log", "wb") as log:
            collector = subprocess.Popen(
                [sys.executable, "-m", "collectors", "--config", str(config), "devices"],
                env={**os.environ, **broker.env("collector-devices")},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            with running_bridge(config, broker, tmp_path / "bridge.log"), \
                    collect(broker, DEVICES_STATUS) as status:
                wait_report(platform, lambda r: statuses(r) == expected)
                collector.kill()
                collector.wait()
                killed = time.time()
                report = wait_report(
                    platform, lambda r: statuses(r)["127.0.0.21"] == "offline", after=killed)
                will = status.wait_for_message(lambda m: m.payload == b"offline")
        finally:
            if collector.poll() is None:
                collector.kill()
                collector.wait()
        assert report.received_at - killed < 2.0
        assert statuses(report) == {**expected, "127.0.0.21": "offline", "127.0.0.22": "offline"}
        assert will.payload == b"offline"
