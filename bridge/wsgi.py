"""A WSGI app served by werkzeug's threaded server from a daemon thread: the reference
receiver's listener and each of the console's.

    with ReceiverServer(create_app()) as server:   # a subclass
        post(f"{server.url}/DeviceStatus", ...)

The socket is bound in `start()`, not in the constructor (making one does no
I/O), and here rather than by werkzeug, whose own bind exits the process when
the port is taken: `start()` raises OSError then. Port 0 picks a free port,
readable from `.port` and `.url` once started. `stop()` ends serving and
closes the socket; it is safe to call twice. A subclass makes its own werkzeug
server (`make`: its handler, its limits, TLS).
"""

from __future__ import annotations

import logging
import socket
import threading
from types import TracebackType
from typing import Self

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

logger = logging.getLogger(__name__)


class BackgroundServer:
    """Serve `app` on `host:port` in a daemon thread until `stop()`; `label` names it in
    the log ("<label> listening on <url>", "<label> stopped")."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, *,
                 label: str = "server", secure: bool = False,
                 poll_interval: float = 0.1) -> None:
        self.app = app
        self.host = host
        self.label = label
        self._port = port
        self._secure = secure  # served over TLS: the URL says https
        self._poll = poll_interval  # how long stop() may wait for the loop to notice
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def make(self, host: str, port: int, fd: int) -> BaseWSGIServer:
        """The werkzeug server on the bound socket `fd` (plain, a thread per request)."""
        return make_server(host, port, self.app, threaded=True, fd=fd)

    @property
    def port(self) -> int:
        """The bound port (the free one chosen when constructed with 0)."""
        if self._server is None:
            raise RuntimeError(f"{self.label} is not started")
        return self._server.port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:40123."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._secure else 'http'}://{host}:{self.port}"

    def start(self) -> Self:
        """Bind and serve in the background; returns self. OSError if the port is taken."""
        if self._server is not None:
            raise RuntimeError(f"{self.label} is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.create_server((self.host, self._port), family=family) as sock:
            self._server = self.make(self.host, sock.getsockname()[1], sock.fileno())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": self._poll},
            name=f"{self.label} {self.port}", daemon=True)
        self._thread.start()
        logger.info("%s listening on %s", self.label, self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join(timeout)
        server.server_close()
        self._server = self._thread = None
        logger.info("%s stopped", self.label)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
