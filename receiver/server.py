"""The reference platform served from a background thread, for tests and the CLI.

    with ReceiverServer(create_app(strict=True)) as server:
        post(f"{server.url}/DeviceStatus", ...)
        server.state.store.wait_for(lambda r: ..., timeout=5)

The socket is bound in `start()`, not in the constructor, so making one does
no I/O; port 0 picks a free port, readable from `.port` and `.url` once
started. Werkzeug's threaded server answers each request in its own thread.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
from types import TracebackType

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from receiver.app import ReceiverState, create_app, state_of

logger = logging.getLogger(__name__)


class _Handler(WSGIRequestHandler):
    """werkzeug's handler, whose access line names the path without its query: a report's
    query carries the login's token."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", None)
        if path is not None:
            self.path = path.partition("?")[0]
        self.requestline = self.requestline.partition("?")[0]
        try:
            super().log_request(code, size)
        finally:
            if path is not None:
                self.path = path


class ReceiverServer:
    """Run a receiver app on `host:port` in a daemon thread until `stop()`."""

    def __init__(
        self,
        app: Flask | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app if app is not None else create_app()
        self.host = host
        self._port = port
        self._ssl_context = ssl_context  # serve HTTPS (tests of the bridge's TLS)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> ReceiverState:
        """The app's kept reports, logins, counters and faults."""
        return state_of(self.app)

    @property
    def port(self) -> int:
        """The bound port (the free one chosen when constructed with 0)."""
        if self._server is None:
            raise RuntimeError("ReceiverServer is not started")
        return self._server.port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:40123."""
        host = self.host
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass  # a host name such as localhost
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> ReceiverServer:
        """Bind and serve in the background; returns self. Raises OSError if the port is taken."""
        if self._server is not None:
            raise RuntimeError("ReceiverServer is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # Bound here rather than by werkzeug, whose own bind calls sys.exit(1) on EADDRINUSE.
        with socket.create_server((self.host, self._port), family=family) as sock:
            port = sock.getsockname()[1]
            self._server = make_server(
                self.host, port, self.app, threaded=True, ssl_context=self._ssl_context,
                fd=sock.fileno(), request_handler=_Handler,
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how long stop() may wait for the loop to notice
            name=f"receiver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("receiver listening on %s", self.url)
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
        logger.info("receiver stopped")

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
