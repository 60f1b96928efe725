"""The device probes against real sockets on 127.0.0.1: RTSP answers, refusals, silence."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bridge.config import DeviceEntry
from collectors.probes import probe_all, probe_device, probe_rtsp, probe_tcp, rtsp_url
from demo.broker import free_port

HOST = "127.0.0.1"
TIMEOUT = 2.0

# Treats one accepted connection; hands what the client sent to the recorder
# before answering, so a test that got its answer can look at the request.
Behaviour = Callable[[socket.socket, Callable[[bytes], None]], None]


class Responder:
    """A TCP listener on 127.0.0.1 that treats each connection with `behaviour`.

    `requests` holds what each client sent before the behaviour answered.
    """

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests: list[bytes] = []
        self._sock = socket.create_server((HOST, 0))
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                self.behaviour(conn, self.requests.append)

    def close(self) -> None:
        # shutdown() wakes the blocked accept(); close() alone would not on Linux.
        self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)


def answer(status_line: bytes) -> Behaviour:
    """Read the request up to the blank line, then answer with `status_line`."""

    def behave(conn: socket.socket, record: Callable[[bytes], None]) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        record(data)
        conn.sendall(status_line + b"\r\nCSeq: 1\r\n\r\n")

    return behave


def close_at_once(_conn: socket.socket, _record: Callable[[bytes], None]) -> None:
    """Accept and hang up without a word."""


def stay_silent(conn: socket.socket, _record: Callable[[bytes], None]) -> None:
    """Read until the client gives up, never answering."""
    while conn.recv(4096):
        pass


@pytest.fixture
def responder() -> Iterator[Callable[[Behaviour], Responder]]:
    made: list[Responder] = []

    def make(behaviour: Behaviour) -> Responder:
        made.append(Responder(behaviour))
        return made[-1]

    yield make
    for item in made:
        item.close()



class TestProbeRtsp:
    def test_200_is_online(self, responder: Callable[[Behaviour], Responder]) -> None:
        """An `RTSP/1.0 200 OK` answer to OPTIONS means online."""
        server = responder(answer(b"RTSP/1.0 200 OK"))
        assert probe_rtsp(f"rtsp://{HOST}:{server.port}/ch2", TIMEOUT)

    def test_sends_options_for_the_url(self, responder: Callable[[Behaviour], Responder]) -> None:
        """The request is `OPTIONS <url> RTSP/1.0` with CSeq 1, credentials left out."""
        server = responder(answer(b"RTSP/1.0 200 OK"))
        assert probe_rtsp(f"rtsp://admin:secret@{HOST}:{server.port}/ch2?x=1", TIMEOUT)
        assert server.requests == [
            f"OPTIONS rtsp://{HOST}:{server.port}/ch2?x=1 RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode()
        ]

    @pytest.mark.parametrize(
        "status_line",
        [b"RTSP/1.0 401 Unauthorized", b"RTSP/1.0 404 Not Found", b"RTSP/2.0 200 OK",
         b"RTSP/1.0 454 Session Not Found"],
    )
    def test_a_server_that_answers_is_online(
        self, responder: Callable[[Behaviour], Responder], status_line: bytes
    ) -> None:
        """A camera that wants a login (401) or has no such stream (404) is up."""
        server = responder(answer(status_line))
        assert probe_rtsp(f"rtsp://{HOST}:{server.port}/", TIMEOUT)

    @pytest.mark.parametrize(
        "status_line",
        [b"RTSP/1.0 500 Internal Server Error", b"RTSP/1.0 503 Service Unavailable",
         b"HTTP/1.1 200 OK", b"RTSP/1.0 2000 OK", b"RTSP/1.0 OK", b"RTSP/1.0 099 x",
         b"\xff\xfe garbage"],
    )
    def test_server_error_other_protocol_or_garbage_is_offline(
        self, responder: Callable[[Behaviour], Responder], status_line: bytes
    ) -> None:
        """A 5xx (a wedged server), another protocol or garbage means offline."""
        server = responder(answer(status_line))
        assert not probe_rtsp(f"rtsp://{HOST}:{server.port}/", TIMEOUT)

    def test_hang_up_is_offline(self, responder: Callable[[Behaviour], Responder]) -> None:
        """A server that closes without answering is offline."""
        server = responder(close_at_once)
        assert not probe_rtsp(f"rtsp://{HOST}:{server.port}/", TIMEOUT)

    def test_no_listener_is_offline(self) -> None:
        """A refused connection is offline, not an exception."""
        assert not probe_rtsp(f"rtsp://{HOST}:{free_port()}/", TIMEOUT)

    def test_silence_is_offline_within_the_timeout(
        self, responder: Callable[[Behaviour], Responder]
    ) -> None:
        """A server that never answers costs at most about the timeout, then offline."""
        server = responder(stay_silent)
        started = time.monotonic()
        assert not probe_rtsp(f"rtsp://{HOST}:{server.port}/", 0.3)
        assert time.monotonic() - started < 2.0

    @pytest.mark.parametrize(
        "target", ["http://127.0.0.1:1/", "rtsp://", "rtsp://127.0.0.1:99999/", "rtsp://[::1/"]
    )
    def test_bad_urls_are_offline(self, target: str) -> None:
        """A URL that is not a usable rtsp:// URL is offline, never an exception."""
        assert not probe_rtsp(target, TIMEOUT)

    def test_bare_ip_means_the_default_port(self) -> None:
        """An IP alone is probed at rtsp://IP:554/ (brackets for IPv6)."""
        assert rtsp_url("127.0.0.11") == "rtsp://127.0.0.11:554/"
        assert rtsp_url("::1") == "rtsp://[::1]:554/"


class TestProbeLogs:
    """DEBUG lines name the camera without the credentials of its stream URL."""

    SECRET = "s3cr3t-pw"

    def test_failed_probe_hides_the_password(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A refused connection logs the URL as redact() shows it, no password, no query."""
        url = f"rtsp://admin:{self.SECRET}@{HOST}:{free_port()}/ch2?token={self.SECRET}"
        with caplog.at_level(logging.DEBUG, logger="collectors.probes"):
            assert not probe_rtsp(url, TIMEOUT)

        assert caplog.records, "the failure is logged at DEBUG"
        assert self.SECRET not in caplog.text
        assert f"rtsp://{HOST}:" in caplog.text

    def test_bad_answer_hides_the_password(
        self, responder: Callable[[Behaviour], Responder], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 5xx answer is logged with the redacted URL."""
        server = responder(answer(b"RTSP/1.0 500 Internal Server Error"))
        url = f"rtsp://admin:{self.SECRET}@{HOST}:{server.port}/ch2"
        with caplog.at_level(logging.DEBUG, logger="collectors.probes"):
            assert not probe_rtsp(url, TIMEOUT)

        assert "500" in caplog.text
        assert self.SECRET not in caplog.text

    def test_not_rtsp_hides_the_password(self, caplog: pytest.LogCaptureFixture) -> None:
        """A URL of another scheme is refused in the log without its credentials."""
        with caplog.at_level(logging.DEBUG, logger="collectors.probes"):
            assert not probe_rtsp(f"http://admin:{self.SECRET}@{HOST}:1/", TIMEOUT)

        assert "not an rtsp:// URL" in caplog.text
        assert self.SECRET not in caplog.text


class TestProbeTcp:
    def test_listener_is_online(self, responder: Callable[[Behaviour], Responder]) -> None:
        """An accepted connection means online."""
        server = responder(close_at_once)
        assert probe_tcp(HOST, server.port, TIMEOUT)

    def test_no_listener_is_offline(self) -> None:
        """A refused connection means offline."""
        assert not probe_tcp(HOST, free_port(), TIMEOUT)

    def test_bad_port_is_offline(self) -> None:
        """An impossible port is offline, not an exception."""
        assert not probe_tcp(HOST, 70000, TIMEOUT)


def entry(probe: str, ip: str = HOST, url: str = "") -> DeviceEntry:
    return DeviceEntry(ip=ip, location="loc", type="2", url=url, probe=probe)


class TestProbeDevice:
    def test_none_is_always_online(self) -> None:
        """`probe = "none"` needs no network at all."""
        assert probe_device(entry("none", ip="127.0.0.13"), TIMEOUT)

    def test_tcp_uses_the_configured_port(
        self, responder: Callable[[Behaviour], Responder]
    ) -> None:
        """`tcp:PORT` connects to that port of the device's IP."""
        server = responder(close_at_once)
        assert probe_device(entry(f"tcp:{server.port}"), TIMEOUT)
        assert not probe_device(entry(f"tcp:{free_port()}"), TIMEOUT)

    def test_rtsp_uses_the_device_url(self, responder: Callable[[Behaviour], Responder]) -> None:
        """`rtsp` probes the device's own rtsp:// URL when it has one."""
        good = responder(answer(b"RTSP/1.0 200 OK"))
        bad = responder(answer(b"RTSP/1.0 503 Service Unavailable"))
        assert probe_device(entry("rtsp", url=f"rtsp://{HOST}:{good.port}/ch1"), TIMEOUT)
        assert not probe_device(entry("rtsp", url=f"rtsp://{HOST}:{bad.port}/ch1"), TIMEOUT)


class TestProbeAll:
    def test_every_device_gets_its_result(
        self, responder: Callable[[Behaviour], Responder]
    ) -> None:
        """All devices are probed on the pool and each result comes back once."""
        good = responder(answer(b"RTSP/1.0 200 OK"))
        silent = responder(stay_silent)
        devices = [
            entry("rtsp", ip="127.0.0.1", url=f"rtsp://{HOST}:{good.port}/"),
            entry("rtsp", ip="127.0.0.2", url=f"rtsp://{HOST}:{silent.port}/"),
            entry(f"tcp:{free_port('127.0.0.3')}", ip="127.0.0.3"),
            entry("none", ip="127.0.0.4"),
        ]
        with ThreadPoolExecutor(4) as pool:
            results = {d.ip: online for d, online in probe_all(devices, pool, 0.5)}
        assert results == {
            "127.0.0.1": True, "127.0.0.2": False, "127.0.0.3": False, "127.0.0.4": True,
        }

    def test_results_come_as_they_are_known(
        self, responder: Callable[[Behaviour], Responder]
    ) -> None:
        """A fast answer is not held back by a slow probe."""
        silent = responder(stay_silent)
        devices = [
            entry("rtsp", ip="127.0.0.2", url=f"rtsp://{HOST}:{silent.port}/"),
            entry("none", ip="127.0.0.4"),
        ]
        with ThreadPoolExecutor(2) as pool:
            order = [d.ip for d, _ in probe_all(devices, pool, 0.5)]
        assert order == ["127.0.0.4", "127.0.0.2"]
