"""The config topics end to end: report_period, login_url and dev_sno move what the bridge
does within 2 s, survive a restart, and `bridge/settings` says what is in force."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.broker import Broker
from receiver.app import create_app
from receiver.login import LoginSettings
from receiver.server import ReceiverServer
from tests.conftest import Collected, collect, wait_until
from tests.integration.stack import (
    BASE,
    DEV_SNO,
    publish,
    publish_spec_example,
    running_bridge,
    wait_report,
    write_config,
)
from tests.integration.test_collectors import Daemon, retained, run_once
from tests.integration.test_collectors import write_config as collector_config

SETTINGS = f"{BASE}/bridge/settings"
WITHIN = 2.0  # seconds from a config topic's publish to its effect at the platform


@pytest.fixture
def home() -> Iterator[ReceiverServer]:
    server = ReceiverServer(create_app()).start()
    yield server
    server.stop()


@pytest.fixture
def platform() -> Iterator[ReceiverServer]:
    """A platform that requires the login's token and issues period 1 s."""
    server = ReceiverServer(create_app(login=LoginSettings(period=1), require_token=True)).start()
    yield server
    server.stop()


def dev_sno_of(report: Any) -> object:
    payload = report.payload
    return payload.get("dev_sno") if isinstance(payload, dict) else None


def settings_doc(seen: Collected, predicate: Any = lambda d: True) -> dict[str, Any]:
    """The newest bridge/settings that satisfies `predicate` (waits for it)."""
    def docs(msgs: list[Any]) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in msgs if m.topic == SETTINGS and m.payload]

    found = seen.wait_for(lambda msgs: any(predicate(d) for d in docs(msgs)))
    return [d for d in docs(found) if predicate(d)][-1]


def gaps(server: ReceiverServer, after: float) -> list[float]:
    times = [r.received_at for r in server.state.store.reports() if r.received_at > after]
    return [b - a for a, b in itertools.pairwise(times)]


class TestReportPeriod:
    def test_period_topic_takes_effect_and_survives_a_restart(
        self, tmp_path: Path, broker: Broker, home: ReceiverServer
    ) -> None:
        """config/report_period = 1 turns a 30 s interval into 1 s reports within 2 s, also
        after a restart of the bridge; bridge/settings names the topic as the source."""
        config = write_config(tmp_path / "b.toml", broker, f"{home.url}/DeviceStatus")
        publish_spec_example(broker)
        try:
            with collect(broker, SETTINGS) as seen, \
                    running_bridge(config, broker, tmp_path / "bridge.log"):
                first = wait_report(home, lambda r: True)
                published = time.time()
                publish(broker, "operator", {"config/report_period": b"1"})
                wait_report(home, lambda r: r.received_at > first.received_at + 1.5,
                            timeout=WITHIN + 1)
                doc = settings_doc(seen, lambda d: d["report_period"]["source"] == "topic")
            assert home.state.store.reports()[-1].received_at - published <= WITHIN + 1
            assert doc["report_period"] == {"value": 1.0, "source": "topic"}
            assert doc["report_url"] == {"value": [f"{home.url}/DeviceStatus"],
                                         "source": "file"}
            restarted = time.time()
            with running_bridge(config, broker, tmp_path / "bridge2.log"):
                wait_report(home, lambda r: r.received_at > restarted)
                wait_report(home, lambda r: r.received_at > restarted + 2.2, timeout=6)
            assert all(0.5 < gap < 1.6 for gap in gaps(home, restarted)), gaps(home, restarted)
        finally:
            publish(broker, "operator", {"config/report_period": b""})

    def test_refused_period_keeps_the_previous_and_says_why(
        self, tmp_path: Path, broker: Broker, home: ReceiverServer
    ) -> None:
        """A period of 0 is refused: WARNING, a bridge/errors event, listed in bridge/settings,
        and the interval in force is unchanged."""
        config = write_config(tmp_path / "b.toml", broker, f"{home.url}/DeviceStatus")
        publish_spec_example(broker)
        log = tmp_path / "bridge.log"
        try:
            with collect(broker, f"{BASE}/bridge/#") as seen, running_bridge(config, broker, log):
                wait_report(home, lambda r: True)
                publish(broker, "operator", {"config/report_period": b"0"})
                doc = settings_doc(seen, lambda d: d["refused"])
                errors = seen.wait_for(lambda ms: any(m.topic.endswith("/errors") for m in ms))
        finally:
            publish(broker, "operator", {"config/report_period": b""})
        assert doc["report_period"] == {"value": 30.0, "source": "file"}
        assert doc["refused"][0]["setting"] == "report_period"
        event = json.loads(next(m.payload for m in errors if m.topic.endswith("/errors")))
        assert event["topic"] == f"{BASE}/config/report_period"
        assert "1 to 86400" in event["reason"]
        assert "WARNING" in log.read_text(encoding="utf-8")


class TestLoginTopics:
    def test_login_url_then_dev_sno_topics_log_in_and_report_with_the_token(
        self, tmp_path: Path, broker: Broker, home: ReceiverServer, platform: ReceiverServer
    ) -> None:
        """config/login_url makes the bridge log in and report where the login says within
        2 s; a new config/dev_sno means a new login with it; both survive a restart."""
        config = write_config(tmp_path / "b.toml", broker, f"{home.url}/DeviceStatus")
        publish_spec_example(broker)
        login = f"{platform.url}/api/gateway/login"
        try:
            with collect(broker, SETTINGS) as seen, \
                    running_bridge(config, broker, tmp_path / "bridge.log"):
                wait_report(home, lambda r: True)
                published = time.time()
                publish(broker, "operator", {"config/login_url": login.encode()})
                moved = wait_report(platform, lambda r: True, timeout=WITHIN + 1)
                assert moved.received_at - published <= WITHIN
                doc = settings_doc(seen, lambda d: d["login"]["state"] == "ok")
                assert doc["login_url"] == {"value": login, "source": "topic"}
                assert doc["report_url"] == {"value": [f"{platform.url}/DeviceStatus"],
                                             "source": "login"}
                assert doc["dev_sno"] == {"value": DEV_SNO, "source": "gateway"}

                published = time.time()
                publish(broker, "operator", {"config/dev_sno": b"NEWCODE01"})
                wait_until(lambda: any(x["dev_sno"] == "NEWCODE01"
                                       for x in platform.state.store.logins()),
                           timeout=WITHIN, what="a login with the new dev_sno")
                wait_report(platform, lambda r: r.received_at > published + 0.1,
                            timeout=WITHIN + 1)
                doc = settings_doc(seen, lambda d: d["dev_sno"]["source"] == "topic"
                                   and d["login"]["state"] == "ok")
                assert doc["dev_sno"] == {"value": "NEWCODE01", "source": "topic"}
            restarted = time.time()
            with running_bridge(config, broker, tmp_path / "bridge2.log"):
                wait_report(platform, lambda r: r.received_at > restarted)
            assert platform.state.store.logins()[-1]["dev_sno"] == "NEWCODE01"
            text = (tmp_path / "bridge.log").read_text(encoding="utf-8")
            assert not any(token in text for token in platform.state.tokens.issued)
        finally:
            publish(broker, "operator", {"config/login_url": b"", "config/dev_sno": b""})

    def test_a_new_dev_sno_is_one_dev_sno_in_query_and_body(
        self, tmp_path: Path, broker: Broker
    ) -> None:
        """After config/dev_sno (PUT DevSno), every report carries the new code in its body
        as in its query, before gateway/info is republished with it (no gateway collector
        runs here): the strict platform, which checks they match, refuses none."""
        strict = ReceiverServer(create_app(login=LoginSettings(period=1), require_token=True,
                                           strict=True)).start()
        login = f"{strict.url}/api/gateway/login"
        config = write_config(tmp_path / "b.toml", broker, login_url=login)
        publish_spec_example(broker)
        try:
            with running_bridge(config, broker, tmp_path / "bridge.log"):
                wait_report(strict, lambda r: not r.rejected)
                changed = time.time()
                publish(broker, "operator", {"config/dev_sno": b"NEWCODE02"})
                new = wait_report(strict, lambda r: dev_sno_of(r) == "NEWCODE02",
                                  timeout=WITHIN + 1, after=changed)
                wait_report(strict, lambda r: True, after=new.received_at)
            after = [r for r in strict.state.store.reports() if r.received_at > changed]
            assert after
            assert not [r.violations for r in after if r.rejected]
            bodies = [r.payload for r in after if isinstance(r.payload, dict)]
            assert all(b["sub_devices"][0]["ep_id"].startswith("NEWCODE02__")
                       for b in bodies if b["dev_sno"] == "NEWCODE02")
        finally:
            publish(broker, "operator", {"config/dev_sno": b""})
            strict.stop()

    def test_clearing_the_login_url_falls_back_to_the_file(
        self, tmp_path: Path, broker: Broker, home: ReceiverServer, platform: ReceiverServer
    ) -> None:
        """An empty config/login_url: no login, reports back at the file's URL within 2 s."""
        config = write_config(tmp_path / "b.toml", broker, f"{home.url}/DeviceStatus")
        publish_spec_example(broker)
        publish(broker, "operator",
                {"config/login_url": f"{platform.url}/api/gateway/login".encode()})
        try:
            with collect(broker, SETTINGS) as seen, \
                    running_bridge(config, broker, tmp_path / "bridge.log"):
                wait_report(platform, lambda r: True)
                cleared = time.time()
                publish(broker, "operator", {"config/login_url": b""})
                back = wait_report(home, lambda r: r.received_at > cleared, timeout=WITHIN + 1)
                doc = settings_doc(seen, lambda d: d["login"]["state"] == "off")
            assert back.received_at - cleared <= WITHIN
            assert doc["login_url"] == {"value": "", "source": "none"}
            assert doc["report_url"]["source"] == "file"
        finally:
            publish(broker, "operator", {"config/login_url": b""})


class TestGatewayCollector:
    def test_dev_sno_topic_is_republished_in_gateway_info_at_once(
        self, tmp_path: Path, broker: Broker
    ) -> None:
        """The gateway collector takes config/dev_sno into gateway/info within 2 s (no wait
        for its next cycle), refuses a bad one, and goes back to the file's when cleared."""
        config = collector_config(tmp_path / "se3.toml", broker, metrics_interval=600)
        info = f"{BASE}/gateway/info"

        def dev_sno_is(value: str) -> Any:
            return lambda msgs: any(m.topic == info and json.loads(m.payload)["dev_sno"] == value
                                    for m in msgs)

        daemon = Daemon(broker, config, "gateway", tmp_path / "gateway.log")
        try:
            with collect(broker, info) as seen:
                seen.wait_for(dev_sno_is(DEV_SNO))
                published = time.monotonic()
                publish(broker, "operator", {"config/dev_sno": b"TOPIC42"})
                seen.wait_for(dev_sno_is("TOPIC42"), timeout=WITHIN)
                assert time.monotonic() - published <= WITHIN
                publish(broker, "operator", {"config/dev_sno": b"bad code"})
                publish(broker, "operator", {"config/dev_sno": b""})
                found = seen.wait_for(
                    lambda msgs: sum(dev_sno_is(DEV_SNO)([m]) for m in msgs) >= 2, timeout=WITHIN)
            shown = [json.loads(m.payload)["dev_sno"] for m in found if m.topic == info]
            assert "bad code" not in shown
            assert "config/dev_sno refused" in daemon.log_text()
        finally:
            daemon.stop()
            publish(broker, "operator", {"config/dev_sno": b""})

    def test_one_shot_run_keeps_the_topics_dev_sno(self, tmp_path: Path, broker: Broker) -> None:
        """`gateway --once` reads the retained config/dev_sno first: it does not put the
        file's code back over the operator's."""
        config = collector_config(tmp_path / "se3.toml", broker)
        publish(broker, "operator", {"config/dev_sno": b"ONCE7"})
        run_once(broker, config, "gateway", "--once")
        held = retained(broker, f"{BASE}/gateway/#")
        assert json.loads(held[f"{BASE}/gateway/info"])["dev_sno"] == "ONCE7"
