"""Fill and flood the project's broker config as an app or a collector would.

Against the broker as `demo.broker` renders it, with the bridge running as a
process, another daemon's session watched for disconnects, and the platform
receiving reports. Each test measures what the attack did: the broker's peak
memory, the daemons' disconnects and the reports that changed, and prints it
(`pytest -s`); docs/security.md has the numbers of a run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import pytest

from bench.mqttraw import RawPublisher, publish_packet
from bridge.config import MqttSection
from bridge.mqttclient import Connection
from demo.broker import Broker
from receiver.server import ReceiverServer
from tests.conftest import collect, mqtt_client, wait_until
from tests.integration.stack import (
    BASE,
    BridgeProcess,
    device,
    publish,
    publish_spec_example,
    running_bridge,
    statuses,
    wait_report,
    write_config,
)

FILL = 6_348  # the fill: 6,348 records of 20 kB, 127 MB
BIG = b'{"pad":"' + b"x" * 19_960 + b'"}'  # 20 kB: under max_packet_size, over max_payload
EXPECTED = {"192.168.1.101": "online", "10.0.0.5": "online"}


class Meter:
    """Samples the broker's memory every 50 ms, and watches a daemon's session."""

    def __init__(self, broker: Broker) -> None:
        assert broker.pid is not None
        self._proc = psutil.Process(broker.pid)
        self.start_rss = self.peak_rss = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> float:
        """Peak growth of the broker's memory, MB."""
        self._stop.set()
        self._thread.join(5)
        return (self.peak_rss - self.start_rss) / 1e6


class Daemon:
    """A daemon's session (the console's user, reading everything as it does) that counts
    its disconnects."""

    def __init__(self, broker: Broker) -> None:
        settings = MqttSection(host=broker.host, port=broker.port, username="console",
                               password_file=broker.credentials("console")[1])
        self.conn = Connection(settings, "se3-console-load", mqtt5=True)
        self.disconnects = 0
        self.received = 0
        on_disconnect = self.conn.client.on_disconnect

        def counting(*args: Any) -> None:
            self.disconnects += 1
            on_disconnect(*args)  # type: ignore[misc]

        def on_message(*_args: Any) -> None:
            self.received += 1

        def subscribe(client: mqtt.Client) -> None:
            client.subscribe(f"{BASE}/#", qos=1)

        self.conn.client.on_disconnect = counting
        self.conn.client.on_message = on_message
        self.conn.on_connected(subscribe)
        self.conn.start()
        assert self.conn.wait_connected(10)

    def close(self) -> None:
        self.conn.close()


@contextmanager
def stack(tmp_path: Path, broker: Broker, platform: ReceiverServer
          ) -> Iterator[tuple[BridgeProcess, Daemon]]:
    config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
    publish_spec_example(broker)
    publish(broker, "collector-devices", {"devices/10.0.0.5/state": device()})
    with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
        wait_report(platform, lambda r: statuses(r) == EXPECTED)
        daemon = Daemon(broker)
        try:
            yield bridge, daemon
        finally:
            daemon.close()


def affected(platform: ReceiverServer, since: float) -> int:
    """Reports received after `since` that did not show exactly the expected devices."""
    return sum(1 for r in platform.state.store.reports()
               if r.received_at > since and statuses(r) != EXPECTED)


def held_in_app_space(broker: Broker) -> int:
    """Retained records the broker holds in the apps' spaces now."""
    marker = f"{BASE}/collectors/gateway/status"
    with mqtt_client(broker, "collector-gateway") as client:
        client.publish(marker, "online", qos=1, retain=True).wait_for_publish(5)
    with collect(broker, f"{BASE}/#") as seen:
        seen.wait_for_topic(marker)
    return sum(1 for m in seen.messages if m.retain and m.payload and "/apps/" in m.topic)


def report_now(broker: Broker, platform: ReceiverServer) -> None:
    """Ask for a report (config/report_now) and wait for it: the bridge still works."""
    asked = time.time()
    with mqtt_client(broker, "operator") as operator:
        operator.publish(f"{BASE}/config/report_now", b"1", qos=1).wait_for_publish(5)
    wait_report(platform, lambda r: True, after=asked, timeout=60)


def disconnects(bridge: BridgeProcess) -> int:
    return bridge.log_text().count("disconnected from broker")


class TestFill:
    def test_an_app_cannot_fill_the_broker(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """6,348 retained 20 kB records to new addresses (127 MB) as the app: the bridge
        refuses and deletes each, the broker stays small, no daemon is cut off, every
        report shows the real devices, and a restart starts from a small database."""
        with stack(tmp_path, broker, platform) as (bridge, daemon):
            meter, start = Meter(broker), time.time()
            with mqtt_client(broker, "app") as app:
                infos = [app.publish(f"{BASE}/apps/app/devices/10.8.{n // 250}.{n % 250 + 1}"
                                     "/state", BIG, qos=1, retain=True) for n in range(FILL)]
                for info in infos:
                    info.wait_for_publish(120)
            wait_until(lambda: held_in_app_space(broker) == 0, timeout=120,
                       what="the bridge to delete every refused record")
            grown = meter.stop()
            report_now(broker, platform)
            lost, bad = disconnects(bridge) + daemon.disconnects, affected(platform, start)
            print(f"\nfill {FILL} x 20 kB as app: broker +{grown:.0f} MB at peak, "
                  f"{lost} daemon disconnects, {bad} reports affected, "
                  f"{time.time() - start:.1f} s")
        broker.stop()
        database = broker.db_path.stat().st_size
        assert (lost, bad) == (0, 0)
        # Held until the bridge deletes them, never more than what was offered (127 MB).
        assert grown < 300, grown
        assert database < 1_000_000, database

    def test_a_fill_while_the_bridge_is_down_is_gone_after_a_restart(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """With no bridge to delete them, 2,000 refused records (40 MB) are kept and
        persisted; after a broker restart the bridge's replay deletes them all, and the
        reports show the real devices only."""
        publish_spec_example(broker)
        with mqtt_client(broker, "app") as app:
            infos = [app.publish(f"{BASE}/apps/app/devices/10.7.{n // 250}.{n % 250 + 1}/state",
                                 BIG, qos=1, retain=True) for n in range(2000)]
            for info in infos:
                info.wait_for_publish(60)
        broker.stop()
        persisted = broker.db_path.stat().st_size
        broker.start()
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
        publish(broker, "collector-devices", {"devices/10.0.0.5/state": device()})
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: statuses(r) == EXPECTED)
            wait_until(lambda: held_in_app_space(broker) == 0, timeout=60,
                       what="the bridge to delete the persisted records")
        broker.stop()
        print(f"\npersisted fill: database {persisted / 1e6:.0f} MB -> "
              f"{broker.db_path.stat().st_size / 1e6:.2f} MB after one restart")
        assert persisted > 40_000_000
        assert broker.db_path.stat().st_size < 1_000_000


class TestFlood:
    @pytest.mark.parametrize("role", ["app", "collector"])
    def test_a_qos0_flood_cuts_no_daemon_off(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, role: str
    ) -> None:
        """300,000 non-retained QoS 0 messages of 1 kB, as fast as one connection sends
        them, to topics the daemons read: the daemons stay connected (a slow reader loses
        messages, not its session), reports keep the real devices, the broker's memory
        stays bounded."""
        where = "apps/app/devices" if role == "app" else "devices"
        packets = [publish_packet(f"{BASE}/{where}/10.6.{n % 200}.1/state",
                                  b'{"junk":' + b"1" * 990 + b"}") for n in range(1000)]
        with stack(tmp_path, broker, platform) as (bridge, daemon):
            meter, start = Meter(broker), time.time()
            with RawPublisher(broker.host, broker.port, role, broker.password(role),
                              f"se3-flood-{role}") as flood:
                for _ in range(300):
                    flood.send(packets)
            sent_for = time.time() - start
            report_now(broker, platform)
            grown = meter.stop()
            lost, bad = disconnects(bridge) + daemon.disconnects, affected(platform, start)
            rejected = bridge.log_text().count("rejected ")
            print(f"\nflood of 300,000 x 1 kB QoS 0 as {role} in {sent_for:.1f} s "
                  f"({300_000 / sent_for:,.0f} msg/s): broker +{grown:.0f} MB at peak, "
                  f"{lost} daemon disconnects, {bad} reports affected, console read "
                  f"{daemon.received:,}")
        assert (lost, bad) == (0, 0)
        assert grown < 300, grown
        assert rejected > 0  # the bridge saw (some of) it
