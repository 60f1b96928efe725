"""The gateway's own records: `gateway/info`, `gateway/metrics`, `gateway/hardware`.

Part of the gateway's state (bridge.state): the latest valid record of each,
and for metrics and hardware the monotonic deadline past which they are no
longer reported. A repeated, byte-identical payload is not parsed again; its
deadline is renewed only by a live publish of a record without `ts` (as for
devices, bridge.devicetable). A bad record raises `RecordError` and leaves the
one before it in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from bridge.arrivals import Arrivals
from bridge.freshness import Clock, deadline
from bridge.records import GatewayHardware, GatewayInfo, GatewayMetrics, parse_as

_Timed = TypeVar("_Timed", GatewayMetrics, GatewayHardware)


@dataclass(slots=True)
class _Kept(Generic[_Timed]):
    """One timed record (metrics or hardware): what it says, its bytes, its deadline."""

    record: _Timed | None = None
    raw: bytes = b""
    deadline: float | None = None


class GatewayRecords:
    """The gateway's identity, metrics and hardware, as the broker last said them."""

    def __init__(self, arrivals: Arrivals, max_payload: int) -> None:
        self._arrivals = arrivals
        self.max_payload = max_payload
        self.info: GatewayInfo | None = None
        self._info_raw = b""
        self._metrics: _Kept[GatewayMetrics] = _Kept()
        self._hardware: _Kept[GatewayHardware] = _Kept()

    @property
    def metrics(self) -> GatewayMetrics | None:
        return self._metrics.record

    @property
    def hardware(self) -> GatewayHardware | None:
        return self._hardware.record

    def apply_info(self, payload: bytes) -> bool:
        """A gateway/info message; whether what the platform sees of it changed."""
        if not payload:
            changed = self.info is not None
            self.info, self._info_raw = None, b""
            return changed
        if payload == self._info_raw:
            return False
        parsed = parse_as(GatewayInfo, payload, max_size=self.max_payload)
        old, self.info, self._info_raw = self.info, parsed, payload
        return _visible(old) != _visible(parsed)

    def apply_metrics(self, key: str, payload: bytes, clock: Clock, replayed: bool) -> None:
        """A gateway/metrics message (`key`: its arrival's); it travels with the next
        periodic report, so it changes no report by itself."""
        self._apply(self._metrics, GatewayMetrics, key, payload, clock, replayed)

    def apply_hardware(self, key: str, payload: bytes, clock: Clock, replayed: bool) -> None:
        """A gateway/hardware message, as the metrics."""
        self._apply(self._hardware, GatewayHardware, key, payload, clock, replayed)

    def _apply(self, kept: _Kept[_Timed], model: type[_Timed], key: str, payload: bytes,
               clock: Clock, replayed: bool) -> None:
        if not payload:
            self._drop(kept, key)
            return
        if payload != kept.raw or kept.record is None:
            kept.record, kept.raw = parse_as(model, payload, max_size=self.max_payload), payload
        elif kept.record.ts is not None or replayed:
            return  # keep the deadline judged at first arrival (as for devices)
        record = kept.record
        since = self._arrivals.since(key, payload, record.ts, record.ttl, clock.wall, replayed)
        kept.deadline = deadline(since, record.ttl, clock)

    def _drop(self, kept: _Kept[_Timed], key: str) -> None:
        kept.record, kept.raw, kept.deadline = None, b"", None
        self._arrivals.forget(key)

    def restore_metrics(self, at: float, clock: Clock) -> None:
        """The metrics count from `at`, their arrival kept before a restart."""
        if self._metrics.record is not None:
            self._metrics.deadline = deadline(at, self._metrics.record.ttl, clock)

    def restore_hardware(self, at: float, clock: Clock) -> None:
        if self._hardware.record is not None:
            self._hardware.deadline = deadline(at, self._hardware.record.ttl, clock)

    def retain_only(self, info: bool, metrics: tuple[str, bool],
                    hardware: tuple[str, bool]) -> bool:
        """After a replay: forget each record it did not bring back (`metrics` and
        `hardware`: (arrival key, replayed)); whether the gateway's identity went."""
        if self._metrics.record is not None and not metrics[1]:
            self._drop(self._metrics, metrics[0])
        if self._hardware.record is not None and not hardware[1]:
            self._drop(self._hardware, hardware[0])
        if self.info is not None and not info:
            self.info, self._info_raw = None, b""
            return True
        return False

    def current_metrics(self, clock: Clock) -> GatewayMetrics | None:
        return _current(self._metrics, clock)

    def current_hardware(self, clock: Clock) -> GatewayHardware | None:
        return _current(self._hardware, clock)


def _current(kept: _Kept[_Timed], clock: Clock) -> _Timed | None:
    """The record while its deadline has not passed."""
    due = kept.deadline
    if due is not None and due <= clock.monotonic():
        return None
    return kept.record


def _visible(info: GatewayInfo | None) -> dict[str, object] | None:
    """What of the gateway's identity the platform sees (not who published it)."""
    return None if info is None else info.model_dump(exclude={"source"})
