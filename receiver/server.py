"""The reference platform served from a background thread, for tests and the CLI.

    with ReceiverServer(create_app(strict=True)) as server:
        post(f"{server.url}/DeviceStatus", ...)
        server.state.store.wait_for(lambda r: ..., timeout=5)

Started and stopped as every listener of the project (bridge.wsgi): port 0
picks a free port, readable from `.port` and `.url` once started. Werkzeug's
threaded server answers each request in its own thread.
"""

from __future__ import annotations

import ssl

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from bridge.wsgi import BackgroundServer
from receiver.app import ReceiverState, create_app, state_of


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


class ReceiverServer(BackgroundServer):
    """Run a receiver app on `host:port` in a daemon thread until `stop()`."""

    def __init__(
        self,
        app: Flask | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(app if app is not None else create_app(), host, port,
                         label="receiver", secure=ssl_context is not None)
        self._ssl_context = ssl_context  # serve HTTPS (tests of the bridge's TLS)

    @property
    def state(self) -> ReceiverState:
        """The app's kept reports, logins, counters and faults."""
        return state_of(self.app)

    def make(self, host: str, port: int, fd: int) -> BaseWSGIServer:
        return make_server(host, port, self.app, threaded=True, ssl_context=self._ssl_context,
                           fd=fd, request_handler=_Handler)
