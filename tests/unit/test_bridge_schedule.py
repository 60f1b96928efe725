"""Tests for bridge.schedule: when reports are due (docs/protocol.md)."""

from __future__ import annotations

from bridge.schedule import Schedule

INTERVAL = 20.0
MIN_INTERVAL = 1.0


def schedule() -> Schedule:
    return Schedule(INTERVAL, MIN_INTERVAL)


def ready_and_sent(at: float = 100.0) -> Schedule:
    """A schedule whose first report went out at `at`."""
    s = schedule()
    s.mark_ready(at)
    s.sent(at)
    return s


class TestReady:
    def test_nothing_due_before_ready(self) -> None:
        """Before mark_ready no report is due, changes or not."""
        s = schedule()
        s.changed(0.0)

        assert s.next_due() is None
        assert not s.is_due(10_000.0)

    def test_first_report_due_at_mark_ready(self) -> None:
        """mark_ready makes the first report due at once."""
        s = schedule()
        s.mark_ready(50.0)

        assert s.ready
        assert s.next_due() == 50.0
        assert s.is_due(50.0)
        assert not s.is_due(49.9)

    def test_changes_before_ready_wait_for_it(self) -> None:
        """A change before mark_ready is reported with the first report, not earlier."""
        s = schedule()
        s.changed(10.0)
        s.mark_ready(30.0)

        assert s.next_due() == 30.0

    def test_mark_ready_twice_does_not_reschedule(self) -> None:
        """mark_ready after the first report does not make another report due."""
        s = ready_and_sent(100.0)
        s.mark_ready(105.0)

        assert s.next_due() == 100.0 + INTERVAL


class TestChanges:
    def test_change_is_immediate_after_quiet(self) -> None:
        """A change with no report in the last min_interval is due at once."""
        s = ready_and_sent(100.0)
        s.changed(105.0)

        assert s.next_due() == 105.0

    def test_change_exactly_min_interval_later_is_immediate(self) -> None:
        """A change exactly min_interval after the last report is due at once."""
        s = ready_and_sent(100.0)
        s.changed(101.0)

        assert s.next_due() == 101.0

    def test_change_soon_after_a_report_is_coalesced(self) -> None:
        """A change within min_interval of the last report is due at last + min_interval."""
        s = ready_and_sent(100.0)
        s.changed(100.2)

        assert s.next_due() == 100.0 + MIN_INTERVAL
        assert not s.is_due(100.9)
        assert s.is_due(101.0)

    def test_burst_gives_one_report(self) -> None:
        """A burst of changes makes one report due; after it is sent, nothing more is due soon."""
        s = ready_and_sent(100.0)
        for n in range(50):
            s.changed(100.1 + n * 0.01)

        assert s.next_due() == 101.0
        s.sent(101.0)
        assert s.next_due() == 101.0 + INTERVAL

    def test_later_changes_do_not_postpone(self) -> None:
        """Changes after the first of a burst do not push its report back."""
        s = ready_and_sent(100.0)
        s.changed(110.0)
        s.changed(110.5)

        assert s.next_due() == 110.0

    def test_change_after_a_coalesced_report(self) -> None:
        """After a report, the next change is again held for min_interval."""
        s = ready_and_sent(100.0)
        s.changed(100.5)
        s.sent(101.0)
        s.changed(101.3)

        assert s.next_due() == 102.0

    def test_zero_min_interval_is_always_immediate(self) -> None:
        """With min_interval 0 every change is due at once."""
        s = Schedule(INTERVAL, 0.0)
        s.mark_ready(0.0)
        s.sent(0.0)
        s.changed(0.0)

        assert s.next_due() == 0.0


class TestPeriodic:
    def test_periodic_after_the_last_report(self) -> None:
        """With no change, the next report is due `interval` after the last."""
        s = ready_and_sent(100.0)

        assert s.next_due() == 120.0
        assert not s.is_due(119.99)
        assert s.is_due(120.0)

    def test_periodic_counts_from_the_last_report_of_any_kind(self) -> None:
        """A change report restarts the periodic interval."""
        s = ready_and_sent(100.0)
        s.changed(110.0)
        s.sent(110.0)

        assert s.next_due() == 130.0

    def test_periodic_keeps_going(self) -> None:
        """Sending each periodic report when due gives one every interval."""
        s = ready_and_sent(0.0)
        times = []
        for _ in range(5):
            due = s.next_due()
            assert due is not None
            times.append(due)
            s.sent(due)

        assert times == [20.0, 40.0, 60.0, 80.0, 100.0]

    def test_late_send_shifts_the_period(self) -> None:
        """The period runs from when a report was actually sent, not when it was due."""
        s = ready_and_sent(0.0)
        s.sent(27.0)

        assert s.next_due() == 47.0

    def test_interval_can_change(self) -> None:
        """A new interval (from the login) applies to the next periodic report."""
        s = ready_and_sent(0.0)
        s.interval = 60.0

        assert s.next_due() == 60.0

    def test_change_due_before_periodic_wins(self) -> None:
        """A pending change earlier than the periodic report decides next_due."""
        s = ready_and_sent(0.0)
        s.changed(19.5)

        assert s.next_due() == 19.5
