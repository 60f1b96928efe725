"""What a threaded HTTP listener on the box bounds, so that no client can hold it.

The metrics listener and the console each run a thread per connection:
- `CappedThreads` goes in front of a `socketserver.ThreadingMixIn` server: past
  `max_connections` open at once, or `max_per_address` from one client address,
  a new connection is closed at once, with a damped WARNING naming `label`. One
  client (one address) can then never take every slot.
- `BoundedRequests` goes in front of a `http.server.BaseHTTPRequestHandler`: each
  read or write may wait `idle` seconds, a request (its line, headers and body)
  must arrive within `deadline` seconds of its first byte however it trickles,
  and its headers within `header_bytes` and `header_lines` (past those: 431).
  A TLS handshake is done in the connection's own thread, within `idle`.
"""

from __future__ import annotations

import http.client
import io
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bridge.logs import Damper

logger = logging.getLogger(__name__)
_handshakes = Damper(burst=5, window=60.0)


class CappedThreads:
    """Mixin (before the ThreadingMixIn server class) bounding its connection threads."""

    label = "listener"

    def __init__(self, *args: Any, max_connections: int, max_per_address: int,
                 **kwargs: Any) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._per_address: dict[str, int] = {}
        self._refusals = Damper(burst=3, window=60.0)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        address = str(client_address[0]) if client_address else "?"
        if not self._take(address):
            self.shutdown_request(request)  # type: ignore[attr-defined]
            return
        try:
            super().process_request(request, client_address)  # type: ignore[misc]
        except BaseException:
            self._give_back(address)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self._give_back(str(client_address[0]) if client_address else "?")

    def _take(self, address: str) -> bool:
        with self._lock:
            held = self._per_address.get(address, 0)
            if held >= self.max_per_address:
                self._refused(address, per_address=True)
                return False
            if not self._slots.acquire(blocking=False):
                self._refused(address, per_address=False)
                return False
            self._per_address[address] = held + 1
            return True

    def _give_back(self, address: str) -> None:
        with self._lock:
            held = self._per_address.pop(address, 0) - 1
            if held > 0:
                self._per_address[address] = held
            self._slots.release()

    def _refused(self, address: str, per_address: bool) -> None:
        allowed, suppressed = self._refusals.allow("address" if per_address else "full")
        if not allowed:
            return
        more = f" ({suppressed} more)" if suppressed else ""
        if per_address:
            logger.warning("%s: %d connections open from %s; closing a new one%s",
                           self.label, self.max_per_address, address, more)
        else:
            logger.warning("%s: %d connections open; closing a new one from %s%s",
                           self.label, self.max_connections, address, more)


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """What one request may take of a connection's time and of the server's memory."""

    idle: float  # seconds one read or write may wait
    deadline: float  # seconds from a request's first byte to the end of its body
    header_bytes: int = 16 * 1024
    header_lines: int = 64


class BoundedRequests:
    """Mixin (before a BaseHTTPRequestHandler class) bounding each request: see the module.

    A subclass says its limits in `request_limits()` (read at each connection)."""

    connection: socket.socket
    client_address: Any
    rfile: Any
    wfile: Any
    _shaken = True  # the TLS handshake (if any) went through

    def request_limits(self) -> RequestLimits:
        raise NotImplementedError

    def setup(self) -> None:
        super().setup()  # type: ignore[misc]
        limits = self.request_limits()
        self.connection.settimeout(limits.idle)
        self._shaken = True
        if isinstance(self.connection, ssl.SSLSocket):
            # Here, not in the accepting thread: a client that stalls its handshake
            # holds its own connection's thread only, and for `idle` at most (the
            # whole handshake is bounded by the socket's timeout).
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                # A browser meeting a self-signed certificate, plain HTTP, a scanner:
                # one damped line, no traceback, and the connection is closed.
                self._shaken = False
                allowed, suppressed = _handshakes.allow("failed")
                if allowed:
                    logger.info("TLS handshake with %s failed: %s%s",
                                self.client_address[0] if self.client_address else "?",
                                getattr(exc, "reason", None) or exc,
                                f" ({suppressed} more)" if suppressed else "")
                return
        self.rfile.close()
        self.rfile = _RequestReader(self.connection, limits)
        self.wfile.close()
        self.wfile = _Writer(self.connection, limits.idle)

    def handle(self) -> None:
        if self._shaken:
            super().handle()  # type: ignore[misc]

    def handle_one_request(self) -> None:
        if isinstance(self.rfile, _RequestReader):
            self.rfile.next_request()
        super().handle_one_request()  # type: ignore[misc]

    def parse_request(self) -> bool:
        if not isinstance(self.rfile, _RequestReader):
            return bool(super().parse_request())  # type: ignore[misc]
        with self.rfile.headers():
            return bool(super().parse_request())  # type: ignore[misc]


class _DeadlineIO(socket.SocketIO):
    """The socket's reads, each bounded by `idle` and all of one request by `deadline`."""

    def __init__(self, sock: socket.socket, limits: RequestLimits) -> None:
        super().__init__(sock, "rb")
        self._sock_ref = sock
        self._limits = limits
        self.due: float | None = None

    def readinto(self, b: Any) -> int | None:
        wait = self._limits.idle
        if self.due is not None:
            left = self.due - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"request not received within {self._limits.deadline:g} s")
            wait = min(wait, left)
        self._sock_ref.settimeout(wait)
        count = super().readinto(b)
        if self.due is None and count:
            self.due = time.monotonic() + self._limits.deadline
        return count


class _RequestReader(io.BufferedReader):
    """The buffered request stream; while the headers are read, their size is counted."""

    def __init__(self, sock: socket.socket, limits: RequestLimits) -> None:
        self._clocked = _DeadlineIO(sock, limits)
        super().__init__(self._clocked)
        self._limits = limits
        self._budget: tuple[int, int] | None = None  # (bytes, lines) left while in headers

    def next_request(self) -> None:
        """The next read starts a request: its deadline runs from its first byte."""
        self._clocked.due = None

    @contextmanager
    def headers(self) -> Iterator[None]:
        self._budget = (self._limits.header_bytes, self._limits.header_lines)
        try:
            yield
        finally:
            self._budget = None

    def readline(self, size: int | None = -1) -> bytes:
        if self._budget is None:
            return super().readline(size)
        left, lines = self._budget
        if lines <= 0:
            # http.server answers an HTTPException from the header parser with 431.
            raise http.client.HTTPException(f"got more than {self._limits.header_lines} "
                                            f"headers")
        cap = left + 1 if size is None or size < 0 else min(size, left + 1)
        line = super().readline(cap)
        if len(line) > left:
            raise http.client.LineTooLong(f"headers over {self._limits.header_bytes} bytes")
        self._budget = (left - len(line), lines - 1)
        return line


class _Writer(io.BufferedIOBase):
    """The socket's writes (unbuffered, as http.server's own), each bounded by `idle`."""

    def __init__(self, sock: socket.socket, idle: float) -> None:
        self._sock = sock
        self._idle = idle

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._sock.settimeout(self._idle)  # a read may have shortened it to its deadline
        self._sock.sendall(b)
        with memoryview(b) as view:
            return view.nbytes

    def fileno(self) -> int:
        return self._sock.fileno()
