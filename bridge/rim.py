"""The bridge's main loop: one thread drives the MQTT connection and runs what others post.

paho's own network thread would hand every message to the thread that owns
the state: a queue operation per message, and two threads trading the GIL
through a replay of thousands. Here the thread that owns the state drives
paho's I/O itself (paho's external-loop API: `loop_read`, `loop_write`,
`loop_misc`, `want_write` and the socket callbacks) in a `selectors` loop, so
`on_message` runs on the owner's thread and applies a record at once.

Other threads (report targets, the login) never touch the state: they post a
call with `call_soon`, which queues it and writes a byte to a socketpair the
loop also waits on; the same byte cuts a wait short for `wake` (a stop).

Reading is buffered: paho asks its socket for one byte (the packet type), one
byte per length byte, then the rest, one system call each. `_BufferedRecv`
answers those from one `recv` of up to 64 KiB, and the loop reads packets until
that buffer is empty before it waits again.

Reconnecting is ours to drive in this mode: after a lost or refused
connection the loop calls `reconnect()` again after 1 s, doubling up to 10 s
(as paho's own loop does with the `Connection`'s delays), back to 1 s after
a successful connect.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from bridge.logs import Damper
from bridge.mqttclient import Connection

logger = logging.getLogger(__name__)

_CHUNK = 65536  # bytes asked of the socket per read
_BATCH = 4096  # packets read per wake-up before the caller's timers are looked at again
_MISC_EVERY = 1.0  # seconds between paho's keepalive checks
_MIN_DELAY, _MAX_DELAY = 1.0, 10.0  # reconnect backoff, seconds


class _BufferedRecv:
    """Stands in for paho's `_sock_recv`: serves its small reads from one large read."""

    def __init__(self, raw: Callable[[int], bytes]) -> None:
        self._raw = raw  # paho's own, which turns TLS want-read into BlockingIOError
        self._data = b""
        self._pos = 0

    def __call__(self, size: int) -> bytes:
        pos = self._pos
        if pos >= len(self._data):
            data = self._raw(_CHUNK)
            if not data:
                return data  # end of stream: paho sees the connection lost
            self._data, pos = data, 0
        end = pos + size
        self._pos = end
        return self._data[pos:end]

    def pending(self) -> bool:
        return self._pos < len(self._data)

    def clear(self) -> None:
        self._data, self._pos = b"", 0


class Rim:
    """Drives `conn`'s client from the thread that calls `start` and `run_once`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        client = conn.client
        self._client = client
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._calls: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._sock: Any = None
        self._writing = False
        self._running = False
        self._owner_ident: int | None = None
        self._next_attempt: float | None = None
        self._delay: float | None = None
        self._next_misc = 0.0
        self._failures = Damper(burst=3, window=300.0)
        # The owner's callbacks must not raise (they guard themselves); should one
        # slip through, paho logs it and finishes the packet rather than leaving
        # its reader half-way.
        client.suppress_exceptions = True
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = None
        self._recv: _BufferedRecv | None = None
        raw = getattr(client, "_sock_recv", None)
        if callable(raw):  # paho 2.x; without it, one packet per wake-up (paho's own pace)
            self._recv = _BufferedRecv(raw)
            client._sock_recv = self._recv  # type: ignore[method-assign,assignment]
        conn.on_connected(self._connected)

    def set_on_message(self, func: Callable[[mqtt.MQTTMessage], None]) -> None:
        """Hand every message to `func`, on the loop's thread.

        The bridge uses no per-topic callbacks, so paho's per-message dispatch
        (matching the topic against an empty filter tree, under two locks: about
        a tenth of a busy bridge's CPU) is skipped when paho has it to replace.
        """
        self._client.on_message = lambda _client, _userdata, message: func(message)
        if callable(getattr(self._client, "_handle_on_message", None)):
            self._client._handle_on_message = func  # type: ignore[method-assign,assignment]

    # -- any thread ------------------------------------------------------------

    def wake(self) -> None:
        """Cut the loop's current wait short (safe from a signal handler)."""
        # BlockingIOError: a wake-up is pending already; OSError: the loop is closed.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def call_soon(self, func: Callable[..., object], *args: Any) -> None:
        """Run `func(*args)` on the loop's thread at its next turn."""
        self._calls.append((func, args))
        self.wake()

    # -- the loop's thread -------------------------------------------------------

    def start(self) -> None:
        """Connect at the loop's first turn; keep reconnecting until `close`."""
        self.conn.connect_async()  # as the connection's settings say (clean start, ...)
        self._running = True
        self._owner_ident = threading.get_ident()
        self._next_attempt = time.monotonic()

    def run_once(self, timeout: float) -> None:
        """Wait up to `timeout` s for the broker or a posted call; handle what came."""
        now = time.monotonic()
        if self._next_attempt is not None:
            if now >= self._next_attempt:
                self._connect()
                now = time.monotonic()
            if self._next_attempt is not None:
                timeout = min(timeout, self._next_attempt - now)
        client = self._client
        sock = self._sock
        if sock is not None:
            if self._recv is not None and self._recv.pending():
                timeout = 0.0  # a batch was cut short: the rest is read already
            timeout = min(timeout, self._next_misc - now)
            writing = client.want_write()
            if writing != self._writing:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
                self._selector.modify(sock, events)
                self._writing = writing
        ready = self._selector.select(max(0.0, timeout))
        readable = writable = False
        for key, mask in ready:
            if key.fileobj is self._wake_r:
                self._drain_wake()
            elif key.fileobj is sock:
                readable = bool(mask & selectors.EVENT_READ)
                writable = bool(mask & selectors.EVENT_WRITE)
        if sock is not None and (readable or (self._recv is not None and self._recv.pending())):
            self._read()
        self._run_calls()
        if self._sock is not None and (writable or client.want_write()):
            client.loop_write()
        if self._sock is not None and time.monotonic() >= self._next_misc:
            self._next_misc = time.monotonic() + _MISC_EVERY
            client.loop_misc()

    def close(self, timeout: float = 2.0) -> None:
        """Run what is posted, say `offline` (acknowledged, when connected), disconnect."""
        self._run_calls()
        self._running, self._next_attempt = False, None
        end = time.monotonic() + timeout
        conn, client = self.conn, self._client
        conn.closing = True
        if conn.status_topic and conn.connected.is_set() and self._sock is not None:
            info = client.publish(conn.status_topic, b"offline", qos=1, retain=True)
            while not info.is_published() and self._sock is not None and time.monotonic() < end:
                self.run_once(min(0.05, end - time.monotonic()))
            if not info.is_published():
                logger.debug("offline status not confirmed before disconnect")
        if self._sock is not None:
            client.disconnect()
            while self._sock is not None and time.monotonic() < end:
                self.run_once(min(0.05, end - time.monotonic()))
        if self._sock is not None:
            self._sock.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _connect(self) -> None:
        self._next_attempt = None
        try:
            self._client.reconnect()
        except OSError as exc:
            settings = self.conn.settings
            allowed, suppressed = self._failures.allow("connect")
            if allowed:
                logger.warning("cannot connect to broker %s:%s: %s%s", settings.host,
                               settings.port, exc.strerror or exc,
                               f" ({suppressed} more failures)" if suppressed else "")
            self._retry()

    def _retry(self) -> None:
        self._delay = _MIN_DELAY if self._delay is None else min(2 * self._delay, _MAX_DELAY)
        self._next_attempt = time.monotonic() + self._delay

    def _read(self) -> None:
        client, recv = self._client, self._recv
        for _ in range(_BATCH):
            if client.loop_read() or self._sock is None:
                return  # lost: paho closed the socket, and `_closed` plans the retry
            if recv is None or not recv.pending():
                return  # the socket may have more: the selector says

    def _run_calls(self) -> None:
        calls = self._calls
        while calls:
            func, args = calls.popleft()
            try:
                func(*args)
            except Exception:
                if self._failures.allow(getattr(func, "__name__", "call"))[0]:
                    logger.exception("main loop: %s failed; going on",
                                     getattr(func, "__name__", func))

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    # -- paho's socket callbacks (the loop's thread, except register_write) ------

    def _opened(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        if self._recv is not None:
            self._recv.clear()
        self._sock, self._writing = sock, False
        self._selector.register(sock, selectors.EVENT_READ)
        self._next_misc = time.monotonic() + _MISC_EVERY

    def _closed(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        if self._recv is not None:
            self._recv.clear()
        self._sock = None
        if self._running and self._next_attempt is None:
            self._retry()

    def _register_write(self, _client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        # On the loop's thread `run_once` looks at want_write() itself; a publish
        # from another thread must wake it.
        if threading.get_ident() != self._owner_ident:
            self.wake()

    def _connected(self, _client: mqtt.Client) -> None:
        self._delay = None
