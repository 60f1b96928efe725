"""The login's token on every report to a login-issued address, against `--require-token`.

The reference platform issues a new token at every login and answers 401 to a
report without its dev_sno's current one, so a token the bridge throws away,
or keeps after a newer login, shows as refused reports.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import pytest
import requests
from flask import Flask

from demo.broker import Broker, free_port
from receiver.app import create_app
from receiver.login import LoginSettings
from receiver.server import ReceiverServer
from tests.conftest import collect, wait_until
from tests.integration.stack import (
    BASE,
    DEV_SNO,
    publish,
    publish_spec_example,
    running_bridge,
    write_config,
)
from tests.integration.test_status_metrics import run_status

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class QueryTap:
    """Keeps the query string of every request to /DeviceStatus."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.queries: list[dict[str, list[str]]] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/DeviceStatus":
            with self._lock:
                self.queries.append(parse_qs(environ.get("QUERY_STRING", "")))
        return self._app(environ, start_response)


def tapped(app: Flask) -> QueryTap:
    wrapped = QueryTap(app.wsgi_app)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    return wrapped


@pytest.fixture
def platform() -> Iterator[ReceiverServer]:
    """A platform that requires the token; its login issues `/DeviceStatus?site=7`."""
    login = LoginSettings(address="/DeviceStatus?site=7&token=stale", period=1)
    server = ReceiverServer(create_app(login=login, require_token=True)).start()
    yield server
    server.stop()


def _events(seen: object) -> list[dict[str, object]]:
    docs = [json.loads(m.payload) for m in seen.messages  # type: ignore[attr-defined]
            if m.topic.endswith("/bridge/report")]
    return [d for d in docs if "target" in d]


class TestToken:
    def test_every_report_carries_the_current_token_and_nothing_leaks(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """Reports to the login's address carry token and dev_sno, merged with its own query;
        the token is in no log line and no event."""
        queries = tapped(platform.app)
        config = write_config(tmp_path / "b.toml", broker,
                              login_url=f"{platform.url}/api/gateway/login")
        publish_spec_example(broker)
        log = tmp_path / "bridge.log"
        with collect(broker, f"{BASE}/bridge/#") as seen, running_bridge(config, broker, log):
            first = platform.state.store.wait_for(lambda r: True, timeout=10)
            assert first is not None
            seen.wait_for(lambda ms: any(e["ok"] for e in _events(seen)))
        tokens = platform.state.tokens.issued
        assert len(tokens) == 1
        assert queries.queries[0] == {"site": ["7"], "token": [tokens[0]], "dev_sno": [DEV_SNO]}
        text = log.read_text(encoding="utf-8") + "".join(
            m.payload.decode() for m in seen.messages)
        assert tokens[0] not in text
        assert "stale" not in text
        targets = {e["target"] for e in _events(seen)}
        assert targets == {f"{platform.url}/DeviceStatus"}  # the address, no query

    def test_rotated_token_is_refused_then_a_new_login_delivers(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """After another login replaced the token: 401, a new login, reports delivered again.
        No token issued is in the bridge's DEBUG log, its topics, `status` or the metrics."""
        config = write_config(tmp_path / "b.toml", broker, retry_max=0.3,
                              login_url=f"{platform.url}/api/gateway/login")
        port = free_port()
        with config.open("a", encoding="utf-8") as fh:
            fh.write(f'\n[bridge]\nmetrics_listen = "127.0.0.1:{port}"\n')
        publish_spec_example(broker)
        log = tmp_path / "bridge.log"
        with collect(broker, f"{BASE}/bridge/#") as seen, running_bridge(config, broker, log):
            assert platform.state.store.wait_for(lambda r: True, timeout=10) is not None
            # Someone logs in as this box: the platform issues a new token, the old one dies.
            answer = requests.get(f"{platform.url}/api/gateway/login",
                                  params={"dev_sno": DEV_SNO, "hex_mac": "0xe0a509000e6d"},
                                  timeout=5)
            assert answer.status_code == 200
            seen.wait_for(lambda ms: any(e["status"] == 401 for e in _events(seen)))
            wait_until(lambda: len(platform.state.tokens.issued) >= 3, what="a new login")
            rotated = len(_events(seen))
            seen.wait_for(lambda ms: any(e["ok"] for e in _events(seen)[rotated:]))
            shown = run_status(config, broker).stdout + requests.get(
                f"http://127.0.0.1:{port}/metrics", timeout=5).text
        statuses = [e["status"] for e in _events(seen)]
        assert statuses.count(401) >= 1
        assert statuses[-1] == 200
        assert f"{platform.url}/DeviceStatus" in shown
        text = shown + log.read_text(encoding="utf-8") + "".join(
            m.payload.decode() for m in seen.messages)
        assert [t for t in platform.state.tokens.issued if t in text] == []

    def test_the_first_401_logs_in_again_at_once(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """A rotated token costs one refused report and a login, not three refusals spaced
        by a backoff of up to retry_max (here 60 s): delivered again within seconds."""
        config = write_config(tmp_path / "b.toml", broker, retry_max=60.0,
                              login_url=f"{platform.url}/api/gateway/login")
        publish_spec_example(broker)
        with collect(broker, f"{BASE}/bridge/#") as seen, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            assert platform.state.store.wait_for(lambda r: True, timeout=10) is not None
            answer = requests.get(f"{platform.url}/api/gateway/login",
                                  params={"dev_sno": DEV_SNO, "hex_mac": "0xe0a509000e6d"},
                                  timeout=5)
            assert answer.status_code == 200
            seen.wait_for(lambda ms: any(e["status"] == 401 for e in _events(seen)))
            refused = next(i for i, e in enumerate(_events(seen)) if e["status"] == 401)
            seen.wait_for(lambda ms: any(e["ok"] for e in _events(seen)[refused:]),
                          timeout=10)
        statuses = [e["status"] for e in _events(seen)[refused:]]
        assert statuses.count(401) == 1
        assert len(platform.state.tokens.issued) == 3

    def test_send_token_off_sends_no_token(
        self, tmp_path: Path, broker: Broker
    ) -> None:
        """`platform.send_token = false`: the login's address gets no token (and the strict
        platform refuses the reports)."""
        server = ReceiverServer(create_app(login=LoginSettings(period=1))).start()
        queries = tapped(server.app)
        try:
            config = write_config(tmp_path / "b.toml", broker, send_token=False,
                                  login_url=f"{server.url}/api/gateway/login")
            publish_spec_example(broker)
            with running_bridge(config, broker, tmp_path / "bridge.log"):
                assert server.state.store.wait_for(lambda r: True, timeout=10) is not None
        finally:
            server.stop()
        assert queries.queries[0] == {}

    def test_a_target_not_from_the_login_gets_no_token(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """With a token in hand, the config topic's URL still gets no token."""
        home = ReceiverServer(create_app()).start()
        queries = tapped(home.app)
        try:
            config = write_config(tmp_path / "b.toml", broker,
                                  login_url=f"{platform.url}/api/gateway/login")
            publish_spec_example(broker)
            with running_bridge(config, broker, tmp_path / "bridge.log"):
                assert platform.state.store.wait_for(lambda r: True, timeout=10) is not None
                publish(broker, "operator",
                        {"config/report_url": f"{home.url}/DeviceStatus?site=3".encode()})
                assert home.state.store.wait_for(lambda r: True, timeout=10) is not None
        finally:
            home.stop()
            publish(broker, "operator", {"config/report_url": b""})
        assert queries.queries[0] == {"site": ["3"]}
