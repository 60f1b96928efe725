"""The periodic loop of a long-running collector, on its own worker thread.

`Ticker.run(tick)` calls `tick(fresh)` every `interval` seconds while the
broker connection is up, and at once after each (re)connect with
`fresh=True`, so a broker that restarted without its store gets the current
truth back without waiting a whole interval. No cycle starts while the
connection is down: paho would queue every message of every cycle without
bound and flush them, stale, on reconnect.

The loop sleeps on one Event, which `stop()`, a connect and `poke()` (from the
network thread) all set, so it needs no polling and never runs in a paho
callback.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import paho.mqtt.client as mqtt

from bridge.logs import Damper

logger = logging.getLogger(__name__)


class Link(Protocol):
    """What the loop needs of a `bridge.mqttclient.Connection`."""

    connected: threading.Event

    def on_connected(self, hook: Callable[[mqtt.Client], None]) -> None: ...


class Ticker:
    """Runs a collector's cycle on schedule until `stop()`; see the module docstring."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._conn: Link | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._fresh = threading.Event()
        self._damper = Damper(burst=3, window=600.0)

    def attach(self, conn: Link) -> None:
        """Follow `conn`'s connects; call before `conn.start()` so none is missed."""
        self._conn = conn
        conn.on_connected(self._connected)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask the loop to return; safe from a signal handler and from any thread."""
        self._stopping.set()
        self._wake.set()

    def poke(self) -> None:
        """Wake the loop so that `between` runs now; cheap, for paho callbacks."""
        self._wake.set()

    def run(
        self, tick: Callable[[bool], object], between: Callable[[], object] | None = None
    ) -> None:
        """Loop until stopped: `between()` on every wake, `tick(fresh)` when due."""
        if self._conn is None:
            raise RuntimeError("Ticker.run() before attach()")
        due = self._clock()
        while True:
            # Clear before looking at the state, so a wake from now on is never lost.
            self._wake.clear()
            if self._stopping.is_set():
                return
            timeout: float | None = None
            if self._conn.connected.is_set():
                if between is not None:
                    self._guarded(between)
                fresh = self._fresh.is_set()
                self._fresh.clear()
                now = self._clock()
                if fresh or now >= due:
                    self._guarded(functools.partial(tick, fresh))
                    due = now + self._interval
                timeout = max(0.0, due - self._clock())
            self._wake.wait(timeout)

    def _guarded(self, work: Callable[[], object]) -> None:
        # The loop boundary: one failed cycle must not end the collector.
        try:
            work()
        except Exception:
            allowed, dropped = self._damper.allow("cycle")
            if allowed and dropped:
                logger.exception("collector cycle failed (and %d times unlogged before)", dropped)
            elif allowed:
                logger.exception("collector cycle failed")

    def _connected(self, _client: mqtt.Client) -> None:
        # paho network thread, after each connect: flag and wake, nothing more.
        self._fresh.set()
        self._wake.set()
