"""The main loop drives MQTT itself (bridge.rim): one thread owns the connection and the state.

The bridge runs in-process against a real mosquitto and platform, so the test
can see which thread applied each record and which threads exist at all.
"""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config import parse_config
from bridge.service import Bridge
from demo.broker import Broker
from receiver.server import ReceiverServer
from tests.conftest import wait_until
from tests.integration.stack import device, publish, publish_spec_example, write_config


@pytest.fixture
def service(tmp_path: Path, broker: Broker, platform: ReceiverServer) -> Iterator[Bridge]:
    path = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
    bridge = Bridge(parse_config(tomllib.loads(path.read_text()), env=broker.env("bridge")))
    thread = threading.Thread(target=bridge.run, name="bridge-loop", daemon=True)
    thread.start()
    yield bridge
    bridge.stop()
    thread.join(15)
    assert not thread.is_alive()


class TestOneThread:
    def test_records_are_applied_on_the_loop_thread_and_paho_has_no_thread(
        self, broker: Broker, service: Bridge, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No network thread of paho's: each record is applied where it is read."""
        applied_on: set[str] = set()
        apply = service.state.apply

        def spy(*args: object, **kwargs: object) -> object:
            applied_on.add(threading.current_thread().name)
            return apply(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(service.state, "apply", spy)
        publish_spec_example(broker)
        publish(broker, "collector", {"devices/192.168.1.102/state": device()})
        wait_until(lambda: "192.168.1.102" in service.state.devices, timeout=10,
                   what="the record applied")
        assert applied_on == {"bridge-loop"}
        assert not [t.name for t in threading.enumerate() if t.name.startswith("paho-mqtt")]

    def test_a_call_posted_from_another_thread_runs_on_the_loop_at_once(
        self, service: Bridge
    ) -> None:
        """A worker's post wakes the loop from its wait (no polling interval)."""
        wait_until(service.conn.connected.is_set, timeout=10, what="connected")
        ran = threading.Event()
        ran_on: list[str] = []

        def call() -> None:
            ran_on.append(threading.current_thread().name)
            ran.set()

        posted = time.monotonic()
        threading.Thread(target=service.rim.call_soon, args=(call,)).start()
        assert ran.wait(5)
        assert time.monotonic() - posted < 1.0  # the loop's idle wait is up to 5 s
        assert ran_on == ["bridge-loop"]

    def test_reconnects_after_the_broker_comes_back(
        self, broker: Broker, service: Bridge
    ) -> None:
        """The loop drives the reconnect itself: the connection comes back, and so do records."""
        wait_until(service.conn.connected.is_set, timeout=10, what="connected")
        broker.stop()
        wait_until(lambda: not service.conn.connected.is_set(), timeout=10, what="disconnected")
        broker.start()
        wait_until(service.conn.connected.is_set, timeout=15, what="reconnected")
        publish(broker, "collector", {"devices/192.168.1.103/state": device()})
        wait_until(lambda: "192.168.1.103" in service.state.devices, timeout=10,
                   what="a record after the reconnect")
