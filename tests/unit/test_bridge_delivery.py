"""Tests for bridge.delivery: backoff, and the per-target worker with its latest-only slot.

The worker runs on a real thread against a fake sender; every wait ends on an
event or a condition (with a generous timeout against hangs), never on a fixed delay.
"""

from __future__ import annotations

import functools
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bridge.delivery import Attempt, Backoff, Target
from bridge.errors import DeliveryError, RetryAfter
from tests.fakes import Recorder

URL = "http://user:secret@127.0.0.1:9528/DeviceStatus?token=abc"
PREFIX = "SZCCKQRAIJBAH0002-65f0a1b2c3d4"
WAIT = 10.0  # upper bound for any handshake; a pass never waits this long


def hi(low: float, high: float) -> float:
    """An rng that always picks the top of the jitter range."""
    return high


def lo(low: float, high: float) -> float:
    """An rng that always picks the bottom of the jitter range."""
    return low


class TestBackoff:
    def test_grows_exponentially_to_the_cap(self) -> None:
        """The top of the range doubles with each failure until the cap."""
        backoff = Backoff(1.0, 60.0, rng=hi)
        error = DeliveryError("down")

        assert [backoff.delay(n, error) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]

    def test_jitter_range_is_half_to_full(self) -> None:
        """Each delay is drawn from [base/2, base]."""
        ranges: list[tuple[float, float]] = []

        def record(low: float, high: float) -> float:
            ranges.append((low, high))
            return low

        backoff = Backoff(2.0, 60.0, rng=record)
        for n in (1, 2, 3):
            backoff.delay(n, DeliveryError("down"))

        assert ranges == [(1.0, 2.0), (2.0, 4.0), (4.0, 8.0)]

    def test_real_jitter_stays_in_range(self) -> None:
        """With the real random source, delays stay within [base/2, base] and under the cap."""
        random.seed(1234)
        backoff = Backoff(1.0, 30.0)
        for n in range(1, 40):
            base = min(30.0, 2.0 ** (n - 1))
            delay = backoff.delay(n, DeliveryError("down"))
            assert base / 2 <= delay <= base <= 30.0

    def test_jitter_varies(self) -> None:
        """Two delays for the same failure count are not all equal (there is jitter)."""
        backoff = Backoff(1.0, 60.0)

        assert len({backoff.delay(5, DeliveryError("down")) for _ in range(20)}) > 1

    def test_huge_failure_counts_stay_capped(self) -> None:
        """A long outage does not overflow: the delay stays at the cap."""
        assert Backoff(1.0, 60.0, rng=hi).delay(10_000, DeliveryError("down")) == 60.0

    def test_minimum_over_cap_is_capped(self) -> None:
        """A minimum above the cap is brought down to it."""
        assert Backoff(100.0, 10.0, rng=hi).delay(1, DeliveryError("down")) == 10.0

    def test_retry_after_is_honoured(self) -> None:
        """A Retry-After under the cap is the delay, without jitter."""
        backoff = Backoff(1.0, 60.0, rng=lo)

        assert backoff.delay(1, RetryAfter("busy", 503, 17.0)) == 17.0

    def test_retry_after_is_capped(self) -> None:
        """A Retry-After over the cap waits only the cap."""
        assert Backoff(1.0, 60.0).delay(1, RetryAfter("busy", 429, 3600.0)) == 60.0

    def test_retry_after_zero_waits_the_minimum(self) -> None:
        """A Retry-After of 0 still waits the minimum, so a busy platform is not hammered."""
        assert Backoff(1.5, 60.0).delay(1, RetryAfter("busy", 503, 0.0)) == 1.5

    def test_retry_after_on_other_failures_only_lengthens_the_backoff(self) -> None:
        """On a 500 a Retry-After is a floor: longer waits longer, shorter keeps the backoff."""
        backoff = Backoff(1.0, 60.0, rng=hi)

        assert backoff.delay(1, RetryAfter("HTTP 500", 500, 17.0)) == 17.0
        assert backoff.delay(5, RetryAfter("HTTP 500", 500, 0.0)) == 16.0  # as without it
        assert backoff.delay(1, RetryAfter("HTTP 500", 500, 3600.0)) == 60.0

    @pytest.mark.parametrize("status", [401, 403, 404])
    def test_retry_after_never_hurries_a_refusal(self, status: int) -> None:
        """A refused request (401/403/404) waits the cap even with `Retry-After: 0`: no hot
        loop of refusals, and no login every few seconds (a relogin follows refusals)."""
        assert Backoff(1.0, 60.0, rng=lo).delay(1, RetryAfter("no", status, 0.0)) == 60.0

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 422, 499])
    def test_non_transient_4xx_waits_the_cap(self, status: int) -> None:
        """A 4xx that says the request is wrong backs off straight to the cap."""
        assert Backoff(1.0, 60.0, rng=lo).delay(1, DeliveryError("no", status)) == 60.0

    @pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, None])
    def test_transient_failures_back_off_normally(self, status: int | None) -> None:
        """408, 429, 5xx and no answer at all back off exponentially from the minimum."""
        backoff = Backoff(1.0, 60.0, rng=hi)

        assert backoff.delay(1, DeliveryError("again", status)) == 1.0
        assert backoff.delay(3, DeliveryError("again", status)) == 4.0


# -- the worker ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    url: str
    body: bytes
    report_id: str
    timeout: float | None


Step = DeliveryError | threading.Event | tuple[threading.Event, DeliveryError] | None


class FakeSender:
    """Stands in for HttpSender: records each POST and plays a script of outcomes.

    Each POST takes the next step of the script: None answers 200, a
    DeliveryError is raised, an Event is waited for before answering 200, and
    (Event, error) waits and then raises. An empty script answers 200.
    """

    def __init__(self, *script: Step) -> None:
        self._cond = threading.Condition()
        self._script: deque[Step] = deque(script)
        self.calls: list[Call] = []
        self.closed = threading.Event()

    def post(self, url: str, body: bytes, report_id: str, timeout: float | None = None) -> int:
        with self._cond:
            self.calls.append(Call(url, body, report_id, timeout))
            self._cond.notify_all()
            step = self._script.popleft() if self._script else None
        if isinstance(step, tuple):
            gate, error = step
            assert gate.wait(WAIT)
            raise error
        if isinstance(step, threading.Event):
            assert step.wait(WAIT)
        elif isinstance(step, DeliveryError):
            raise step
        return 200

    def close(self) -> None:
        self.closed.set()

    def wait_calls(self, count: int) -> list[Call]:
        """Wait until `count` POSTs have started; return all so far."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.calls) >= count, WAIT), self.calls
            return list(self.calls)


class Rig:
    """A started Target with its fake sender and attempt log."""

    def __init__(self, sender: FakeSender, backoff: Backoff | None = None) -> None:
        self.sender = sender
        self.attempts: Recorder[Attempt] = Recorder()
        self.target = Target(
            URL,
            PREFIX,
            lambda: sender,
            backoff or Backoff(0.01, 0.01),
            self.attempts,
        )
        self.target.start()

    def stop(self) -> None:
        self.target.stop()
        self.target.join(WAIT)
        self.target._thread.join(WAIT)  # the worker, also after a finish()
        assert not self.target._thread.is_alive()


@pytest.fixture
def rigs() -> Iterator[list[Rig]]:
    """Targets made in a test are stopped after it, whatever happened."""
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.stop()


def rig(rigs: list[Rig], *script: Step, backoff: Backoff | None = None) -> Rig:
    made = Rig(FakeSender(*script), backoff)
    rigs.append(made)
    return made


class TestTarget:
    def test_delivers_an_offer(self, rigs: list[Rig]) -> None:
        """An offered body is POSTed to the URL with id `{prefix}-1` and reported as ok."""
        r = rig(rigs)
        r.target.offer(b'{"a":1}', 3)

        attempts = r.attempts.wait(1)

        assert r.sender.calls == [Call(URL, b'{"a":1}', f"{PREFIX}-1", None)]
        assert attempts == [
            Attempt("http://127.0.0.1:9528/DeviceStatus", f"{PREFIX}-1", True, 200, None, 1, 3,
                    7, False, None)
        ]

    def test_attempt_names_the_target_without_secrets(self, rigs: list[Rig]) -> None:
        """The target's name in events has no user info and no query."""
        r = rig(rigs)

        assert r.target.name == "http://127.0.0.1:9528/DeviceStatus"

    def test_new_offer_gets_a_new_seq(self, rigs: list[Rig]) -> None:
        """Each new report offered gets the next seq in its id."""
        r = rig(rigs)
        r.target.offer(b"one", 0)
        r.attempts.wait(1)
        r.target.offer(b"two", 0)
        r.attempts.wait(2)
        r.target.offer(b"two", 0)  # same body, still a new report
        r.attempts.wait(3)

        assert [c.report_id for c in r.sender.calls] == [f"{PREFIX}-1", f"{PREFIX}-2",
                                                         f"{PREFIX}-3"]

    def test_ids_look_like_prefix_dash_seq(self, rigs: list[Rig]) -> None:
        """Report ids are `{sn}-{boot}-{seq}`, the prefix being `{sn}-{boot}`."""
        r = rig(rigs)
        r.target.offer(b"x", 0)

        report_id = r.sender.wait_calls(1)[0].report_id

        assert report_id.rpartition("-")[0] == PREFIX
        assert report_id.rpartition("-")[2] == "1"

    def test_latest_only(self, rigs: list[Rig]) -> None:
        """Offers made during a slow POST collapse to the newest: one more POST, of it."""
        gate = threading.Event()
        r = rig(rigs, gate)
        r.target.offer(b"first", 1)
        r.sender.wait_calls(1)
        for n in range(2, 6):
            r.target.offer(f"body {n}".encode(), n)

        gate.set()
        r.attempts.wait(2)
        r.stop()

        assert [(c.body, c.report_id) for c in r.sender.calls] == [
            (b"first", f"{PREFIX}-1"),
            (b"body 5", f"{PREFIX}-5"),
        ]
        assert [a.devices for a in r.attempts.items] == [1, 5]

    def test_retry_keeps_the_id(self, rigs: list[Rig]) -> None:
        """A failed report is retried after the backoff with the same id and body."""
        r = rig(rigs, DeliveryError("HTTP 500", 500, "oops"), DeliveryError("refused"))
        r.target.offer(b"report", 2)

        attempts = r.attempts.wait(3)

        assert [c.report_id for c in r.sender.calls] == [f"{PREFIX}-1"] * 3
        assert [c.body for c in r.sender.calls] == [b"report"] * 3
        assert [(a.ok, a.status, a.attempt) for a in attempts] == [
            (False, 500, 1), (False, None, 2), (True, 200, 3)
        ]
        assert attempts[0].error == "HTTP 500"
        assert attempts[0].retry_in is not None
        assert 0.005 <= attempts[0].retry_in <= 0.01
        assert r.target.failures == 0

    def test_retry_sends_the_latest(self, rigs: list[Rig]) -> None:
        """A report offered while a POST is failing replaces it: the retry sends the new one."""
        gate = threading.Event()
        r = rig(rigs, (gate, DeliveryError("HTTP 502", 502)))
        r.target.offer(b"old", 1)
        r.sender.wait_calls(1)
        r.target.offer(b"new", 2)
        gate.set()

        attempts = r.attempts.wait(2)

        assert [(c.body, c.report_id) for c in r.sender.calls] == [
            (b"old", f"{PREFIX}-1"), (b"new", f"{PREFIX}-2")
        ]
        assert [(a.ok, a.attempt) for a in attempts] == [(False, 1), (True, 1)]

    def test_new_offer_does_not_cut_the_backoff_short(self, rigs: list[Rig]) -> None:
        """A change during a backoff is sent when the backoff ends, not at once."""
        r = rig(rigs, DeliveryError("HTTP 503", 503), backoff=Backoff(0.3, 0.3, rng=hi))
        r.target.offer(b"old", 1)
        failed = r.attempts.wait(1)[0]
        failed_at = time.monotonic()
        r.target.offer(b"new", 2)

        r.attempts.wait(2)

        assert time.monotonic() - failed_at >= 0.3 - 0.05  # the retry came after the backoff
        assert failed.retry_in == 0.3
        assert [c.body for c in r.sender.calls] == [b"old", b"new"]

    def test_failures_are_counted_until_success(self, rigs: list[Rig]) -> None:
        """`failures` counts failures in a row and is reset by a delivery."""
        r = rig(rigs, DeliveryError("a"), DeliveryError("b"))
        r.target.offer(b"x", 0)

        attempts = r.attempts.wait(3)

        assert [a.ok for a in attempts] == [False, False, True]
        assert r.target.failures == 0

    def test_shared_counter_never_reuses_an_id(self) -> None:
        """Targets sharing one counter, even one made again for the same URL, reuse no id."""
        counter = itertools.count(1).__next__
        ids: list[str] = []
        for _ in range(2):
            sender = FakeSender()
            target = Target(URL, PREFIX, functools.partial(lambda s: s, sender),
                            Backoff(0.01, 0.01), Recorder[Attempt](), next_seq=counter)
            target.start()
            target.offer(b"x", 0)
            ids.append(sender.wait_calls(1)[0].report_id)
            target.stop()
            target.join(WAIT)

        assert ids == [f"{PREFIX}-1", f"{PREFIX}-2"]

    def test_finish_wakes_a_long_backoff(self, rigs: list[Rig]) -> None:
        """finish() ends a long backoff at once and delivers the final body before its deadline."""
        r = rig(rigs, DeliveryError("HTTP 503", 503), backoff=Backoff(3600.0, 3600.0))
        r.target.offer(b"online report", 4)
        first = r.attempts.wait(1)[0]
        assert first.retry_in is not None
        assert first.retry_in >= 1800.0

        deadline = time.monotonic() + 5.0
        r.target.finish(b"offline report", 4, deadline)
        r.target.join(WAIT)
        r.target._thread.join(WAIT)

        assert not r.target._thread.is_alive()
        final = r.sender.calls[-1]
        assert final.body == b"offline report"
        assert final.report_id == f"{PREFIX}-2"
        assert final.timeout is not None
        assert 0 < final.timeout <= 5.0
        assert r.attempts.items[-1].final
        assert r.attempts.items[-1].ok
        assert r.sender.closed.is_set()

    def test_failing_final_report_is_retried_until_its_deadline(self, rigs: list[Rig]) -> None:
        """A final report that fails is tried again while its deadline allows."""
        r = rig(rigs, DeliveryError("refused"))
        r.target.finish(b"offline", 0, time.monotonic() + 5.0)
        r.target.join(WAIT)

        assert [c.body for c in r.sender.calls] == [b"offline", b"offline"]
        assert [(a.final, a.ok, a.retry_in) for a in r.attempts.items] == [
            (True, False, None), (True, True, None)
        ]

    def test_final_report_gives_up_at_its_deadline(self, rigs: list[Rig]) -> None:
        """A final report that keeps failing stops being tried when its deadline passes."""
        r = rig(rigs, *[DeliveryError("refused")] * 50)
        r.target.finish(b"offline", 0, time.monotonic() + 0.3)
        r.target.join(WAIT)

        assert 1 <= len(r.sender.calls) <= 2
        assert all(c.timeout is not None and c.timeout <= 0.3 for c in r.sender.calls)

    def test_finish_during_a_post_does_not_wait_for_it(self, rigs: list[Rig]) -> None:
        """finish() while a POST hangs sends the final body at once, on its own connection."""
        gate = threading.Event()
        r = rig(rigs, gate)
        r.target.offer(b"report", 0)
        r.sender.wait_calls(1)
        r.target.finish(b"offline", 0, time.monotonic() + 5.0)
        r.target.join(WAIT)  # returns once the final report is in, the first POST still hangs

        assert [c.body for c in r.sender.calls] == [b"report", b"offline"]
        assert r.attempts.items[-1].final
        gate.set()

    def test_final_report_lands_after_a_post_that_ends_soon(self, rigs: list[Rig]) -> None:
        """A POST in flight at finish() that ends within a moment is answered before the last
        report goes: the platform's last word is the offline report."""
        gate = threading.Event()
        r = rig(rigs, gate)
        r.target.offer(b"report", 0)
        r.sender.wait_calls(1)
        r.target.finish(b"offline", 0, time.monotonic() + 5.0)
        gate.set()
        r.target.join(WAIT)

        assert [(a.report_id, a.final) for a in r.attempts.items] == [
            (f"{PREFIX}-1", False), (f"{PREFIX}-2", True)]

    def test_offer_after_finish_is_ignored(self, rigs: list[Rig]) -> None:
        """Once finishing, new offers are dropped: the final report stays the last."""
        gate = threading.Event()
        r = rig(rigs, gate)
        r.target.finish(b"offline", 0, time.monotonic() + 5.0)
        r.sender.wait_calls(1)
        r.target.offer(b"late", 0)
        gate.set()
        r.target.join(WAIT)

        assert [c.body for c in r.sender.calls] == [b"offline"]
        assert r.target._next_seq() == 2  # the late offer used no report number

    def test_stop_ends_the_thread(self, rigs: list[Rig]) -> None:
        """stop() ends an idle worker and closes its sender."""
        r = rig(rigs)

        r.stop()

        assert r.sender.closed.is_set()
        assert r.sender.calls == []

    def test_stop_during_backoff(self, rigs: list[Rig]) -> None:
        """stop() ends a worker waiting out a long backoff, without another POST."""
        r = rig(rigs, DeliveryError("down"), backoff=Backoff(3600.0, 3600.0))
        r.target.offer(b"x", 0)
        r.attempts.wait(1)

        r.stop()

        assert len(r.sender.calls) == 1

    def test_stop_drops_the_pending_report(self, rigs: list[Rig]) -> None:
        """A report offered during a POST is not sent after stop()."""
        gate = threading.Event()
        r = rig(rigs, gate)
        r.target.offer(b"a", 0)
        r.sender.wait_calls(1)
        r.target.offer(b"b", 0)
        r.target.stop()
        gate.set()
        r.target.join(WAIT)

        assert [c.body for c in r.sender.calls] == [b"a"]

    def test_a_bug_in_the_callback_does_not_silence_the_target(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An unexpected exception is logged and the worker goes on with the next report."""
        sender = FakeSender()

        def broken(_attempt: Attempt) -> None:
            raise RuntimeError("bug")

        target = Target(URL, PREFIX, lambda: sender, Backoff(0.01, 0.01), broken)
        target.start()
        target.offer(b"x", 0)
        sender.wait_calls(1)
        target.offer(b"y", 0)
        sender.wait_calls(2)
        target.stop()
        target.join(WAIT)

        assert not target._thread.is_alive()
        assert sender.closed.is_set()
        assert "failed unexpectedly" in caplog.text
