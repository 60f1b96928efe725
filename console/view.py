"""What the broker says about the gateway, kept as the console last heard it.

`View.apply` is called on paho's network thread for every message under
`{prefix}/{sn}/`: it only decodes the payload and stores it under a lock, no
I/O. `View.snapshot()` hands the pages and the API a consistent copy.
Untrusted payloads are kept as they came; whatever shows them escapes them,
and presentation (`console.present`) redacts URLs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from bridge.addresses import canonical_ip

CONFIG_SETTINGS = ("report_url", "report_period", "login_url", "dev_sno")
_MAX_DEVICES = 100_000
_MAX_TARGETS = 64
_KEEP_ERRORS = 20


@dataclass(frozen=True, slots=True)
class Record:
    """A JSON object from a retained topic and the wall time it arrived."""

    data: dict[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class TargetLog:
    """What the bridge's delivery events (`bridge/report`) said about one target."""

    last_at: float | None = None
    last_ok_at: float | None = None
    last_fail_at: float | None = None
    last_error: str | None = None
    retry_at: float | None = None
    devices: int | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    started: float
    info: Record | None = None
    metrics: Record | None = None
    devices: dict[str, Record] = field(default_factory=dict)
    collectors: dict[str, tuple[str, float]] = field(default_factory=dict)
    bridge_status: tuple[str, float] | None = None
    settings: Record | None = None
    config: dict[str, str] = field(default_factory=dict)
    targets: dict[str, TargetLog] = field(default_factory=dict)
    errors: tuple[dict[str, Any], ...] = ()


class View:
    """The latest of each of the gateway's topics (thread-safe)."""

    def __init__(self, base: str, clock: Callable[[], float] = time.time) -> None:
        self.base = base + "/"
        self._clock = clock
        self._lock = threading.Lock()
        self._snap = Snapshot(started=clock())
        self._errors: deque[dict[str, Any]] = deque(maxlen=_KEEP_ERRORS)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return replace(
                self._snap,
                devices=dict(self._snap.devices),
                collectors=dict(self._snap.collectors),
                config=dict(self._snap.config),
                targets=dict(self._snap.targets),
                errors=tuple(self._errors),
            )

    def apply(self, topic: str, payload: bytes) -> None:
        """Take one message (network thread: cheap, never raises for bad input)."""
        if not topic.startswith(self.base):
            return
        parts = topic[len(self.base):].split("/")
        now = self._clock()
        with self._lock:
            self._apply(parts, payload, now)

    def _apply(self, parts: list[str], payload: bytes, now: float) -> None:
        snap = self._snap
        match parts:
            case ["gateway", "info"]:
                self._snap = replace(snap, info=_record(payload, now))
            case ["gateway", "metrics"]:
                self._snap = replace(snap, metrics=_record(payload, now))
            case ["bridge", "settings"]:
                self._snap = replace(snap, settings=_record(payload, now))
            case ["bridge", "status"]:
                self._snap = replace(snap, bridge_status=_status(payload, now, snap.bridge_status))
            case ["bridge", "report"]:
                self._event(_object(payload), now)
            case ["bridge", "errors"]:
                event = _object(payload)
                if event is not None:
                    self._errors.append(event)
            case ["config", setting] if setting in CONFIG_SETTINGS:
                config = dict(snap.config)
                text = payload.decode("utf-8", "replace").strip()
                if text:
                    config[setting] = text
                else:
                    config.pop(setting, None)
                self._snap = replace(snap, config=config)
            case ["devices", ip, "state"]:
                devices = snap.devices  # copied by snapshot(): safe to change under the lock
                record = _record(payload, now)
                if record is None:
                    devices.pop(ip, None)
                elif ip in devices or (len(devices) < _MAX_DEVICES and _address(ip)):
                    devices[ip] = record
            case ["collectors", name, "status"]:
                collectors = snap.collectors
                if payload:
                    collectors[name] = _status(payload, now, collectors.get(name)) or ("", now)
                else:
                    collectors.pop(name, None)
            case _:
                pass

    def _event(self, event: dict[str, Any] | None, now: float) -> None:
        if event is None or not isinstance(event.get("target"), str) or "ok" not in event:
            return  # login events and anything else without a target
        name = event["target"]
        targets = self._snap.targets
        if name not in targets and len(targets) >= _MAX_TARGETS:
            return
        ts = event.get("ts")
        at = float(ts) if isinstance(ts, int | float) else now
        log = targets.get(name, TargetLog())
        retry_in = event.get("retry_in")
        devices = event.get("devices")
        if event.get("ok") is True:
            log = replace(log, last_at=at, last_ok_at=at, retry_at=None,
                          devices=devices if isinstance(devices, int) else log.devices)
        else:
            status, error = event.get("status"), event.get("error")
            reason = str(error) if error else f"HTTP {status}" if status else "failed"
            log = replace(
                log, last_at=at, last_fail_at=at, last_error=reason[:300],
                retry_at=at + retry_in if isinstance(retry_in, int | float) else None,
            )
        targets[name] = log


def _address(level: str) -> bool:
    """Whether a device topic's level is an address the bridge takes: anything else
    (junk, or longer than any address) is refused there and kept nowhere here."""
    try:
        canonical_ip(level)
    except ValueError:
        return False
    return True


def _object(payload: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _record(payload: bytes, now: float) -> Record | None:
    """The record, or None for an empty (deleted) or unreadable payload."""
    value = _object(payload) if payload else None
    return None if value is None else Record(value, now)


def _status(
    payload: bytes, now: float, before: tuple[str, float] | None
) -> tuple[str, float] | None:
    """`online`/`offline` and since when (kept while the word does not change)."""
    word = payload.decode("utf-8", "replace").strip()[:32]
    if not word:
        return None
    if before is not None and before[0] == word:
        return before
    return word, now
