"""The broker killed with -9: what its persistence keeps, what it loses, and the bridge's comeback.

The broker runs with `autosave_interval 1`, so the window of loss is one second
here (30 s in the shipped demo conf: docs/reliability.md). A save is seen as a
new inode of `mosquitto.db` (mosquitto writes a temporary file and renames it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from demo.broker import Broker
from receiver.server import ReceiverServer
from tests.conftest import collect, mqtt_client, publish_and_wait, wait_until
from tests.integration.conftest import BrokerFactory
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

SAVED = {"192.168.1.101", "10.0.0.1", "10.0.0.2"}



def _db_stamp(broker: Broker) -> tuple[int, int] | None:
    try:
        st = os.stat(broker.db_path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def wait_for_save(broker: Broker) -> tuple[int, int] | None:
    """Wait until mosquitto has written its database after everything published so far.

    mosquitto is single-threaded: a save that began before our last PUBACK has
    ended by now, so the next new file is a save that includes that message.
    """
    before = _db_stamp(broker)
    wait_until(lambda: _db_stamp(broker) != before, timeout=10, what="an autosave")
    return _db_stamp(broker)


def retained_devices(broker: Broker, marker_ip: str) -> set[str]:
    """The device IPs whose retained records the broker replays to a new subscriber.

    A live record for `marker_ip` (published as a collector) ends the replay: one
    connection's messages reach a subscriber in order, after its retained set.
    The marker itself arrives live, so it is not among them.
    """
    marker = f"{BASE}/devices/{marker_ip}/state"
    with collect(broker, f"{BASE}/devices/+/state") as seen:
        with mqtt_client(broker, "collector") as app:
            publish_and_wait(app, marker, b'{"ep_status":"online","ep_type":"2",'
                                          b'"ep_location":"x"}', retain=True)
        seen.wait_for_topic(marker)
    return {m.topic.split("/")[-2] for m in seen.messages if m.retain and m.payload}


def publish_saved_state(broker: Broker) -> None:
    publish_spec_example(broker)
    publish(broker, "collector", {"devices/10.0.0.1/state": device(),
                                  "devices/10.0.0.2/state": device("offline")})


class TestBrokerCrash:
    def test_bridge_reconnects_resubscribes_and_reports_full_state(
        self, tmp_path: Path, broker_factory: BrokerFactory, platform: ReceiverServer
    ) -> None:
        """kill -9 of mosquitto: the bridge reconnects, resubscribes alone; full reports go on."""
        broker = broker_factory(autosave_interval=1)
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
        publish_saved_state(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            wait_report(platform, lambda r: set(statuses(r)) == SAVED)
            wait_for_save(broker)
            broker.kill()
            broker.start()
            # Nothing but a new subscription can carry this record to the bridge.
            replayed = retained_devices(broker, "10.0.0.99")
            report = wait_report(platform, lambda r: "10.0.0.99" in statuses(r), timeout=20)
            log = bridge.log_text()
        assert replayed == SAVED
        assert statuses(report) == {"192.168.1.101": "online", "10.0.0.1": "online",
                                    "10.0.0.2": "offline", "10.0.0.99": "online"}
        assert log.count("connected to broker") == 2
        assert "disconnected from broker" in log

    def test_power_cut_keeps_saved_state_and_loses_the_window(
        self, tmp_path: Path, broker_factory: BrokerFactory, platform: ReceiverServer
    ) -> None:
        """Broker and bridge killed together: saved records come back, one inside the window not."""
        broker = broker_factory(autosave_interval=1)
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
        publish_saved_state(broker)
        unsure: set[str] = set()
        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            wait_report(platform, lambda r: set(statuses(r)) == SAVED)
            saved = wait_for_save(broker)
            # A record set inside the autosave window; when an autosave slipped in
            # between (the file changed), it may have been kept: try another.
            for attempt in range(3):
                lost = f"10.0.9.{attempt + 1}"
                publish(broker, "collector", {f"devices/{lost}/state": device()})
                broker.kill()
                if _db_stamp(broker) == saved:
                    break
                unsure.add(lost)
                broker.start()
                saved = wait_for_save(broker)
            else:
                pytest.fail("an autosave landed inside every window tried")
            bridge.kill()
        broker.start()
        with running_bridge(config, broker, tmp_path / "bridge2.log"):
            replayed = retained_devices(broker, "10.0.0.99")
            report = wait_report(platform, lambda r: "10.0.0.99" in statuses(r), timeout=20)
        assert lost not in replayed
        assert replayed - unsure == SAVED
        assert lost not in statuses(report)
        assert set(statuses(report)) - unsure == SAVED | {"10.0.0.99"}


class TestResync:
    def test_record_the_broker_lost_is_dropped_after_reconnect(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """After a reconnect the bridge mirrors the broker: what it no longer holds is gone."""
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
        publish_saved_state(broker)
        broker.stop()  # a clean stop saves the database
        broker.start()
        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            wait_report(platform, lambda r: set(statuses(r)) == SAVED)
            publish(broker, "collector", {"devices/10.0.5.5/state": device()})
            before = wait_report(platform, lambda r: "10.0.5.5" in statuses(r))
            broker.kill()  # the new record was never saved: the broker forgets it
            broker.start()
            after = wait_report(platform, lambda r: set(statuses(r)) == SAVED,
                                after=before.received_at, timeout=20)
            assert "gone from the report" in bridge.log_text()
        assert statuses(after)["10.0.0.2"] == "offline"
