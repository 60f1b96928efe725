"""Injected failures, for testing a bridge against a misbehaving platform.

Only served with `--faults`. A fault applies to one target, `report`
(POST /DeviceStatus, the default) or `login` (GET /api/gateway/login): the
next requests wait `delay` seconds and then answer `status` (with a
`Retry-After` if given), `count` times or until cleared. A 2xx status only
delays: the request is then handled as usual, which simulates a slow platform.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import Any

TARGETS = ("report", "login")
_KEYS = {"status", "retry_after", "delay", "count", "target"}


class FaultError(ValueError):
    """A fault request that cannot be honoured; the text names the key."""


@dataclass(frozen=True)
class Fault:
    """One injected behaviour; `count` None means until cleared."""

    status: int = 503
    retry_after: int | str | None = None
    delay: float = 0.0
    count: int | None = None
    target: str = "report"

    @property
    def fails(self) -> bool:
        """True when the request is answered by the fault, not handled."""
        return not 200 <= self.status < 300

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "count": self.count,
        }


def _int(doc: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultError(f"{key} must be a whole number from {low} to {high}")
    return value


def parse_fault(doc: object) -> Fault:
    """Validate the JSON body of POST /api/faults."""
    if not isinstance(doc, dict):
        raise FaultError("expected a JSON object")
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise FaultError(f"unknown key {unknown[0]!r}")
    target = doc.get("target", "report")
    if target not in TARGETS:
        raise FaultError(f"target must be one of {', '.join(TARGETS)}")
    status = _int(doc, "status", 200, 599)
    retry_after: int | str | None = doc.get("retry_after")
    if isinstance(retry_after, str):
        if not retry_after.strip() or not retry_after.isprintable() or len(retry_after) > 64:
            raise FaultError("retry_after must be seconds or a short HTTP date")
    else:
        retry_after = _int(doc, "retry_after", 0, 86400)
    delay = doc.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise FaultError("delay must be a number of seconds")
    if not (math.isfinite(delay) and 0 <= delay <= 300):
        raise FaultError("delay must be from 0 to 300 seconds")
    return Fault(
        status=503 if status is None else status,
        retry_after=retry_after,
        delay=float(delay),
        count=_int(doc, "count", 1, 1_000_000),
        target=target,
    )


class FaultInjector:
    """The faults in force, one per target, used up `count` times each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}

    def set(self, fault: Fault) -> None:
        with self._lock:
            self._faults[fault.target] = fault

    def clear(self, target: str | None = None) -> None:
        with self._lock:
            if target is None:
                self._faults.clear()
            else:
                self._faults.pop(target, None)

    def take(self, target: str) -> Fault | None:
        """The fault for this request, if any, counting one use of it."""
        with self._lock:
            fault = self._faults.get(target)
            if fault is None or fault.count is None:
                return fault
            if fault.count <= 1:
                del self._faults[target]
            else:
                self._faults[target] = replace(fault, count=fault.count - 1)
            return fault

    def as_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.as_json() for fault in self._faults.values()]
