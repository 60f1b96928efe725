"""A pretend IP camera for the demo: just enough RTSP for the device collector's probe.

`se3-demo-camera --bind 127.0.0.11 --bind 127.0.0.12 --port 8554` listens on
each address and answers `OPTIONS` (and a minimal `DESCRIBE`) with
`RTSP/1.0 200 OK`, echoing `CSeq`; any other method gets 501. No media is
ever sent. Without `--bind`, the loopback devices with `probe = "rtsp"` in the
config file (`--config` or $SE3_CONFIG) are served at the port of their URL.
Only loopback addresses are accepted (docs/protocol.md, safety). SIGTERM or SIGINT
stops it cleanly with exit 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import socketserver
import threading
from collections.abc import Iterable
from types import FrameType
from urllib.parse import urlsplit

from bridge.config import ENV_CONFIG, load_config
from bridge.errors import ConfigError
from bridge.logs import LEVELS, setup_logging

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8554
PUBLIC = "OPTIONS, DESCRIBE"
_MAX_LINE = 8192
_MAX_HEADERS = 64
_MAX_BODY = 65536
_REASONS = {200: "OK", 400: "Bad Request", 501: "Not Implemented"}

Endpoint = tuple[str, int]


class RtspHandler(socketserver.StreamRequestHandler):
    """One client connection: any number of requests, until EOF, an error or 10 s idle."""

    timeout = 10

    def handle(self) -> None:
        try:
            while self._one_request():
                pass
        except (TimeoutError, ConnectionError):
            return

    def _one_request(self) -> bool:
        line = self.rfile.readline(_MAX_LINE)
        if not line:
            return False
        parts = line.decode("latin-1").split()
        headers = self._headers()
        if len(parts) != 3 or not parts[2].startswith("RTSP/") or headers is None:
            self._respond(400, "")
            return False
        method, url, _version = parts
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > _MAX_BODY:
            self._respond(400, headers.get("cseq", ""))
            return False
        self.rfile.read(int(length))
        cseq = headers.get("cseq", "")
        if method == "OPTIONS":
            self._respond(200, cseq, {"Public": PUBLIC})
        elif method == "DESCRIBE":
            self._respond(200, cseq, {"Content-Base": url.rstrip("/") + "/"}, self._sdp())
        else:
            logger.debug("%s from %s: not implemented", method, self.client_address[0])
            self._respond(501, cseq, {"Public": PUBLIC})
        return True

    def _headers(self) -> dict[str, str] | None:
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            line = self.rfile.readline(_MAX_LINE).decode("latin-1").strip()
            if not line:
                return headers
            name, sep, value = line.partition(":")
            if not sep:
                return None
            headers[name.strip().lower()] = value.strip()
        return None

    def _sdp(self) -> bytes:
        host = str(self.connection.getsockname()[0])
        family = "IP6" if ":" in host else "IP4"
        return (
            f"v=0\r\no=- 0 0 IN {family} {host}\r\ns=se3 demo camera\r\n"
            f"c=IN {family} {host}\r\nt=0 0\r\n"
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"
        ).encode()

    def _respond(
        self, status: int, cseq: str, extra: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        lines = [f"RTSP/1.0 {status} {_REASONS[status]}"]
        if cseq:
            lines.append(f"CSeq: {cseq}")
        lines.append("Server: se3-demo-camera")
        lines.extend(f"{k}: {v}" for k, v in (extra or {}).items())
        if body:
            lines += ["Content-Type: application/sdp", f"Content-Length: {len(body)}"]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False


class _Server6(_Server):
    address_family = socket.AF_INET6


class Cameras:
    """The running listeners, one thread each; `close()` stops them all."""

    def __init__(self, servers: list[_Server]) -> None:
        self._servers = servers
        # A short poll interval only makes close() quick; idle cost is negligible.
        self._threads = [
            threading.Thread(target=s.serve_forever, args=(0.1,), name=f"rtsp-{s.fileno()}")
            for s in servers
        ]
        for thread in self._threads:
            thread.start()

    @property
    def addresses(self) -> list[Endpoint]:
        return [(str(a[0]), int(a[1])) for a in (s.socket.getsockname() for s in self._servers)]

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()


def check_loopback(hosts: Iterable[str]) -> None:
    """ValueError unless every host is a loopback address (docs/protocol.md, safety)."""
    for host in hosts:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"{host} is not a loopback address; the demo stays on loopback")


def serve(endpoints: Iterable[Endpoint]) -> Cameras:
    """Listen on every (loopback address, port); port 0 picks a free one."""
    endpoints = list(endpoints)
    check_loopback(host for host, _ in endpoints)
    servers: list[_Server] = []
    try:
        for host, port in endpoints:
            cls = _Server6 if ":" in host else _Server
            servers.append(cls((host, port), RtspHandler))
    except BaseException:
        for server in servers:
            server.server_close()
        raise
    return Cameras(servers)


def endpoints_from_config(path: str | None) -> list[Endpoint]:
    """The loopback devices with `probe = "rtsp"`, at the port of their URL (554 without)."""
    found = []
    for device in load_config(path).devices:
        if device.probe != "rtsp":
            continue
        if not ipaddress.ip_address(device.ip).is_loopback:
            logger.warning("device %s is not on loopback; not pretending to be it", device.ip)
            continue
        found.append((device.ip, urlsplit(device.url).port or 554))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="se3-demo-camera", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--bind", action="append", default=[], metavar="ADDRESS",
        help="loopback address to listen on; repeat for more cameras",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--config", help=f"config file (default ${ENV_CONFIG}), without --bind")
    parser.add_argument("--log-level", type=str.upper, default="INFO", choices=LEVELS)
    parser.add_argument("--log-json", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_json)

    try:
        if args.bind:
            endpoints = [(host, args.port) for host in args.bind]
        elif args.config or os.environ.get(ENV_CONFIG):
            endpoints = endpoints_from_config(args.config)
        else:
            parser.error("give --bind ADDRESS (or --config with rtsp devices)")
        check_loopback(host for host, _ in endpoints)
    except (ValueError, ConfigError) as exc:
        logger.error("%s", exc)
        return 2

    # Installed before listening, so an early SIGTERM is still a clean stop.
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cameras = serve(endpoints)
    except OSError as exc:
        logger.error("cannot listen: %s", exc)
        return 1

    for host, port in cameras.addresses:
        logger.info("RTSP camera answering on rtsp://%s:%s/", host, port)
    # Timed waits: a signal that lands on a server thread only sets a flag, and the
    # handler runs on this thread when it next wakes; an untimed wait may never.
    while not stop.wait(0.25):
        pass
    cameras.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
