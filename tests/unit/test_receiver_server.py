"""Tests of ReceiverServer: the app served for real on a loopback port."""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from receiver.app import create_app
from receiver.server import ReceiverServer
from tests.unit.test_receiver_conformance import spec_example

SN = "SZCCKQRAIJBAH0002"


def http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    assert url.startswith("http://127.0.0.1:") or url.startswith("http://[::1]:")
    request = urllib.request.Request(url, data=body, headers=headers or {})  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
        return json.loads(answer.read())


def post_report(base: str, report_id: str) -> Any:
    body = json.dumps(spec_example()).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "X-Report-Id": report_id}
    return http(f"{base}/DeviceStatus", body, headers)


class TestReceiverServer:
    def test_serves_on_a_free_port(self) -> None:
        """Port 0 picks a free port; the URL works and the report is kept."""
        with ReceiverServer() as server:
            assert server.url == f"http://127.0.0.1:{server.port}"
            assert server.port != 0
            assert post_report(server.url, f"{SN}-b-1") == {"status": 0, "message": "SUCCESS"}
            assert http(f"{server.url}/api/reports")[0]["report_id"] == f"{SN}-b-1"

    def test_stop_closes_the_port(self) -> None:
        """After stop the port refuses connections, and a second stop is harmless."""
        server = ReceiverServer().start()
        url = server.url
        server.stop()
        server.stop()
        with pytest.raises(urllib.error.URLError):
            http(f"{url}/api/stats")

    def test_wait_for_a_report(self) -> None:
        """A test can wait on the server's store for a report posted from another thread."""
        with ReceiverServer(create_app(strict=True)) as server:
            poster = threading.Thread(target=post_report, args=(server.url, f"{SN}-b-5"))
            poster.start()
            found = server.state.store.wait_for(lambda r: r.report_id == f"{SN}-b-5", timeout=5)
            poster.join(5)
            assert found is not None
            assert found.violations == ()

    def test_port_in_use(self) -> None:
        """A taken port raises OSError from start(), not SystemExit."""
        with ReceiverServer() as first:
            second = ReceiverServer(port=first.port)
            with pytest.raises(OSError, match="in use"):
                second.start()

    def test_not_started(self) -> None:
        """The URL of a server that is not started is an error, not a guess."""
        server = ReceiverServer()
        with pytest.raises(RuntimeError, match="not started"):
            _ = server.url

    def test_started_twice(self) -> None:
        """Starting a running server is an error."""
        with ReceiverServer() as server, pytest.raises(RuntimeError, match="already started"):
            server.start()

    def test_ipv6_loopback(self) -> None:
        """An IPv6 host is bracketed in the URL."""
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this host")
        with ReceiverServer(host="::1") as server:
            assert server.url.startswith("http://[::1]:")
            assert http(f"{server.url}/api/stats")["received"] == 0

    def test_access_log_shows_no_query(self, caplog: pytest.LogCaptureFixture) -> None:
        """werkzeug's access lines (shown at DEBUG) name the path, not the query that holds
        the login's token (nor the login's dev_sno and MAC)."""
        token = "6165c0dd049a1313feccc5e9804234c9"
        body = json.dumps(spec_example()).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Report-Id": "x"}
        with caplog.at_level(logging.INFO, logger="werkzeug"), ReceiverServer() as server:
            http(f"{server.url}/DeviceStatus?token={token}&dev_sno=D", body, headers)
        assert '"POST /DeviceStatus HTTP/1.1" 200' in caplog.text
        assert token not in caplog.text
