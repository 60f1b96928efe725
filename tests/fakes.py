"""Fakes shared by the unit tests (the real parts are used everywhere else)."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")
WAIT = 10.0  # upper bound for any handshake; a pass never waits this long


class Recorder(Generic[T]):
    """A callback that collects what a worker thread hands back, for a test to wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: list[T] = []

    def __call__(self, item: T) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait(self, count: int) -> list[T]:
        """Wait until `count` items have come (at most WAIT s); return all so far."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= count, WAIT), self.items
            return list(self.items)


class FakeClock:
    """A settable `bridge.freshness.Clock`: wall time for `ts`, monotonic for deadlines.

    Set `wall_time` alone to step the wall clock as NTP would; `advance` moves
    both on together, as time passing does.
    """

    def __init__(self, wall: float = 1_700_000_000.0, monotonic: float = 5_000.0) -> None:
        self.wall_time = wall
        self.mono_time = monotonic

    def wall(self) -> float:
        return self.wall_time

    def monotonic(self) -> float:
        return self.mono_time

    def advance(self, seconds: float) -> None:
        self.wall_time += seconds
        self.mono_time += seconds
