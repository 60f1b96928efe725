"""The console served by werkzeug's threaded WSGI server from a background thread.

The socket is bound in `start()` (port 0 picks a free one), so tests read the
real address from `.url`; `stop()` ends serving and closes the socket. It listens
on the LAN, so it bounds what a client can hold: a connection silent for
CONNECTION_TIMEOUT seconds is closed, and past MAX_CONNECTIONS open at once a new
one is closed at once.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

from bridge.listener import CappedThreads

logger = logging.getLogger(__name__)


CONNECTION_TIMEOUT = 10.0  # seconds a connection may stay silent (each read and write)
MAX_CONNECTIONS = 32  # served at once: a few browsers (6 each) and scripts


class _Handler(WSGIRequestHandler):
    # The Server header names no software versions to the LAN.
    server_version = "se3-console"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Read at each connection (tests shorten it): an idle or trickling client on
        # the LAN does not hold a thread for good.
        self.connection.settimeout(CONNECTION_TIMEOUT)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The page polls every two seconds: only refusals and failures are worth a
        # line, without the query string.
        status = int(code) if str(code).isdigit() else 0
        if status >= 400:
            path = self.path.split("?", 1)[0][:200]
            logger.info("%s %s %s from %s", self.command, path, status, self.address_string())


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 hosts in brackets) as (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class _Server(CappedThreads, ThreadedWSGIServer):
    """A thread per connection, at most MAX_CONNECTIONS of them: past that, a new
    connection is closed at once (logged, damped)."""

    label = "console"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, max_connections=MAX_CONNECTIONS, **kwargs)


class ConsoleServer:
    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ConsoleServer is not started")
        return self._server.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ConsoleServer:
        """Bind and serve in the background; OSError when the address is taken."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # Bound here: werkzeug's own bind exits the process when the port is taken.
        with socket.create_server((self.host, self._port), family=family) as sock:
            port = sock.getsockname()[1]
            self._server = _Server(self.host, port, self.app, handler=_Handler,
                                   fd=sock.fileno())
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name=f"console-{port}", daemon=True)
        self._thread.start()
        logger.info("console listening on %s", self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join(timeout)
        server.server_close()
        self._server = self._thread = None
