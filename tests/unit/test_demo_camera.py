"""The demo camera answers the RTSP probe like a camera would, on loopback only."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.broker import free_port, port_in_use
from demo.camera import Cameras, endpoints_from_config, serve
from tests.conftest import wait_until


@pytest.fixture
def camera() -> Iterator[Cameras]:
    cameras = serve([("127.0.0.1", 0)])
    yield cameras
    cameras.close()


def _exchange(address: tuple[str, int], request: bytes) -> str:
    """Send `request`, return everything the camera answers before closing or going idle."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("latin-1")


def _head(response: str) -> tuple[str, dict[str, str]]:
    status, *lines = response.split("\r\n\r\n")[0].split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines)


class TestRtsp:
    def test_options_is_ok_and_echoes_cseq(self, camera: Cameras) -> None:
        """OPTIONS gets 200 with the request's CSeq and the methods on offer."""
        answer = _exchange(
            camera.addresses[0], b"OPTIONS rtsp://127.0.0.1/ch2 RTSP/1.0\r\nCSeq: 7\r\n\r\n"
        )
        status, headers = _head(answer)
        assert status == "RTSP/1.0 200 OK"
        assert headers["CSeq"] == "7"
        assert headers["Public"] == "OPTIONS, DESCRIBE"

    def test_describe_returns_sdp(self, camera: Cameras) -> None:
        """DESCRIBE gets 200 and an SDP body of the announced length."""
        answer = _exchange(
            camera.addresses[0], b"DESCRIBE rtsp://127.0.0.1/ch1 RTSP/1.0\r\nCSeq: 2\r\n\r\n"
        )
        body = answer.split("\r\n\r\n", 1)[1]
        status, headers = _head(answer)
        assert status == "RTSP/1.0 200 OK"
        assert headers["Content-Type"] == "application/sdp"
        assert int(headers["Content-Length"]) == len(body)
        assert body.startswith("v=0\r\n")
        assert "m=video" in body

    def test_other_methods_get_501(self, camera: Cameras) -> None:
        """SETUP, PLAY and the like are not implemented, and say so with the CSeq."""
        request = b"PLAY rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: 3\r\n\r\n"
        answer = _exchange(camera.addresses[0], request)
        status, headers = _head(answer)
        assert status == "RTSP/1.0 501 Not Implemented"
        assert headers["CSeq"] == "3"

    def test_several_requests_on_one_connection(self, camera: Cameras) -> None:
        """A client may keep the connection for more requests, answered in order."""
        request = b"".join(
            f"OPTIONS rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: {n}\r\n\r\n".encode() for n in (1, 2)
        )
        answer = _exchange(camera.addresses[0], request)
        assert answer.count("RTSP/1.0 200 OK") == 2
        assert answer.index("CSeq: 1") < answer.index("CSeq: 2")

    def test_garbage_gets_400(self, camera: Cameras) -> None:
        """A request line that is not RTSP is refused and the connection closed."""
        answer = _exchange(camera.addresses[0], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith("RTSP/1.0 400 Bad Request")


class TestListening:
    def test_several_addresses_one_port(self) -> None:
        """One process pretends to be several cameras, one per loopback address."""
        port = free_port()
        cameras = serve([("127.0.0.1", port), ("127.0.0.2", port)])
        try:
            for host in ("127.0.0.1", "127.0.0.2"):
                answer = _exchange((host, port), b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
                assert answer.startswith("RTSP/1.0 200 OK")
        finally:
            cameras.close()

    def test_refuses_non_loopback_address(self) -> None:
        """Listening outside 127.0.0.0/8 (or ::1) is refused before anything is bound."""
        with pytest.raises(ValueError, match="not a loopback address"):
            serve([("192.0.2.10", 0)])
        done = subprocess.run(
            [sys.executable, "-m", "demo.camera", "--bind", "192.0.2.10"],
            capture_output=True, timeout=30, check=False,
        )
        assert done.returncode == 2
        assert b"192.0.2.10 is not a loopback address" in done.stderr

    def test_endpoints_from_config(self, tmp_path: Path) -> None:
        """Without --bind, the config's loopback rtsp devices are served at their URL's port."""
        config = tmp_path / "c.toml"
        config.write_text(
            '[[devices]]\nip = "127.0.0.11"\nlocation = "x"\ntype = "2"\n'
            'url = "rtsp://127.0.0.11:8554/ch2"\nprobe = "rtsp"\n'
            '[[devices]]\nip = "127.0.0.13"\nlocation = "y"\ntype = "0"\nprobe = "tcp:8554"\n'
        )
        assert endpoints_from_config(str(config)) == [("127.0.0.11", 8554)]

    def test_sigterm_stops_cleanly(self) -> None:
        """The program answers until SIGTERM and then exits 0."""
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "demo.camera", "--bind", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            wait_until(lambda: port_in_use(port) or proc.poll() is not None, what="the camera")
            answer = _exchange(("127.0.0.1", port), b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            assert answer.startswith("RTSP/1.0 200 OK")
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert b"SIGTERM: stopping" in err
