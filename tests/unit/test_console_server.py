"""The console's HTTP server (console.server): it listens on the LAN, so an idle or
trickling connection is closed after a while and only so many are served at once."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests
from flask import Flask

from console import server as console_server
from console.server import ConsoleServer


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConsoleServer]:
    monkeypatch.setattr(console_server, "CONNECTION_TIMEOUT", 0.5)
    monkeypatch.setattr(console_server, "MAX_CONNECTIONS", 4)
    app = Flask(__name__)
    app.add_url_rule("/", "index", lambda: "ok")
    srv = ConsoleServer(app).start()
    try:
        yield srv
    finally:
        srv.stop()


def _idle(srv: ConsoleServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\n")  # and then nothing
    return sock


def test_an_idle_connection_is_closed(running: ConsoleServer) -> None:
    """A client that stops sending is cut off: it does not hold a thread for good."""
    with _idle(running) as sock:
        assert sock.recv(1024) == b""  # closed by the server, not by our 5 s timeout


def test_connections_past_the_cap_are_closed_and_the_console_recovers(
        running: ConsoleServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """With MAX_CONNECTIONS open and silent, another is closed at once; once they time
    out, the console answers again."""
    monkeypatch.setattr(console_server, "CONNECTION_TIMEOUT", 2.0)  # room for a busy machine
    held = [_idle(running) for _ in range(console_server.MAX_CONNECTIONS)]
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as extra:
            extra.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert extra.recv(1024) == b""
        for sock in held:
            assert sock.recv(1024) == b""
        assert requests.get(f"{running.url}/", timeout=5).text == "ok"
    finally:
        for sock in held:
            sock.close()
