"""Where reports go (docs/protocol.md): login, the config topic, several targets."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.broker import Broker
from receiver.app import create_app
from receiver.faults import Fault
from receiver.login import LoginSettings
from receiver.server import ReceiverServer
from tests.conftest import collect, wait_until
from tests.integration.stack import (
    BASE,
    DEV_SNO,
    device,
    faults,
    publish,
    publish_spec_example,
    running_bridge,
    statuses,
    wait_report,
    write_config,
)


@pytest.fixture
def platforms() -> Iterator[list[ReceiverServer]]:
    """Two reference platforms; the first answers logins with period 1 s."""
    first = ReceiverServer(create_app(faults=True, login=LoginSettings(period=1))).start()
    second = ReceiverServer(create_app(faults=True)).start()
    yield [first, second]
    first.stop()
    second.stop()


def _gaps(platform: ReceiverServer) -> list[float]:
    times = [r.received_at for r in platform.state.store.reports()]
    return [b - a for a, b in itertools.pairwise(times)]


class TestLogin:
    def test_login_only_reports_to_issued_relative_address_at_issued_period(
        self, tmp_path: Path, broker: Broker, platforms: list[ReceiverServer]
    ) -> None:
        """With only login_url, reports go to the issued relative address every issued period."""
        platform = platforms[0]
        config = write_config(tmp_path / "b.toml", broker,
                              login_url=f"{platform.url}/api/gateway/login")
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            first = wait_report(platform, lambda r: True)
            wait_report(platform, lambda r: r.received_at > first.received_at + 2.2, timeout=6)
        logins = platform.state.store.logins()
        assert logins
        assert logins[0]["dev_sno"] == DEV_SNO
        assert logins[0]["hex_mac"] == "0xe0a509000e6d"
        assert all(0.7 < gap < 1.6 for gap in _gaps(platform)), _gaps(platform)

    def test_later_field_names_are_understood(
        self, tmp_path: Path, broker: Broker
    ) -> None:
        """`device_monitor_url` / `device_monitor_report_period` work like the older names."""
        settings = LoginSettings(address="/DeviceStatus", period=1, new_names=True)
        platform = ReceiverServer(create_app(login=settings)).start()
        try:
            config = write_config(tmp_path / "b.toml", broker,
                                  login_url=f"{platform.url}/api/gateway/login")
            publish_spec_example(broker)
            with running_bridge(config, broker, tmp_path / "bridge.log"):
                first = wait_report(platform, lambda r: True)
                wait_report(platform, lambda r: r.received_at > first.received_at + 0.7)
        finally:
            platform.stop()

    def test_failed_login_is_retried_and_visible(
        self, tmp_path: Path, broker: Broker, platforms: list[ReceiverServer]
    ) -> None:
        """A login answered 500 is retried with backoff and shows on bridge/report."""
        platform = platforms[0]
        faults(platform).set(Fault(status=500, count=2, target="login"))
        config = write_config(tmp_path / "b.toml", broker,
                              login_url=f"{platform.url}/api/gateway/login")
        publish_spec_example(broker)
        with collect(broker, f"{BASE}/bridge/report") as events, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: True)
            seen = events.wait_for(
                lambda ms: any(json.loads(m.payload).get("login") and json.loads(m.payload)["ok"]
                               for m in ms))
        logins = [json.loads(m.payload) for m in seen if "login" in json.loads(m.payload)]
        assert [e["ok"] for e in logins] == [False, False, True]
        assert logins[0]["status"] == 500
        assert all("token" not in json.dumps(e) for e in logins)

    def test_target_refusing_reports_triggers_a_new_login(
        self, tmp_path: Path, broker: Broker, platforms: list[ReceiverServer]
    ) -> None:
        """A login-issued target answering 404 three times running makes the bridge log in again."""
        platform = platforms[0]
        config = write_config(tmp_path / "b.toml", broker, retry_max=0.3,
                              login_url=f"{platform.url}/api/gateway/login")
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: True)
            faults(platform).set(Fault(status=404, count=3))
            wait_until(lambda: len(platform.state.store.logins()) >= 2, timeout=10,
                       what="a second login")


class TestConfigTopic:
    def test_config_topic_moves_reports_and_clearing_moves_them_back(
        self, tmp_path: Path, broker: Broker, platforms: list[ReceiverServer]
    ) -> None:
        """A retained report_url overrides the file within a second; clearing it restores it."""
        home, other = platforms
        config = write_config(tmp_path / "b.toml", broker, f"{home.url}/DeviceStatus")
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(home, lambda r: True)
            published = time.time()
            publish(broker, "operator", {"config/report_url": f"{other.url}/DeviceStatus".encode()})
            moved = other.state.store.wait_for(lambda r: True, timeout=5)
            assert moved is not None
            cleared = time.time()
            publish(broker, "operator", {"config/report_url": b""})
            back = wait_report(home, lambda r: True, after=cleared, timeout=5)
        # min_interval is 0.2 s here: a second leaves room for a loaded machine.
        assert moved.received_at - published <= 1.0
        assert back.received_at - cleared <= 1.0

    def test_added_target_gets_the_state_and_the_others_no_repeat(
        self, tmp_path: Path, broker: Broker, platforms: list[ReceiverServer]
    ) -> None:
        """Adding a second URL sends the current state to it alone, not again to the first."""
        home, other = platforms
        config = write_config(tmp_path / "b.toml", broker, f"{home.url}/DeviceStatus")
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(home, lambda r: True)
            both = f"{home.url}/DeviceStatus,{other.url}/DeviceStatus"
            publish(broker, "operator", {"config/report_url": both.encode()})
            assert other.state.store.wait_for(lambda r: True, timeout=5) is not None
            # A marker change: once it is in at home, a repeat would have been too.
            publish(broker, "app", {"apps/app/devices/10.0.9.1/state": device()})
            wait_report(home, lambda r: "10.0.9.1" in statuses(r))
        assert len(home.state.store.reports()) == 2

    def test_app_cannot_write_the_config_topic(
        self, tmp_path: Path, broker: Broker, platforms: list[ReceiverServer]
    ) -> None:
        """Only the operator role may set report_url: an app's attempt changes nothing."""
        home, other = platforms
        config = write_config(tmp_path / "b.toml", broker, f"{home.url}/DeviceStatus",
                              interval=0.5)
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            first = wait_report(home, lambda r: True)
            publish(broker, "app", {"config/report_url": f"{other.url}/DeviceStatus".encode()})
            wait_report(home, lambda r: True, after=first.received_at + 1.0, timeout=3)
        assert other.state.store.reports() == []


class TestSeveralTargets:
    def test_one_target_down_never_delays_another(
        self, tmp_path: Path, broker: Broker, platforms: list[ReceiverServer]
    ) -> None:
        """With two targets of which one answers 503, the other gets every report on time."""
        good, bad = platforms
        faults(bad).set(Fault(status=503, delay=0.3))
        config = write_config(
            tmp_path / "b.toml", broker,
            [f"{good.url}/DeviceStatus", f"{bad.url}/DeviceStatus"], interval=0.5,
        )
        publish_spec_example(broker)
        with collect(broker, f"{BASE}/bridge/report") as events, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            first = wait_report(good, lambda r: True)
            wait_report(good, lambda r: r.received_at > first.received_at + 2.0, timeout=5)
        assert all(gap < 0.8 for gap in _gaps(good)), _gaps(good)
        targets = {json.loads(m.payload)["target"]: json.loads(m.payload)["ok"]
                   for m in events.messages if "target" in json.loads(m.payload)}
        assert targets == {f"{good.url}/DeviceStatus": True, f"{bad.url}/DeviceStatus": False}
        ids = [r.report_id for r in good.state.store.reports()]
        assert len(set(ids)) == len(ids)
