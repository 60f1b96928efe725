"""Tests for bridge.logs: flood damping and the one-JSON-object-per-line formatter."""

from __future__ import annotations

import io
import logging
import sys

import orjson
import pytest

from bridge.logs import Damper, JsonFormatter, setup_logging


class FakeMonotonic:
    """A settable monotonic clock for the Damper."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def damper(burst: int = 3, window: float = 60.0) -> tuple[Damper, FakeMonotonic]:
    clock = FakeMonotonic()
    return Damper(burst=burst, window=window, clock=clock), clock


class TestDamper:
    def test_burst_passes(self) -> None:
        """The first `burst` events of a key in a window are let through."""
        d, _ = damper(burst=3)

        assert [d.allow("json") for _ in range(3)] == [(True, 0)] * 3

    def test_then_suppressed(self) -> None:
        """Events past the burst in the same window are suppressed."""
        d, clock = damper(burst=3)
        for _ in range(3):
            d.allow("json")

        clock.now += 59.9
        assert [d.allow("json") for _ in range(5)] == [(False, 0)] * 5

    def test_next_window_reports_the_suppressed_count(self) -> None:
        """The first event of the next window passes and says how many were suppressed."""
        d, clock = damper(burst=2, window=10.0)
        for _ in range(2 + 7):
            d.allow("json")

        clock.now += 10.0

        assert d.allow("json") == (True, 7)
        assert d.allow("json") == (True, 0)
        assert d.allow("json") == (False, 0)

    def test_count_is_reported_once(self) -> None:
        """After a window with nothing suppressed, no count is repeated."""
        d, clock = damper(burst=1, window=10.0)
        d.allow("k")
        d.allow("k")
        clock.now += 10
        assert d.allow("k") == (True, 1)

        clock.now += 10

        assert d.allow("k") == (True, 0)

    def test_count_survives_a_long_quiet(self) -> None:
        """Suppressed events are reported even if the next event comes many windows later."""
        d, clock = damper(burst=1, window=10.0)
        d.allow("k")
        d.allow("k")
        d.allow("k")

        clock.now += 3600

        assert d.allow("k") == (True, 2)

    def test_keys_are_independent(self) -> None:
        """A flood of one kind does not suppress another."""
        d, _ = damper(burst=1)
        d.allow("json")
        assert d.allow("json") == (False, 0)

        assert d.allow("ep_status") == (True, 0)

    def test_window_starts_at_the_first_event(self) -> None:
        """The window runs from the first event of a key, not from a fixed grid."""
        d, clock = damper(burst=1, window=10.0)
        clock.now = 105.0
        d.allow("k")
        clock.now = 114.9

        assert d.allow("k") == (False, 0)
        clock.now = 115.0
        assert d.allow("k") == (True, 1)

    def test_many_keys_do_not_lose_live_counts(self) -> None:
        """Forgetting old keys (over 1024) keeps counts of keys whose window is still open."""
        d, clock = damper(burst=1, window=10.0)
        d.allow("live")
        d.allow("live")
        for n in range(1100):
            d.allow(f"key{n}")
            d.allow(f"key{n}")
        clock.now += 10

        assert d.allow("live") == (True, 1)

    def test_forgetting_old_keys_keeps_unreported_counts(self) -> None:
        """A key forgotten to bound memory still reports what it suppressed."""
        d, clock = damper(burst=1, window=10.0)
        for _ in range(3):
            d.allow("old")
        clock.now += 11
        for n in range(1100):  # a flood of other keys makes the damper forget stale ones
            d.allow(f"key{n}")
            d.allow(f"key{n}")

        assert d.allow("old") == (True, 2)

    def test_uses_the_monotonic_clock_by_default(self) -> None:
        """A Damper made without a clock works with the real one."""
        d = Damper(burst=1, window=60.0)

        assert d.allow("k") == (True, 0)
        assert d.allow("k") == (False, 0)


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("bridge.test", logging.WARNING, __file__, 1, msg, args, exc_info)


class TestJsonFormatter:
    def test_one_object_per_record(self) -> None:
        """A record becomes one JSON object with time, level, logger and the formatted message."""
        line = JsonFormatter().format(record("rejected %s: %s", "se3/x", "bad"))

        doc = orjson.loads(line)
        assert set(doc) == {"ts", "level", "logger", "msg"}
        assert doc["level"] == "warning"
        assert doc["logger"] == "bridge.test"
        assert doc["msg"] == "rejected se3/x: bad"
        assert isinstance(doc["ts"], float)

    def test_newlines_stay_on_one_line(self) -> None:
        """A message with newlines is still one line of output."""
        line = JsonFormatter().format(record("multi\nline\r\nmessage"))

        assert "\n" not in line
        assert orjson.loads(line)["msg"] == "multi\nline\r\nmessage"

    def test_exception_is_included_on_the_same_line(self) -> None:
        """A record with exc_info carries the traceback in `exc`, still one line."""
        line = JsonFormatter().format(record("worker stopped", exc=True))

        assert "\n" not in line
        doc = orjson.loads(line)
        assert "RuntimeError: boom" in doc["exc"]

    def test_non_ascii_is_kept(self) -> None:
        """Non-ASCII text (a Chinese build date) survives."""
        line = JsonFormatter().format(record("build.date=2019年 08月"))

        assert orjson.loads(line)["msg"] == "build.date=2019年 08月"

    def test_through_a_handler(self) -> None:
        """Logged through a handler, each record is exactly one JSON line."""
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger("bridge.test.json")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            logger.warning("one\ntwo")
            logger.error("three %d", 3)
        finally:
            logger.removeHandler(handler)
            logger.propagate = True

        lines = stream.getvalue().splitlines()
        assert [orjson.loads(line)["msg"] for line in lines] == ["one\ntwo", "three 3"]



@pytest.mark.usefixtures("restore_logging")
class TestSetupLogging:
    def test_json_mode(self) -> None:
        """setup_logging(json=True) installs one handler with the JSON formatter."""
        setup_logging("debug", json=True)
        root = logging.getLogger()

        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.DEBUG

    def test_urllib3_stays_at_info(self) -> None:
        """At DEBUG, urllib3 (which logs full URLs) is kept at INFO."""
        setup_logging("DEBUG")

        assert logging.getLogger("urllib3").level == logging.INFO

    def test_text_mode(self) -> None:
        """By default the handler writes plain text."""
        setup_logging("WARNING")
        root = logging.getLogger()

        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.WARNING
        assert logging.getLogger("urllib3").level == logging.WARNING
