"""A latest-only hand-over to one worker thread, with a pause that a stop cuts short.

The delivery workers (one per target) and the login worker share this shape:
the main loop puts work, the worker takes the newest piece not yet done, and
a newer piece replaces an older one still waiting, so nothing ever queues
behind a slow platform. Each piece carries a key (a report's seq, a login's
generation) that tells "done" from "new".
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds the latest `(key, value)`; `take` blocks until one is not done yet."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: tuple[int, T] | None = None
        self._done: int | None = None
        self._stopping = False
        self._woken = False  # `wake` since the last `take`: a pause ends at once

    @property
    def stopped(self) -> bool:
        return self._stopping

    def put(self, key: int, value: T) -> None:
        """Make `value` the next piece of work, replacing any not taken up; ignored once stopped."""
        with self._cond:
            if not self._stopping:
                self._item = (key, value)
                self._cond.notify()

    def take(self) -> tuple[int, T] | None:
        """The latest piece not yet done, waiting for one; None once stopped."""
        with self._cond:
            while not self._stopping:
                if self._item is not None and self._item[0] != self._done:
                    self._woken = False
                    return self._item
                self._cond.wait()
            return None

    def done(self, key: int) -> None:
        """The piece `key` is finished: `take` waits for a newer one."""
        with self._cond:
            self._done = key

    def stop(self) -> None:
        """Drop what is waiting and wake the worker: `take` and `pause` return at once."""
        with self._cond:
            self._stopping = True
            self._item = None
            self._cond.notify_all()

    def wake(self) -> None:
        """End the worker's pause now, or the next one before its next `take`: what made
        it wait has changed (a new token for a refused report)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def pause(self, delay: float, newer_than: int | None = None) -> None:
        """Wait `delay` s, ended early by a stop, a `wake`, or by a piece with a key other
        than `newer_than` when one is given."""
        end = time.monotonic() + delay
        with self._cond:
            while not self._stopping and not self._newer(newer_than) and not self._woken:
                left = end - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def _newer(self, key: int | None) -> bool:
        return key is not None and self._item is not None and self._item[0] != key
