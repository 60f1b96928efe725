"""Fakes shared by the unit tests (the real parts are used everywhere else)."""

from __future__ import annotations


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
