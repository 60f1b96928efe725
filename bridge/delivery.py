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

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bridge.errors import DeliveryError, RetryAfter
from bridge.http import redact

logger = logging.getLogger(__name__)

# Answers that mean "try again soon" rather than "this request is wrong".
_TRANSIENT_4XX = frozenset({408, 429})


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
        """Seconds to wait after the `failures`-th failure in a row (1-based)."""
        if isinstance(error, RetryAfter):
            return min(max(error.delay, self.minimum), self.cap)
        status = error.status
        if status is not None and 400 <= status < 500 and status not in _TRANSIENT_4XX:
            return self.cap  # the platform refuses this request: no point hurrying
        base = min(self.cap, self.minimum * 2 ** min(failures - 1, 30))
        return self._rng(base / 2, base)


class Target:
    """The worker that delivers to one URL."""

    def __init__(
        self,
        url: str,
        id_prefix: str,
        sender: Sender,
        backoff: Backoff,
        on_attempt: Callable[[Attempt], None],
    ) -> None:
        self.url = url
        self.name = redact(url)
        self._id_prefix = id_prefix
        self._sender = sender
        self._backoff = backoff
        self._on_attempt = on_attempt
        self._cond = threading.Condition()
        self._job: _Job | None = None
        self._seq = 0
        self._delivered = 0
        self._stopping = False
        self._deadline: float | None = None
        self.failures = 0
        self.last_success: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"target {self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, body: bytes, devices: int) -> None:
        """Make `body` the next report for this target, replacing any not yet delivered."""
        with self._cond:
            if self._stopping:
                return
            self._seq += 1
            self._job = _Job(self._seq, body, devices)
            self._cond.notify()

    def finish(self, body: bytes, devices: int, deadline: float) -> None:
        """Deliver `body` as the last report, before monotonic `deadline`, then stop."""
        with self._cond:
            self._seq += 1
            self._job = _Job(self._seq, body, devices, final=True)
            self._stopping = True
            self._deadline = deadline
            self._cond.notify()

    def stop(self) -> None:
        """Stop without a last report (the target is no longer wanted)."""
        with self._cond:
            self._stopping = True
            self._job = None
            self._cond.notify()

    def join(self, timeout: float) -> None:
        self._thread.join(max(0.0, timeout))

    @property
    def pending(self) -> bool:
        with self._cond:
            return self._job is not None and self._job.seq != self._delivered

    # -- the worker thread ---------------------------------------------------

    def _next_job(self) -> _Job | None:
        with self._cond:
            while True:
                job = self._job
                if job is not None and job.seq != self._delivered:
                    return job
                if self._stopping:
                    return None
                self._cond.wait()

    def _run(self) -> None:
        attempt, attempt_seq = 0, -1
        try:
            while (job := self._next_job()) is not None:
                if job.seq != attempt_seq:
                    attempt, attempt_seq = 0, job.seq
                attempt += 1
                delay = self._deliver(job, attempt)
                if job.final:
                    return
                if delay is not None:
                    self._pause(delay)
        except Exception:
            logger.exception("delivery worker for %s stopped by a bug", self.name)
        finally:
            self._sender.close()

    def _deliver(self, job: _Job, attempt: int) -> float | None:
        """POST one job; return the backoff delay after a failure, else None."""
        report_id = f"{self._id_prefix}-{job.seq}"
        timeout = None
        if self._deadline is not None:
            timeout = max(0.1, self._deadline - time.monotonic())
        try:
            status = self._sender.post(self.url, job.body, report_id, timeout)
        except DeliveryError as exc:
            self.failures += 1
            delay = self._backoff.delay(self.failures, exc)
            self._failed(exc, job, report_id, attempt, delay)
            return delay
        with self._cond:
            self._delivered = max(self._delivered, job.seq)
        if self.failures:
            logger.info("delivery to %s recovered after %d failures", self.name, self.failures)
        self.failures = 0
        self.last_success = time.time()
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

    def _pause(self, delay: float) -> None:
        """Back off, but wake at once for a last report or a stop."""
        end = time.monotonic() + delay
        with self._cond:
            while not self._stopping:
                left = end - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)
