"""Tests for bridge.slot: the latest-only hand-over the delivery and login workers share.

Waits end on events (with a generous timeout against hangs), never on a fixed delay.
"""

from __future__ import annotations

import threading
import time

from bridge.slot import LatestSlot

WAIT = 10.0  # upper bound for any handshake; a pass never waits this long


def pause_in_thread(slot: LatestSlot[str], delay: float,
                    newer_than: int | None = None) -> threading.Event:
    """Start `slot.pause` on a thread; the event is set when the pause ends."""
    ended = threading.Event()

    def pause() -> None:
        slot.pause(delay, newer_than)
        ended.set()

    threading.Thread(target=pause, daemon=True).start()
    return ended


def take_in_thread(slot: LatestSlot[str]) -> tuple[threading.Thread, list[object]]:
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(slot.take()), daemon=True)
    thread.start()
    return thread, got


class TestTake:
    def test_newer_value_replaces_one_not_taken(self) -> None:
        """Two puts before a take: the worker sees only the latest."""
        slot: LatestSlot[str] = LatestSlot()
        slot.put(1, "old")
        slot.put(2, "new")

        assert slot.take() == (2, "new")

    def test_a_piece_not_done_is_taken_again(self) -> None:
        """Until `done`, the same piece comes back: a failed attempt is retried."""
        slot: LatestSlot[str] = LatestSlot()
        slot.put(1, "report")

        assert slot.take() == (1, "report")
        assert slot.take() == (1, "report")

    def test_done_piece_waits_for_a_newer_one(self) -> None:
        """After `done`, take blocks until something new is put."""
        slot: LatestSlot[str] = LatestSlot()
        slot.put(1, "first")
        slot.done(1)
        thread, got = take_in_thread(slot)

        slot.put(2, "second")
        thread.join(WAIT)

        assert got == [(2, "second")]

    def test_stop_wakes_a_waiting_take_with_none(self) -> None:
        slot: LatestSlot[str] = LatestSlot()
        thread, got = take_in_thread(slot)

        slot.stop()
        thread.join(WAIT)

        assert got == [None]

    def test_stop_drops_what_waits_and_later_puts(self) -> None:
        """A stopped slot hands out nothing, not even what was put before or after."""
        slot: LatestSlot[str] = LatestSlot()
        slot.put(1, "pending")
        slot.stop()
        slot.put(2, "late")

        assert slot.take() is None


class TestPause:
    def test_pause_runs_its_time_when_nothing_happens(self) -> None:
        slot: LatestSlot[str] = LatestSlot()
        start = time.monotonic()

        slot.pause(0.05)

        assert time.monotonic() - start >= 0.05

    def test_stop_ends_a_pause_at_once(self) -> None:
        slot: LatestSlot[str] = LatestSlot()
        ended = pause_in_thread(slot, 3600)

        slot.stop()

        assert ended.wait(WAIT)

    def test_newer_piece_ends_a_pause_only_when_asked(self) -> None:
        """`newer_than` lets a new piece cut the wait short; without it the pause holds."""
        slot: LatestSlot[str] = LatestSlot()
        slot.put(1, "first")
        ended = pause_in_thread(slot, 3600, newer_than=1)

        slot.put(2, "second")

        assert ended.wait(WAIT)

    def test_same_key_does_not_end_a_pause(self) -> None:
        """A piece put again under the key being paused on is not newer."""
        slot: LatestSlot[str] = LatestSlot()
        slot.put(1, "first")
        threading.Timer(0.01, slot.put, (1, "same key")).start()
        start = time.monotonic()

        slot.pause(0.1, newer_than=1)

        assert time.monotonic() - start >= 0.1

    def test_pause_without_newer_than_ignores_new_pieces(self) -> None:
        slot: LatestSlot[str] = LatestSlot()
        slot.put(1, "first")
        threading.Timer(0.01, slot.put, (2, "second")).start()  # during the pause
        start = time.monotonic()

        slot.pause(0.1)

        assert time.monotonic() - start >= 0.1

    def test_wake_ends_a_pause_and_one_just_about_to_start(self) -> None:
        slot: LatestSlot[str] = LatestSlot()
        slot.put(1, "a")
        assert slot.take() == (1, "a")
        ended = pause_in_thread(slot, 30)
        slot.wake()
        assert ended.wait(5)
        slot.wake()  # before the worker pauses: that pause is cut short too
        started = time.monotonic()
        slot.pause(30)
        assert time.monotonic() - started < 5
        assert slot.take() == (1, "a")  # a take forgets the wake
        started = time.monotonic()
        slot.pause(0.2)
        assert time.monotonic() - started >= 0.15
