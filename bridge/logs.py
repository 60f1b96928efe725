"""Logging set-up for every program, and damping for floods of alike lines.

Readable one-line text by default, one JSON object per line with `--log-json`
(for journald or a log shipper). `Damper` lets the first lines of a kind through
and then one summary per window, so a misbehaving app cannot fill the disk.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

import orjson

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")  # what --log-level takes, in every program
_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def setup_logging(level: str = "INFO", json: bool = False) -> None:
    """Configure the root logger to stderr; called once by each entry point."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # urllib3 logs every new connection at DEBUG with the full URL; keep it at INFO.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))


class Damper:
    """Allow `burst` events per key per `window` seconds; count the rest.

    `allow(key)` says whether to log now. When a window closes with events
    suppressed, the next allowed call returns the count through `suppressed`,
    so the caller can say "(and N more like it)".
    """

    def __init__(
        self, burst: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._burst = burst
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, int]] = {}

    def allow(self, key: str) -> tuple[bool, int]:
        """Return (log this one?, how many were suppressed before it)."""
        now = self._clock()
        with self._lock:
            start, count, dropped = self._windows.get(key, (now, 0, 0))
            if now - start >= self._window:
                start, count = now, 0
            count += 1
            if count <= self._burst:
                self._windows[key] = (start, count, 0)
                return True, dropped
            self._windows[key] = (start, count, dropped + 1)
            if len(self._windows) > 1024:
                self._forget_old(now)
            return False, 0

    def _forget_old(self, now: float) -> None:
        stale = [k for k, (s, _, dropped) in self._windows.items()
                 if now - s >= self._window and not dropped]
        for key in stale:
            del self._windows[key]
