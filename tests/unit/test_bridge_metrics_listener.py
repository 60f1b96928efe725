"""The metrics listener holds a bounded number of connections, each for a bounded time."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

import pytest
import requests

import bridge.metrics
from bridge.metrics import serve
from bridge.stats import Stats
from demo.broker import free_port
from tests.conftest import closed_by_peer, wait_until


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[WSGIServer, int]]:
    monkeypatch.setattr(bridge.metrics, "CONNECTION_TIMEOUT", 0.5)
    monkeypatch.setattr(bridge.metrics, "MAX_CONNECTIONS", 3)
    port = free_port()
    server = serve(Stats(), lambda: True, f"127.0.0.1:{port}")
    yield server, port
    server.shutdown()
    server.server_close()


def scrape_ok(port: int) -> bool:
    """Whether /metrics answers; a connection closed at the cap (the idle clients' slots
    are freed by their own threads, a moment after they close) is a no, not an error."""
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).ok
    except requests.ConnectionError:
        return False


class TestMetricsListener:
    def test_an_idle_connection_is_closed_after_the_timeout(
        self, listener: tuple[WSGIServer, int]
    ) -> None:
        """A client that connects and says nothing is let go; it holds no thread for ever."""
        _, port = listener
        with socket.create_connection(("127.0.0.1", port)) as idle:
            start = time.monotonic()
            assert closed_by_peer(idle, within=5)
            assert time.monotonic() - start < 3

    def test_connections_past_the_cap_are_closed_and_scrapes_resume(
        self, listener: tuple[WSGIServer, int]
    ) -> None:
        """With the cap taken by idle clients, a further one is closed at once; once they
        are gone, /metrics answers again."""
        server, port = listener
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            slots = server._slots  # type: ignore[attr-defined]
            wait_until(lambda: slots._value == 0, what="the listener to take all three")
            with socket.create_connection(("127.0.0.1", port)) as extra:
                assert closed_by_peer(extra, within=0.4)  # before the idle ones time out
        finally:
            for sock in idle:
                sock.close()
        wait_until(lambda: scrape_ok(port), timeout=5, what="a scrape")
        answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        assert "se3_broker_connected 1.0" in answer.text


def test_headers_past_their_size_are_refused_431(listener: tuple[WSGIServer, int]) -> None:
    """The metrics listener bounds a request's headers as the console does
    (bridge.listener): past 16 KiB a 431, not megabytes held."""
    _, port = listener
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\n" + b"X-Pad: " + b"a" * 20_000 + b"\r\n\r\n")
        answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.0 431")
