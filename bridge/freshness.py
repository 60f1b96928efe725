"""When a record stops being true: `ts` + `ttl`, judged without trusting clock steps.

A record's age is read once, at arrival, from the publisher's `ts` against our
wall clock; from then on its deadline lives on the monotonic clock, so an NTP
step of hours after arrival changes nothing. The age is clamped at zero: a `ts`
in the future (our clock stepped back, or the publisher's is ahead) can never
make a record live longer than its `ttl` from arrival. A retained record
replayed after a restart keeps its true age, so a stale one stays stale; one
without `ts` counts from its arrival, which bridge.arrivals keeps across restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Wall time for `ts`, monotonic time for deadlines."""

    def wall(self) -> float: ...

    def monotonic(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


def remaining(ts: float | None, ttl: float | None, wall: float) -> float | None:
    """Seconds a record seen at wall time `wall` stays true (<= 0: expired); None: forever."""
    if ttl is None:
        return None
    age = 0.0 if ts is None else max(0.0, wall - ts)
    return ttl - age


def deadline(ts: float | None, ttl: float | None, clock: Clock) -> float | None:
    """The monotonic time at which a record arriving now expires; None: never."""
    left = remaining(ts, ttl, clock.wall())
    return None if left is None else clock.monotonic() + left
