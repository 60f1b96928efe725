"""What the broker says about the gateway, kept as the console last heard it.

`View.apply` is called on paho's network thread for every message under
`{prefix}/{sn}/`: it only decodes the payload and stores it under a lock, no
I/O. `View.snapshot()` hands the pages and the API a consistent copy.

It holds only what it shows, bounded like the bridge: the gateway's and the
devices' records pass the bridge's own parser (bridge.records, with the
bridge's `max_payload`), so a record the bridge refuses is not shown and one it
takes is kept as the validated fields only (keys nobody reads are dropped);
a refused update keeps the record before it, as in the bridge; new devices past
the bridge's `max_devices` are not kept. Devices come from the collectors'
`devices/` and from each app's space (`apps/{user}/devices/`), one publisher an
address as the bridge has it: the config's `[[devices]]` are the collectors',
any other address the first publisher's whose record is held; `owners` says
whose (the app user, "" for `devices/`), so a record can be deleted where it is.
The bridge's own events and settings are kept only up to a size, their strings
cut. Whatever shows them escapes them, and presentation (`console.present`) redacts URLs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from bridge.config import Config
from bridge.errors import RecordError
from bridge.records import DeviceState, fields_of, owned, parse_as, parse_record
from bridge.topics import Kind, TopicError, TopicRef, Topics, parse

CONFIG_SETTINGS = ("report_url", "report_period", "login_url", "dev_sno", "devices_report_url",
                   "devices_report_period", "reporter_id", "release")
_MAX_TARGETS = 64
_MAX_COLLECTORS = 1024  # as many publishers as the bridge follows offline
_MAX_TARGET_NAME = 2048
_MAX_EVENT = 64 * 1024  # bytes of one of the bridge's own messages (settings, events)
_MAX_CONFIG_TEXT = 4096
_KEEP_ERRORS = 20
_ERROR_TEXT = 300


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
    hardware: Record | None = None
    devices: dict[str, Record] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # a device's app user; "": devices/
    collectors: dict[str, tuple[str, float]] = field(default_factory=dict)
    bridge_status: tuple[str, float] | None = None
    settings: Record | None = None
    config: dict[str, str] = field(default_factory=dict)
    targets: dict[str, TargetLog] = field(default_factory=dict)
    devices_targets: dict[str, TargetLog] = field(default_factory=dict)  # the sub-device report's
    errors: tuple[dict[str, Any], ...] = ()


class View:
    """The latest of each of the gateway's topics (thread-safe)."""

    @classmethod
    def of(cls, config: Config) -> View:
        """The view of the gateway `config` names, bounded as its bridge is."""
        return cls(Topics(config.mqtt.topic_prefix, config.gateway.serial()).base,
                   config.bridge.max_devices, config.bridge.max_payload,
                   configured=[device.ip for device in config.devices])

    def __init__(self, base: str, max_devices: int = 20_000, max_payload: int = 16_384,
                 clock: Callable[[], float] = time.time,
                 configured: Collection[str] = ()) -> None:
        """`max_devices` and `max_payload`: the bridge's (`[bridge]`), so that the view
        holds what the bridge reports; `configured`: the config's `[[devices]]` IPs."""
        self.base = base  # {prefix}/{sn}
        self._under = base + "/"
        self._configured = frozenset(configured)
        self._prefix = base.rsplit("/", 1)[0]
        self.max_devices = max_devices
        self.max_payload = max_payload
        self._clock = clock
        self._lock = threading.Lock()
        self._snap = Snapshot(started=clock())
        self._errors: deque[dict[str, Any]] = deque(maxlen=_KEEP_ERRORS)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return replace(
                self._snap,
                devices=dict(self._snap.devices),
                owners=dict(self._snap.owners),
                collectors=dict(self._snap.collectors),
                config=dict(self._snap.config),
                targets=dict(self._snap.targets),
                devices_targets=dict(self._snap.devices_targets),
                errors=tuple(self._errors),
            )

    def apply(self, topic: str, payload: bytes) -> None:
        """Take one message (network thread: cheap, never raises for bad input)."""
        if not topic.startswith(self._under):
            return
        parts = topic[len(self._under):].split("/")
        ref = None
        if parts[0] in ("devices", "collectors", "apps"):  # keyed as the bridge reads them
            try:
                ref = parse(topic, self._prefix)
            except TopicError:
                return  # the bridge refuses it too
        now = self._clock()
        with self._lock:
            if ref is None:
                self._apply(parts, payload, now)
            elif ref.kind is Kind.DEVICE_STATE:
                self._device(ref, payload, now)
            elif ref.kind is Kind.COLLECTOR_STATUS:  # a collector's or an app's
                collectors = self._snap.collectors
                name = ref.key
                if not payload:
                    collectors.pop(name, None)
                elif name in collectors or len(collectors) < _MAX_COLLECTORS:
                    collectors[name] = _status(payload, now, collectors.get(name)) or ("", now)

    def _device(self, ref: TopicRef, payload: bytes, now: float) -> None:
        """A device's record, unless its address is another publisher's."""
        devices, owners = self._snap.devices, self._snap.owners  # copied by snapshot()
        ip, owner = ref.key, ref.owner
        holder = owners.get(ip)
        if holder is not None and holder != owner and not (owner == "" and ip in self._configured):
            return  # the bridge refuses it: claimed
        if not payload:
            if holder == owner:
                devices.pop(ip, None)
                owners.pop(ip, None)
            return
        if holder is None and len(devices) >= self.max_devices:
            return
        try:
            record = owned(parse_as(DeviceState, payload, ip, self.max_payload), owner)
        except RecordError:
            return  # the record before it stays, as in the bridge
        devices[ip] = Record(fields_of(record), now)
        owners[ip] = owner

    def _apply(self, parts: list[str], payload: bytes, now: float) -> None:
        snap = self._snap
        match parts:
            case ["gateway", "info"]:
                info = self._valid(Kind.GATEWAY_INFO, payload, now, snap.info)
                self._snap = replace(snap, info=info)
            case ["gateway", "metrics"]:
                self._snap = replace(snap, metrics=self._valid(Kind.GATEWAY_METRICS, payload, now,
                                                               snap.metrics))
            case ["gateway", "hardware"]:
                self._snap = replace(snap, hardware=self._valid(
                    Kind.GATEWAY_HARDWARE, payload, now, snap.hardware))
            case ["bridge", "settings"]:
                self._snap = replace(snap, settings=_record(payload, now))
            case ["bridge", "status"]:
                self._snap = replace(snap, bridge_status=_status(payload, now, snap.bridge_status))
            case ["bridge", "report"]:
                self._event(_object(payload), now)
            case ["bridge", "errors"]:
                event = _object(payload)
                if event is not None:
                    self._errors.append({"ts": event.get("ts"), "topic": _cut(event.get("topic")),
                                         "reason": _cut(event.get("reason"))})
            case ["config", setting] if setting in CONFIG_SETTINGS:
                config = dict(snap.config)
                text = payload[:_MAX_CONFIG_TEXT].decode("utf-8", "replace").strip()
                if text:
                    config[setting] = text
                else:
                    config.pop(setting, None)
                self._snap = replace(snap, config=config)
            case _:
                pass

    def _valid(self, kind: Kind, payload: bytes, now: float,
               before: Record | None) -> Record | None:
        """The record as the bridge takes it (its fields only), or None when deleted;
        one the bridge refuses leaves `before` in place, as in the bridge."""
        if not payload:
            return None
        try:
            record = parse_record(kind, payload, "", self.max_payload)
        except RecordError:
            return before
        return Record(fields_of(record), now)

    def _event(self, event: dict[str, Any] | None, now: float) -> None:
        if event is None or not isinstance(event.get("target"), str) or "ok" not in event:
            return  # login events and anything else without a target
        name = event["target"]
        if len(name) > _MAX_TARGET_NAME:
            return
        # Each report's deliveries apart: one URL may take both (two-report releases).
        devices = event.get("report") == "devices"
        targets = self._snap.devices_targets if devices else self._snap.targets
        if name not in targets and len(targets) >= _MAX_TARGETS:
            return
        ts = event.get("ts")
        at = float(ts) if isinstance(ts, int | float) else now
        log = targets.get(name, TargetLog())
        retry_in = event.get("retry_in")
        count = event.get("devices")
        if event.get("ok") is True:
            log = replace(log, last_at=at, last_ok_at=at, retry_at=None,
                          devices=count if isinstance(count, int) else log.devices)
        else:
            status, error = event.get("status"), event.get("error")
            reason = str(error) if error else f"HTTP {status}" if status else "failed"
            log = replace(
                log, last_at=at, last_fail_at=at, last_error=reason[:300],
                retry_at=at + retry_in if isinstance(retry_in, int | float) else None,
            )
        targets[name] = log


def _cut(value: object) -> str:
    return value[:_ERROR_TEXT] if isinstance(value, str) else ""


def _object(payload: bytes) -> dict[str, Any] | None:
    """One of the bridge's own JSON objects, unless it is over _MAX_EVENT or no object."""
    if len(payload) > _MAX_EVENT:
        return None
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
