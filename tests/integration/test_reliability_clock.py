"""Clock steps: NTP moves the box's wall clock by hours while the bridge runs.

The bridge runs in-process (`bridge.service.Bridge`) with a `SteppedClock`,
against the real broker and platform. Publishers on the same box share that
clock, so records published after a step carry `ts` in the new time. A
record's age is judged once, at arrival, from `ts` against the wall clock;
after that its deadline lives on the monotonic clock, which no step moves.

Each test also restarts the broker after the step: the bridge reconnects and
gets every retained record again, byte for byte, and must not judge their age
again with the stepped clock (docs/reliability.md, "Clock steps").
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
from tests.integration.reliability_kit import SteppedClock
from tests.integration.stack import (
    device,
    publish,
    publish_spec_example,
    statuses,
    wait_report,
    write_config,
)

HOURS = 3 * 3600.0



@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


class InProcess:
    """A `Bridge` run on its own thread by `start()`, until `stop()`."""

    def __init__(self, service: Bridge) -> None:
        self.service = service
        self._thread = threading.Thread(target=service.run, name="bridge-under-test",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.service.stop()
            self._thread.join(15)
            assert not self._thread.is_alive()


@pytest.fixture
def bridge(
    tmp_path: Path, broker: Broker, platform: ReceiverServer, clock: SteppedClock
) -> Iterator[InProcess]:
    """The bridge with the stepped clock, as the `bridge` role; started by the test."""
    path = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
    config = parse_config(tomllib.loads(path.read_text()), env=broker.env("bridge"))
    running = InProcess(Bridge(config, clock=clock))
    yield running
    running.stop()


def record(clock: SteppedClock, ttl: float | None, ts: float | None = None) -> dict[str, object]:
    """A device record stamped by a publisher sharing the box's (stepped) clock."""
    fresh: dict[str, object] = {"ts": clock.wall() if ts is None else ts}
    if ttl is not None:
        fresh["ttl"] = ttl
    return {**device(), **fresh}


def restart_broker_and_wait_for_replay(broker: Broker, bridge: InProcess, retained: int) -> None:
    """Restart mosquitto (clean: it keeps its retained set); wait until the bridge re-applied it."""
    service = bridge.service
    before = service.stats.snapshot().accepted
    broker.stop()
    broker.start()
    wait_until(lambda: service.stats.snapshot().accepted >= before + retained, timeout=15,
               what="the retained replay after the reconnect")


class TestClockSteps:
    def test_forward_step_does_not_age_known_records(
        self, broker: Broker, platform: ReceiverServer, clock: SteppedClock, bridge: InProcess
    ) -> None:
        """+3 h: nothing goes offline early, not even after a reconnect replays every record."""
        publish_spec_example(broker)
        published = time.time()
        publish(broker, "app", {"apps/app/devices/10.0.7.1/state": record(clock, ttl=4),
                                "apps/app/devices/10.0.7.2/state": record(clock, ttl=60),
                                "apps/app/devices/10.0.7.3/state": record(clock, ttl=None)})
        bridge.start()
        wait_report(platform, lambda r: len(statuses(r)) == 4)

        clock.step(+HOURS)
        publish(broker, "app", {"apps/app/devices/10.0.7.4/state": record(clock, ttl=60)})
        first = wait_report(platform, lambda r: "10.0.7.4" in statuses(r))
        restart_broker_and_wait_for_replay(broker, bridge, retained=6)
        publish(broker, "app", {"apps/app/devices/10.0.7.5/state": record(clock, ttl=60)})
        after = wait_report(platform, lambda r: "10.0.7.5" in statuses(r))
        expired = wait_report(platform, lambda r: statuses(r)["10.0.7.1"] == "offline")

        assert set(statuses(first).values()) == {"online"}
        assert {ip: s for ip, s in statuses(after).items() if ip != "10.0.7.1"} == {
            "192.168.1.101": "online", "10.0.7.2": "online", "10.0.7.3": "online",
            "10.0.7.4": "online", "10.0.7.5": "online"}
        # 10.0.7.1 lives its 4 s from publication: neither cut short by the step
        # nor by the replay, nor stretched.
        assert 4 - 0.05 <= expired.received_at - published <= 4 + 1.5

    def test_backward_step_keeps_nothing_stale_online(
        self, broker: Broker, platform: ReceiverServer, clock: SteppedClock, bridge: InProcess
    ) -> None:
        """-3 h: records expire on time, a ts in the future buys no extra life, replays neither."""
        publish_spec_example(broker)
        published = time.time()
        publish(broker, "app", {"apps/app/devices/10.0.8.1/state": record(clock, ttl=4),
                                "apps/app/devices/10.0.8.2/state": record(clock, ttl=60)})
        bridge.start()
        wait_report(platform, lambda r: len(statuses(r)) == 3)

        before_step = clock.wall()
        clock.step(-HOURS)
        # Stamped just before the step, delivered after it: 3 h in the bridge's future.
        future = time.time()
        publish(broker, "app", {
            "apps/app/devices/10.0.8.3/state": record(clock, ttl=3, ts=before_step),
            "apps/app/devices/10.0.8.4/state": record(clock, ttl=60)})
        wait_report(platform, lambda r: statuses(r).get("10.0.8.3") == "online")
        restart_broker_and_wait_for_replay(broker, bridge, retained=6)
        old = wait_report(platform, lambda r: statuses(r)["10.0.8.1"] == "offline", timeout=8)
        ahead = wait_report(platform, lambda r: statuses(r).get("10.0.8.3") == "offline", timeout=8)

        # Within its ttl plus scheduling slack (a broker restart and two workers' load fit in
        # 2 s); the clock step it must not follow is 3 hours.
        assert old.received_at - published <= 4 + 2.0
        assert ahead.received_at - future <= 3 + 2.0
        assert statuses(ahead)["10.0.8.2"] == statuses(ahead)["10.0.8.4"] == "online"
