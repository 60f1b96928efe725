"""Tests for bridge.freshness: a record's deadline from `ts` and `ttl`, on the monotonic clock."""

from __future__ import annotations

import pytest

from bridge.freshness import Clock, SystemClock, deadline
from tests.fakes import FakeClock

WALL = 1_700_000_000.0
MONO = 5_000.0
HOURS = 3600.0



class TestDeadline:
    def test_from_ts_and_ttl(self) -> None:
        """A record stamped 10 s ago with ttl 30 expires 20 s from now."""
        clock = FakeClock()

        assert deadline(WALL - 10, 30, clock) == MONO + 20

    def test_ts_now(self) -> None:
        """A record stamped now expires ttl seconds from now."""
        clock = FakeClock()

        assert deadline(WALL, 30, clock) == MONO + 30

    def test_without_ts_measured_from_arrival(self) -> None:
        """Without ts, the ttl runs from the arrival."""
        clock = FakeClock()

        assert deadline(None, 45, clock) == MONO + 45

    @pytest.mark.parametrize("ts", [None, WALL, WALL - 10 * HOURS, WALL + HOURS])
    def test_no_ttl_never_expires(self, ts: float | None) -> None:
        """A record without ttl has no deadline, whatever its ts."""
        assert deadline(ts, None, FakeClock()) is None

    def test_replayed_stale_record_is_expired_on_arrival(self) -> None:
        """A retained record older than its ttl, replayed after a restart, is already due."""
        clock = FakeClock()

        due = deadline(WALL - 120, 30, clock)

        assert due is not None
        assert due <= clock.monotonic()
        assert due == MONO - 90

    def test_record_exactly_ttl_old_is_due_now(self) -> None:
        """A record exactly ttl old is due at the moment of arrival."""
        clock = FakeClock()

        assert deadline(WALL - 30, 30, clock) == MONO

    @pytest.mark.parametrize("ahead", [0.5, 60.0, 10 * HOURS])
    def test_future_ts_never_extends_beyond_ttl(self, ahead: float) -> None:
        """A ts in the future counts as age zero: at most ttl from arrival."""
        clock = FakeClock()

        assert deadline(WALL + ahead, 30, clock) == MONO + 30

    def test_wall_clock_step_after_arrival_changes_nothing(self) -> None:
        """A wall-clock step of hours after arrival does not move a deadline already set."""
        clock = FakeClock()
        due = deadline(WALL - 5, 30, clock)
        assert due is not None

        clock.wall_time += 5 * HOURS  # NTP steps forward
        clock.mono_time += 1

        assert due - clock.monotonic() == pytest.approx(24)
        clock.wall_time -= 10 * HOURS  # and back
        assert due > clock.monotonic()

    def test_deadline_is_on_the_monotonic_clock(self) -> None:
        """The same record arriving at the same wall time gets a deadline on the monotonic scale."""
        early, late = FakeClock(monotonic=10.0), FakeClock(monotonic=99_999.0)

        assert deadline(WALL - 1, 30, early) == 39.0
        assert deadline(WALL - 1, 30, late) == 100_028.0

    def test_later_arrival_of_the_same_stamp_keeps_the_deadline(self) -> None:
        """The same stamped record arriving 10 s later has 10 s less to live: the same deadline."""
        clock = FakeClock()
        first = deadline(WALL, 30, clock)
        clock.advance(10)

        assert deadline(WALL, 30, clock) == first


class TestSystemClock:
    def test_is_a_clock(self) -> None:
        """SystemClock satisfies the Clock protocol with plausible readings."""
        clock: Clock = SystemClock()

        assert clock.wall() > WALL - 10 * 365 * 86400
        first = clock.monotonic()
        assert clock.monotonic() >= first
