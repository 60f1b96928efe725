"""The collectors' loop: when it ticks, how it wakes, how it stops; with a fake clock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collectors.ticker import Ticker


class FakeLink:
    """A connection whose connects the test triggers."""

    def __init__(self, connected: bool = True) -> None:
        self.connected = threading.Event()
        if connected:
            self.connected.set()
        self.hooks: list[Callable[[mqtt.Client], None]] = []

    def on_connected(self, hook: Callable[[mqtt.Client], None]) -> None:
        self.hooks.append(hook)

    def connect(self) -> None:
        self.connected.set()
        for hook in self.hooks:
            hook(mqtt.Client(CallbackAPIVersion.VERSION2))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_in_thread(ticker: Ticker, *args: object) -> threading.Thread:
    thread = threading.Thread(target=ticker.run, args=args, daemon=True)
    thread.start()
    return thread


class TestTicker:
    def test_ticks_every_interval(self) -> None:
        """With the clock moving one interval per tick, each tick follows the last."""
        clock = Clock()
        ticker = Ticker(10.0, clock=clock)
        ticker.attach(FakeLink())
        seen: list[tuple[float, bool]] = []

        def tick(fresh: bool) -> None:
            seen.append((clock.now, fresh))
            clock.now += 10.0
            if len(seen) == 3:
                ticker.stop()

        ticker.run(tick)
        assert seen == [(1000.0, False), (1010.0, False), (1020.0, False)]

    def test_first_tick_waits_for_the_connection(self) -> None:
        """Nothing runs before the broker answers; the first tick is a fresh one."""
        link = FakeLink(connected=False)
        ticker = Ticker(3600.0)
        ticker.attach(link)
        ticked = threading.Event()
        seen: list[bool] = []

        def tick(fresh: bool) -> None:
            seen.append(fresh)
            ticked.set()

        thread = run_in_thread(ticker, tick)
        link.connect()
        assert ticked.wait(5)
        ticker.stop()
        thread.join(5)
        assert not thread.is_alive()
        assert seen == [True]

    def test_reconnect_ticks_at_once(self) -> None:
        """A reconnect wakes the loop for a fresh tick without waiting the interval."""
        link = FakeLink()
        ticker = Ticker(3600.0)
        ticker.attach(link)
        seen: list[bool] = []
        ticked = threading.Semaphore(0)

        def tick(fresh: bool) -> None:
            seen.append(fresh)
            ticked.release()

        thread = run_in_thread(ticker, tick)
        assert ticked.acquire(timeout=5)
        link.connect()
        assert ticked.acquire(timeout=5)
        ticker.stop()
        thread.join(5)
        assert seen == [False, True]

    def test_poke_runs_between(self) -> None:
        """poke() from another thread runs `between` without a tick."""
        ticker = Ticker(3600.0)
        ticker.attach(FakeLink())
        ticks: list[bool] = []
        betweens = threading.Semaphore(0)
        thread = run_in_thread(ticker, ticks.append, betweens.release)
        assert betweens.acquire(timeout=5)
        ticker.poke()
        assert betweens.acquire(timeout=5)
        ticker.stop()
        thread.join(5)
        assert ticks == [False]

    def test_stop_wakes_a_waiting_loop(self) -> None:
        """stop() ends a loop that waits for an hour, or for a connection, at once."""
        for connected in (True, False):
            ticker = Ticker(3600.0)
            ticker.attach(FakeLink(connected))
            thread = run_in_thread(ticker, lambda _fresh: None)
            ticker.stop()
            thread.join(5)
            assert not thread.is_alive()
            assert ticker.stopping

    def test_a_failing_tick_does_not_end_the_loop(self, caplog: pytest.LogCaptureFixture) -> None:
        """An exception in a cycle is logged and the next cycle still runs."""
        clock = Clock()
        ticker = Ticker(10.0, clock=clock)
        ticker.attach(FakeLink())
        count = [0]

        def tick(_fresh: bool) -> None:
            count[0] += 1
            clock.now += 10.0
            if count[0] == 2:
                ticker.stop()
            if count[0] == 1:
                raise RuntimeError("probe exploded")

        with caplog.at_level(logging.ERROR):
            ticker.run(tick)
        assert count[0] == 2
        assert "probe exploded" in caplog.text

    def test_run_needs_a_connection(self) -> None:
        """run() before attach() is a programming error, said plainly."""
        with pytest.raises(RuntimeError, match="attach"):
            Ticker(1.0).run(lambda _fresh: None)
