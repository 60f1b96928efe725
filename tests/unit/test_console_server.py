"""The console's HTTP server (console.server): it listens on the LAN, so an idle or
trickling connection is closed after a while and only so many are served at once."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask

from bridge.logs import Damper
from console import server as console_server
from console.server import ConsoleServer
from tests.conftest import closed_by_peer, wait_until


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


# -- what one client may hold: per address, per request, headers ---------------------


@pytest.fixture
def tight(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConsoleServer]:
    """A console with small limits: 2 connections from one address, 6 in all, a
    request deadline of 1.5 s."""
    monkeypatch.setattr(console_server, "CONNECTION_TIMEOUT", 1.0)
    monkeypatch.setattr(console_server, "REQUEST_DEADLINE", 1.5)
    monkeypatch.setattr(console_server, "MAX_CONNECTIONS", 6)
    monkeypatch.setattr(console_server, "MAX_PER_ADDRESS", 2)
    app = Flask(__name__)
    app.add_url_rule("/", "index", lambda: "ok")
    srv = ConsoleServer(app).start()  # on 127.0.0.1, reached from other 127.x sources
    try:
        yield srv
    finally:
        srv.stop()


def _connect(srv: ConsoleServer, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=5,
                                    source_address=(source, 0))


def _get(srv: ConsoleServer, source: str) -> bytes:
    with _connect(srv, source) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_one_address_cannot_take_every_connection(tight: ConsoleServer) -> None:
    """Slow clients from one address hold at most MAX_PER_ADDRESS connections: another
    from that address is closed at once, while another address is still served (the
    admin is not locked out by one neighbour's 32 slow connections)."""
    held = [_connect(tight, "127.0.0.2") for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(b"GET / HTTP/1.1\r\n")  # and then nothing
        wait_until(lambda: tight._server._per_address.get("127.0.0.2") == 2,  # type: ignore[union-attr]
                   what="both slow connections taken")
        with _connect(tight, "127.0.0.2") as extra:
            assert closed_by_peer(extra, within=0.8)  # before the held ones time out
        assert _get(tight, "127.0.0.3").endswith(b"ok")
    finally:
        for sock in held:
            sock.close()


def test_32_slow_connections_from_one_neighbour_leave_the_admin_in() -> None:
    """With the console's own limits: a neighbour's 32 slow connections (which took every
    slot before) hold 8; the admin, at another address, is served at once."""
    app = Flask(__name__)
    app.add_url_rule("/", "index", lambda: "ok")
    srv = ConsoleServer(app).start()
    slow: list[socket.socket] = []
    try:
        for _ in range(32):
            sock = _connect(srv, "127.0.0.8")
            slow.append(sock)
            sock.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
        assert srv._server is not None
        wait_until(lambda: srv._server._per_address.get("127.0.0.8")  # type: ignore[union-attr]
                   == console_server.MAX_PER_ADDRESS, what="the neighbour's share taken")
        assert _get(srv, "127.0.0.9").endswith(b"ok")
    finally:
        for sock in slow:
            sock.close()
        srv.stop()


def test_a_trickling_request_is_cut_off_at_its_deadline(tight: ConsoleServer) -> None:
    """A client that sends a header byte every 0.2 s never trips the per-read timeout;
    the whole request must still arrive within REQUEST_DEADLINE."""
    with _connect(tight, "127.0.0.4") as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < 8 and not closed:
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed = closed_by_peer(sock, within=0.2)
        assert closed, "a trickling request was still held after 8 s"
        assert time.monotonic() - start < 5


def _status_line(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def test_headers_past_their_size_are_refused_431(tight: ConsoleServer) -> None:
    """Headers are held only up to 16 KiB: 99 lines of 65 KB (6 MB a request, and
    32 such requests at once) are refused at the first 16 KiB, not read."""
    with _connect(tight, "127.0.0.5") as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Pad: " + b"a" * 65_000 + b"\r\n"
        try:
            for _ in range(99):
                sock.sendall(line)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we were done: what is wanted
        answer = _read_all(sock)
    assert _status_line(answer).startswith(b"HTTP/1.1 431")


def test_more_header_lines_than_64_are_refused_431(tight: ConsoleServer) -> None:
    with _connect(tight, "127.0.0.6") as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 80 + b"\r\n")
        assert _status_line(_read_all(sock)).startswith(b"HTTP/1.1 431")


def test_ordinary_headers_still_pass(tight: ConsoleServer) -> None:
    with _connect(tight, "127.0.0.7") as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n" + b"X-A: " + b"b" * 4000 + b"\r\n"
                     + b"X-B: c\r\n" * 40 + b"\r\n")
        assert _read_all(sock).endswith(b"ok")


# -- what is logged of a bad request ------------------------------------------------


def _send_raw(srv: ConsoleServer, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(data)
        return _read_all(sock)


def test_a_malformed_request_line_is_one_line_without_a_traceback(
        running: ConsoleServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answer = _send_raw(running, b"\x16\x03\x01 junk\x1b[2J\r\n\r\n")
    assert b"400" in answer  # as HTTP/0.9, the version this line would be
    wait_until(lambda: any("bad request line" in r.getMessage() for r in caplog.records),
               what="the bad request logged")
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    lines = [r.getMessage() for r in caplog.records if "bad request line" in r.getMessage()]
    assert len(lines) == 1
    assert "\x1b" not in lines[0]
    assert "\\x1b" in lines[0]
    assert "\x16" not in lines[0]


def test_control_characters_in_a_logged_path_are_escaped(
        running: ConsoleServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="console.server")
    _send_raw(running, b"GET /nothing\x1b[31m\x7fhere HTTP/1.0\r\n\r\n")

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.name == "console.server" and "/nothing" in r.getMessage()]

    wait_until(lambda: bool(logged()), what="the 404 logged")
    line = logged()[0]
    assert "\x1b" not in line
    assert "\x7f" not in line
    assert "\\x1b[31m\\x7fhere" in line


def test_request_log_lines_are_damped(
        running: ConsoleServer, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of refused requests costs a few lines, not one each."""
    monkeypatch.setattr(console_server, "_lines", Damper(burst=5, window=60.0))
    caplog.set_level(logging.INFO, logger="console.server")
    for n in range(40):
        _send_raw(running, f"GET /flood{n} HTTP/1.0\r\n\r\n".encode())
    flood = [r for r in caplog.records if "/flood" in r.getMessage()]
    assert len(flood) == 5
