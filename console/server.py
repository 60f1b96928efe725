"""The console served by werkzeug's threaded WSGI server from a background thread,
started and stopped as every listener of the project (bridge.wsgi). With an
`ssl.SSLContext` it serves HTTPS only (each handshake in its connection's thread).

It listens on the LAN, so each listener bounds what a client can hold
(bridge.listener): a connection silent for CONNECTION_TIMEOUT seconds is closed,
a request must arrive whole within REQUEST_DEADLINE seconds of its first byte,
its headers within 16 KiB and 64 lines (else 431), and past MAX_CONNECTIONS open
at once, or MAX_PER_ADDRESS from one address, a new one is closed at once.
Refused and failed requests are logged, damped, with their paths escaped.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

from bridge.listener import BoundedRequests, CappedThreads, RequestLimits
from bridge.logs import Damper
from bridge.urltext import printable
from bridge.wsgi import BackgroundServer

logger = logging.getLogger(__name__)


CONNECTION_TIMEOUT = 10.0  # seconds a connection may stay silent (each read and write)
REQUEST_DEADLINE = 30.0  # seconds from a request's first byte to the end of its body
MAX_CONNECTIONS = 32  # served at once: a few browsers (6 each) and scripts
MAX_PER_ADDRESS = 8  # from one client address: a browser opens 6
LOG_BURST = (20, 10.0)  # request lines logged per window (seconds); the rest counted

_lines = Damper(burst=LOG_BURST[0], window=LOG_BURST[1])


class _Handler(BoundedRequests, WSGIRequestHandler):
    # The Server header names no software versions to the LAN.
    server_version = "se3-console"
    sys_version = ""

    def request_limits(self) -> RequestLimits:
        # Read at each connection (tests shorten them): an idle or trickling client on
        # the LAN does not hold a thread for good.
        return RequestLimits(idle=CONNECTION_TIMEOUT, deadline=REQUEST_DEADLINE)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The page polls every two seconds: only refusals and failures are worth a
        # line, without the query string. A request line that could not be parsed
        # leaves `command` and `path` unset (http.server answers it 400 itself).
        status = int(code) if str(code).isdigit() else 0
        if status < 400:
            return
        command = getattr(self, "command", None)
        path = getattr(self, "path", None)
        if command and path is not None:
            what = f"{printable(command, 16)} {printable(path.split('?', 1)[0], 200)}"
        else:
            what = f"bad request line '{printable(getattr(self, 'requestline', ''), 80)}'"
        why = getattr(self, "_refusal", "")
        self._log("%s %s%s from %s", what, status, f" ({why})" if why else "",
                  self.address_string())

    def log_error(self, format: str, *args: Any) -> None:
        # http.server's own words on a request it refused (then logged by log_request,
        # with them) or on a read that timed out.
        if format.startswith("code %d") and len(args) == 2:
            self._refusal = printable(str(args[1]), 120)
            return
        self._log("%s from %s", printable(format % args, 200), self.address_string())

    def log_message(self, format: str, *args: Any) -> None:
        self._log("%s from %s", printable(format % args, 200), self.address_string())

    @staticmethod
    def _log(message: str, *args: object) -> None:
        """One line, unless a flood of them is under way: then one a window, with the
        count of those left out (a failed login is logged apart, by console.auth)."""
        allowed, suppressed = _lines.allow("request")
        if allowed:
            more = f" ({suppressed} more requests not logged)" if suppressed else ""
            logger.info("%s%s", message % args, more)


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 hosts in brackets) as (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class _Server(CappedThreads, ThreadedWSGIServer):
    """A thread per connection, at most MAX_CONNECTIONS of them: past that, a new
    connection is closed at once (logged, damped)."""

    label = "console"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, max_connections=MAX_CONNECTIONS,
                         max_per_address=MAX_PER_ADDRESS, **kwargs)


class ConsoleServer(BackgroundServer):
    """One listener of the console (it has two: the face and the system service), each
    with the same protections."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0,
                 tls: ssl.SSLContext | None = None, name: str = "console") -> None:
        super().__init__(app, host, port, label=f"console ({name})", secure=tls is not None,
                         poll_interval=0.2)
        self.name = name
        self._tls = tls

    def make(self, host: str, port: int, fd: int) -> BaseWSGIServer:
        server = _Server(host, port, self.app, handler=_Handler, fd=fd)
        if self._tls is not None:
            # Not werkzeug's own wrapping: it shakes hands in the accepting thread,
            # where one silent client would stop every other.
            server.socket = self._tls.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False)
            server.ssl_context = self._tls  # wsgi.url_scheme https
        return server
