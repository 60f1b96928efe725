"""Secrets stay secret: the MQTT password, the login token and URL credentials.

The bridge runs at DEBUG, the most it ever says; the test reads its whole log
and every event it publishes under `bridge/`, and looks for each secret there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.broker import Broker, free_port
from receiver.app import LoginSettings, create_app
from receiver.faults import Fault
from receiver.server import ReceiverServer
from tests.conftest import Collected, collect, wait_until
from tests.integration.reliability_kit import failures, tap
from tests.integration.stack import (
    BASE,
    faults,
    publish,
    publish_spec_example,
    running_bridge,
    wait_report,
    write_config,
)

URL_PASSWORD = "url-pass-8d1f"
URL_TOKEN = "query-token-5c2e"


def leaks(secret: str, log: str, seen: Collected) -> list[str]:
    """Where `secret` shows: 'log', and the topics of events that carry it."""
    found = ["log"] if secret in log else []
    return found + [m.topic for m in seen.messages if secret.encode() in m.payload]


class TestSecrets:
    @pytest.fixture
    def platform(self) -> Iterator[ReceiverServer]:
        server = ReceiverServer(create_app(login=LoginSettings(period=20), faults=True)).start()
        yield server
        server.stop()

    def test_mqtt_password_and_login_tokens_never_shown(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """Two logins (the second after refusals): no token, no MQTT password in log or events."""
        answers = tap(platform.app, "/api/gateway/login")
        config = write_config(tmp_path / "b.toml", broker, retry_max=0.5,
                              login_url=f"{platform.url}/api/gateway/login")
        publish_spec_example(broker)
        # A 401 from the issued address makes the bridge log in again (once per retry_max).
        faults(platform).set(Fault(status=401, count=3))
        with collect(broker, f"{BASE}/bridge/#") as seen, \
                running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            wait_until(lambda: len(answers.bodies) >= 2, what="a second login")
            wait_report(platform, lambda r: True)
            # an errors event
            publish(broker, "app", {"apps/app/devices/10.0.9.1/state": b"not json"})
            seen.wait_for(lambda msgs: any(m.topic.endswith("/errors") for m in msgs))
            log = bridge.log_text()
        tokens = [json.loads(body)["token"] for body in answers.bodies]
        assert len(tokens) >= 2
        assert "logged in at" in log  # the login itself is logged, without its answer
        assert len(failures(seen)) >= 3
        for secret in [broker.password("bridge"), *tokens]:
            assert leaks(secret, log, seen) == [], secret

    def test_url_credentials_are_redacted(self, tmp_path: Path, broker: Broker) -> None:
        """User info and query string of a report URL show in no log line and no event."""
        port = free_port()
        url = f"http://reporter:{URL_PASSWORD}@127.0.0.1:{port}/DeviceStatus?key={URL_TOKEN}"
        config = write_config(tmp_path / "b.toml", broker, url)
        publish_spec_example(broker)
        platform = ReceiverServer(create_app(faults=True), port=port)
        faults(platform).set(Fault(status=503, count=1))
        try:
            with collect(broker, f"{BASE}/bridge/#") as seen, \
                    running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
                seen.wait_for(lambda _m: len(failures(seen)) >= 2)  # connection refused
                platform.start()
                seen.wait_for(lambda _m: any(e["status"] == 503 for e in failures(seen)))
                wait_report(platform, lambda r: True)
                log = bridge.log_text()
        finally:
            platform.stop()
        assert {e["target"] for e in failures(seen)} == {f"http://127.0.0.1:{port}/DeviceStatus"}
        for secret in (URL_PASSWORD, URL_TOKEN):
            assert leaks(secret, log, seen) == [], secret
