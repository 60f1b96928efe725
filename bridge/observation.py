"""What `se3-bridge status` has seen of one gateway on the broker: the retained records and
the bridge's events, taken as they come (bridge.status reads them, bridge.judge judges them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.topics import Kind, TopicError, parse

Event = dict[str, Any]
_KEEP_ERRORS = 5  # bridge/errors events kept for the summary (the count covers all)
_CONFIG_TOPICS = {Kind.REPORT_PERIOD, Kind.LOGIN_URL, Kind.DEV_SNO}


@dataclass
class Observation:
    """The messages of one gateway seen so far; fed by `add`, in arrival order."""

    prefix: str
    sn: str
    bridge: bytes | None = None
    collectors: dict[str, bytes] = field(default_factory=dict)
    info: bytes | None = None
    metrics: bytes | None = None
    hardware: bytes | None = None
    devices: dict[str, bytes] = field(default_factory=dict)
    report_url: bytes | None = None
    config: dict[str, bytes] = field(default_factory=dict)  # other config topics, by name
    settings: bytes | None = None  # the bridge's retained bridge/settings
    targets: dict[str, Event] = field(default_factory=dict)  # the gateway report's
    devices_targets: dict[str, Event] = field(default_factory=dict)  # the sub-device report's
    login: Event | None = None
    errors: list[Event] = field(default_factory=list)
    errors_seen: int = 0

    def add(self, topic: str, payload: bytes, retained: bool) -> None:
        """Take one message; unknown topics and bad events are ignored."""
        try:
            ref = parse(topic, self.prefix)
        except TopicError:
            return
        if ref.sn != self.sn:
            return
        # An empty retained payload is a deletion.
        if ref.kind is Kind.BRIDGE_STATUS:
            self.bridge = payload or None
        elif ref.kind is Kind.COLLECTOR_STATUS:
            self._set(self.collectors, ref.key, payload)
        elif ref.kind is Kind.GATEWAY_INFO:
            self.info = payload or None
        elif ref.kind is Kind.GATEWAY_METRICS:
            self.metrics = payload or None
        elif ref.kind is Kind.GATEWAY_HARDWARE:
            self.hardware = payload or None
        elif ref.kind is Kind.DEVICE_STATE:
            self._set(self.devices, ref.key, payload)
        elif ref.kind is Kind.REPORT_URL:
            self.report_url = payload or None
        elif ref.kind in _CONFIG_TOPICS:
            self._set(self.config, ref.kind.value.split("/")[-1], payload)
        elif ref.kind is Kind.BRIDGE_SETTINGS:
            self.settings = payload or None
        elif not retained:
            self._event(ref.kind, payload)

    @staticmethod
    def _set(table: dict[str, bytes], key: str, payload: bytes) -> None:
        if payload:
            table[key] = payload
        else:
            table.pop(key, None)

    def _event(self, kind: Kind, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        if kind is Kind.BRIDGE_ERRORS:
            self.errors_seen += 1
            self.errors = [*self.errors, event][-_KEEP_ERRORS:]
        elif isinstance(event.get("target"), str):
            table = self.devices_targets if event.get("report") == "devices" else self.targets
            table[event["target"]] = event
        elif isinstance(event.get("login"), str):
            self.login = event



def text(payload: bytes | None) -> str | None:
    """A plain-text payload as a person reads it (None: absent)."""
    return None if payload is None else payload.decode("utf-8", "replace").strip()
