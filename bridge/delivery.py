"""Delivery of reports to one target URL: a worker thread, a latest-only slot, backoff.

Each target has its own thread, retry state and report ids, so one target down
never delays another. The slot holds only the latest report: a retry always
sends the newest state, never a queue of stale ones, and at most one request
per target is in flight.

Report ids are `{sn}-{boot}-{seq}`: `seq` counts the reports offered to this
target in this boot, a retry of the same report keeps its id, and `boot` is
new at every start, so an id never names two different bodies.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bridge.errors import DeliveryError, RetryAfter
from bridge.slot import LatestSlot
from bridge.urltext import redact, with_query

logger = logging.getLogger(__name__)

# Answers that mean "try again soon" rather than "this request is wrong".
_TRANSIENT_4XX = frozenset({408, 429})
# Seconds the last report waits for a POST still in flight before it goes anyway.
_FINAL_WAIT = 1.0
# Answers whose Retry-After is the time to wait, shorter or longer than the backoff.
_COME_BACK_LATER = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, as published on `bridge/report`."""

    target: str
    report_id: str
    ok: bool
    status: int | None
    error: str | None
    attempt: int
    devices: int
    bytes: int
    final: bool
    retry_in: float | None


@dataclass(frozen=True, slots=True)
class _Job:
    seq: int
    body: bytes
    devices: int
    final: bool = False


class Sender(Protocol):
    """What a target needs of HTTP (bridge.http.HttpSender; fakes in unit tests)."""

    def post(self, url: str, body: bytes, report_id: str, timeout: float | None = None) -> int: ...

    def close(self) -> None: ...


class Backoff:
    """Capped exponential backoff with jitter; `Retry-After` honoured under the cap."""

    def __init__(
        self, minimum: float, cap: float, rng: Callable[[float, float], float] = random.uniform
    ) -> None:
        self.minimum = min(minimum, cap)
        self.cap = cap
        self._rng = rng

    def delay(self, failures: int, error: DeliveryError) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1-based).

        A `Retry-After` on 429 or 503 ("come back later") is the delay; on any
        other answer it can only lengthen the delay, never bring back a quick
        retry of a request the platform refused.
        """
        status = error.status
        if isinstance(error, RetryAfter) and status in _COME_BACK_LATER:
            return min(max(error.delay, self.minimum), self.cap)
        if status is not None and 400 <= status < 500 and status not in _TRANSIENT_4XX:
            return self.cap  # the platform refuses this request: no point hurrying
        base = min(self.cap, self.minimum * 2 ** min(failures - 1, 30))
        delay = self._rng(base / 2, base)
        if isinstance(error, RetryAfter):
            delay = min(max(error.delay, delay), self.cap)
        return delay


class Target:
    """The worker that delivers to one URL.

    `make_sender` gives the worker its HTTP sender; the last report at shutdown
    gets a fresh one on its own thread, so it waits at most `_FINAL_WAIT` behind
    a request still in flight to a slow platform. `next_seq` numbers reports; the bridge
    shares one counter among its targets, so an id is never reused in a boot,
    not even by a target that is dropped and added again. `params`, when given,
    are query parameters added to the URL at each POST (the login's token and
    dev_sno, which change with each login); `name` never shows them.
    """

    def __init__(
        self,
        url: str,
        id_prefix: str,
        make_sender: Callable[[], Sender],
        backoff: Backoff,
        on_attempt: Callable[[Attempt], None],
        next_seq: Callable[[], int] | None = None,
        params: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.url = url
        self._params = params
        self.name = redact(url)
        self._id_prefix = id_prefix
        self._make_sender = make_sender
        self._backoff = backoff
        self._on_attempt = on_attempt
        self._next_seq = next_seq or itertools.count(1).__next__
        self._slot: LatestSlot[_Job] = LatestSlot()
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name=f"target {self.name}", daemon=True)
        self._final: threading.Thread | None = None

    def start(self) -> None:
        self._thread.start()

    def offer(self, body: bytes, devices: int) -> None:
        """Make `body` the next report for this target, replacing any not yet delivered."""
        if self._slot.stopped:
            return  # and no report number used up: offers come from one thread
        seq = self._next_seq()
        self._slot.put(seq, _Job(seq, body, devices))

    def finish(self, body: bytes, devices: int, deadline: float) -> None:
        """Deliver `body` as the last report, retrying until monotonic `deadline`; stop."""
        job = _Job(self._next_seq(), body, devices, final=True)
        self.stop()
        self._final = threading.Thread(
            target=self._deliver_final, args=(job, deadline), name=f"last {self.name}",
            daemon=True,
        )
        self._final.start()

    def set_params(self, params: Callable[[], Mapping[str, str]] | None) -> None:
        """The query parameters of the next POST on (the login took this URL over)."""
        self._params = params  # one reference, read by the worker at each POST

    def retry_now(self) -> None:
        """Cut a backoff short: the next attempt goes at once (its parameters changed)."""
        self._slot.wake()

    def stop(self) -> None:
        """Stop the worker; a report not yet delivered is dropped."""
        self._slot.stop()

    def join(self, timeout: float) -> None:
        """Wait for the last report (after `finish`) or the worker (after `stop`)."""
        (self._final or self._thread).join(max(0.0, timeout))

    # -- the worker thread ---------------------------------------------------

    def _run(self) -> None:
        sender = self._make_sender()
        attempt, attempt_seq = 0, -1
        try:
            while (taken := self._slot.take()) is not None:
                job = taken[1]
                if job.seq != attempt_seq:
                    attempt, attempt_seq = 0, job.seq
                attempt += 1
                try:
                    delay = self._deliver(sender, job, attempt, None)
                except Exception:  # a bug must not silence this target for good
                    logger.exception("delivery to %s failed unexpectedly", self.name)
                    delay = self._backoff.cap
                if delay is not None:
                    # A newer report waits too: the backoff spares the platform.
                    self._slot.pause(delay)
        finally:
            sender.close()

    def _deliver_final(self, job: _Job, deadline: float) -> None:
        # A POST still in flight goes first if it ends soon, so that the platform's
        # last word is this report; a slow platform does not hold it back for long.
        if self._thread.is_alive():
            self._thread.join(min(_FINAL_WAIT, max(0.0, deadline - time.monotonic()) / 2))
        sender = self._make_sender()
        try:
            attempt = 0
            while (left := deadline - time.monotonic()) > 0.05:
                attempt += 1
                try:
                    if self._deliver(sender, job, attempt, left) is None:
                        return
                except Exception:
                    logger.exception("last report to %s failed unexpectedly", self.name)
                    return
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        finally:
            sender.close()

    def _deliver(self, sender: Sender, job: _Job, attempt: int,
                 timeout: float | None) -> float | None:
        """POST one job; return the backoff delay after a failure, else None."""
        report_id = f"{self._id_prefix}-{job.seq}"
        try:
            url = with_query(self.url, self._params()) if self._params else self.url
            status = sender.post(url, job.body, report_id, timeout)
        except DeliveryError as exc:
            self.failures += 1
            delay = self._backoff.delay(self.failures, exc)
            self._failed(exc, job, report_id, attempt, delay)
            return delay
        if not job.final:
            self._slot.done(job.seq)
        if self.failures:
            logger.info("delivery to %s recovered after %d failures", self.name, self.failures)
        self.failures = 0
        self._on_attempt(
            Attempt(self.name, report_id, True, status, None, attempt, job.devices,
                    len(job.body), job.final, None)
        )
        return None

    def _failed(self, exc: DeliveryError, job: _Job, report_id: str, attempt: int,
                delay: float) -> None:
        if self.failures == 1:
            answer = f"; answer: {exc.body}" if exc.body else ""
            logger.warning("delivery to %s failing: %s%s (retrying)", self.name, exc, answer)
        else:
            logger.debug("delivery to %s failed again: %s", self.name, exc)
        self._on_attempt(
            Attempt(self.name, report_id, False, exc.status, str(exc), attempt, job.devices,
                    len(job.body), job.final, None if job.final else round(delay, 3))
        )
