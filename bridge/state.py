"""The latest valid state of one gateway, fed message by message.

`GatewayState.apply` takes one MQTT message (already matched to this gateway
by its topic) and says whether anything the platform sees has changed. A bad
message raises `RecordError` and leaves the state exactly as it was: the last
valid record for a topic stays in effect (docs/reliability.md, bad input).

A repeated, byte-identical payload (a retained replay, a collector's refresh)
is not parsed again. Its deadline is renewed only by a live publish of a
record without `ts`: with the same `ts`, the age judged at first arrival
stands, whatever the wall clock did since (bridge.freshness), and a replay of
what we hold is no sign of life.

One address, one publisher: a device's record comes from the collectors'
shared `devices/` topics or from one app's own space (`apps/{user}/`, the
topic's `owner`). When two claim one address, the config's `[[devices]]` are
the collectors' whatever came first; any other address belongs to the first
publisher whose record is held, until it deletes the record. The other's
record is refused (code `claimed`). An app's record names no other `source`
than its own user: its status is `apps/{user}/status`.

Pure: time comes from the `Clock` passed in.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from bridge.arrivals import Arrivals
from bridge.errors import RecordError
from bridge.freshness import Clock, deadline
from bridge.records import (
    DeviceState,
    GatewayHardware,
    GatewayInfo,
    GatewayMetrics,
    owned,
    parse_as,
)
from bridge.releases import CARRIES, ReportFormat
from bridge.report import (
    DEVICE_FIELDS,
    DeviceView,
    Gateway,
    Json,
    build_devices_report,
    build_gateway_report,
    device_body,
    devices_key,
    dumps,
    ip_sort_key,
    splice,
)
from bridge.topics import ARRIVAL_HARDWARE as HARDWARE
from bridge.topics import ARRIVAL_METRICS as METRICS
from bridge.topics import Kind, TopicRef

_STATUS_PAYLOADS = {b"online": "online", b"offline": "offline"}
# A collector-role client may announce a status under any name: bound the names kept.
_MAX_OFFLINE_SOURCES = 1024
# New devices refused at max_devices, kept (latest valid record each) to be taken
# in when a device is deleted: a static retained record is never published again.
_MAX_WAITING = 256  # at most 256 x max_payload (4 MiB at the default) kept
# What a device adds to the report beyond its record's bytes (ep_id, quotes, commas):
# the report's size is estimated from the records, without building it.
_ENTRY_OVERHEAD = 96


@dataclass(slots=True)
class _Slot:
    raw: bytes
    record: DeviceState
    deadline: float | None
    owner: str  # the app user whose space the record is in; "" for the collectors'
    lapsed: bool = False  # the deadline has passed and was taken into account
    # The device's serialised entry of `sub_devices`, and the status it shows: kept
    # until the record or the status changes (a new slot starts without one).
    body: bytes | None = None
    body_status: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one message changed: the report's content."""

    changed: bool = False


UNCHANGED = Outcome()
CHANGED = Outcome(changed=True)


class GatewayState:
    """Everything known about one gateway (by serial `sn`)."""

    def __init__(
        self,
        sn: str,
        max_devices: int = 20_000,
        max_payload: int = 16_384,
        fmt: ReportFormat = "F2",
        max_report_bytes: int = 16 * 1024 * 1024,
        configured: frozenset[str] = frozenset(),
        devices_fmt: ReportFormat | None = None,
    ) -> None:
        self.sn = sn
        # The `[[devices]]` of the config: only the devices collector may write their
        # topics (the broker's ACL denies them to apps), so they are never refused at
        # the cap, however many devices apps publish first.
        self.configured = configured
        self.fmt: ReportFormat = fmt  # the format of the report with the gateway
        self.devices_fmt: ReportFormat | None = None  # of the separate sub-device report
        self.set_formats(fmt, devices_fmt)
        # What the reports name the gateway by besides its records: `gateway_port`
        # (F3-F5) and F7's `reporter_id` ("" : dev_sno).
        self.port: int | None = None
        self.reporter_id = ""
        self.max_devices = max_devices
        self.max_payload = max_payload
        # A report past a platform's body limit delivers nothing at all: devices that
        # would take it past this size are refused instead, each one visibly.
        self.max_report_bytes = max_report_bytes
        self._device_bytes = 0  # sum of _weight() over self.devices
        self.info: GatewayInfo | None = None
        self._info_raw = b""
        self.metrics: GatewayMetrics | None = None
        self._metrics_raw = b""
        self._metrics_deadline: float | None = None
        self.hardware: GatewayHardware | None = None
        self._hardware_raw = b""
        self._hardware_deadline: float | None = None
        self.devices: dict[str, _Slot] = {}
        self._order: list[str] | None = []
        self.offline_sources: set[str] = set()
        self._expiries: list[tuple[float, str]] = []
        self._waiting: dict[str, tuple[str, bytes]] = {}  # ip -> (owner, record): _MAX_WAITING
        self._bodies_for: tuple[str, ReportFormat] | None = None  # (dev_sno, fmt) of kept bodies
        # When each record with a ttl and no ts arrived, kept across restarts (bridge.arrivals).
        self.arrivals = Arrivals()
        # config/dev_sno when set: the dev_sno in force, in the body as in the login's
        # query, before the gateway collector has republished gateway/info with it.
        self.dev_sno = ""

    def set_formats(self, fmt: ReportFormat, devices_fmt: ReportFormat | None = None) -> None:
        """The report formats from now on (a release switched): the gateway report's, and
        the separate sub-device report's (None for a one-report release)."""
        if (devices_fmt is None) != (CARRIES[fmt] == "both"):
            raise ValueError(f"{fmt} with {devices_fmt}: one report carries the devices")
        if devices_fmt is not None and CARRIES[devices_fmt] != "devices":
            raise ValueError(f"{devices_fmt} is no sub-device report")
        self.fmt, self.devices_fmt = fmt, devices_fmt
        self._shown = DEVICE_FIELDS[self.device_format]

    @property
    def device_format(self) -> ReportFormat:
        """The format whose device list carries the sub-devices."""
        return self.fmt if self.devices_fmt is None else self.devices_fmt

    # -- feeding -------------------------------------------------------------

    def apply(self, ref: TopicRef, payload: bytes, clock: Clock, replayed: bool = False) -> Outcome:
        """Apply one message; raises RecordError (state untouched) when it is refused.

        `replayed`: the broker sent it from its retained store (a new subscription),
        not because someone just published it.
        """
        kind = ref.kind
        if kind is Kind.DEVICE_STATE:
            return self._apply_device(ref.key, ref.owner, payload, clock, replayed)
        if kind is Kind.GATEWAY_METRICS:
            return self._apply_metrics(payload, clock, replayed)
        if kind is Kind.GATEWAY_INFO:
            return self._apply_info(payload)
        if kind is Kind.GATEWAY_HARDWARE:
            return self._apply_hardware(payload, clock, replayed)
        if kind is Kind.COLLECTOR_STATUS:
            return self._apply_collector(ref.key, payload, clock)
        if kind is Kind.BRIDGE_ARRIVAL:  # our own writes echoed live say nothing new
            return self.restore_arrival(ref.key, payload, clock) if replayed else UNCHANGED
        return UNCHANGED  # the bridge's own topics; config topics go to bridge.settings

    def _apply_device(
        self, ip: str, owner: str, payload: bytes, clock: Clock, replayed: bool
    ) -> Outcome:
        old = self.devices.get(ip)
        if not payload:
            if self._waiting.get(ip, (owner,))[0] == owner:
                self._waiting.pop(ip, None)
            if old is None or old.owner != owner:
                return UNCHANGED
            self._forget(ip)
            self._order = None
            self._admit_waiting(clock)
            return CHANGED
        self._check_claim(ip, owner, old)
        if old is not None and old.raw == payload:
            record = old.record
        else:
            record = owned(parse_as(DeviceState, payload, ip, self.max_payload), owner)
        if old is None and len(self.devices) >= self.max_devices and ip not in self.configured:
            if self._waiting.get(ip, (owner,))[0] == owner and (
                    ip in self._waiting or len(self._waiting) < _MAX_WAITING):
                self._waiting[ip] = (owner, payload)
            raise RecordError(
                f"device limit of {self.max_devices} reached; new device refused", code="limit"
            )
        grown = self._device_bytes + _weight(payload) - (_weight(old.raw) if old else 0)
        if grown > self.max_report_bytes:
            raise RecordError(
                f"the report would pass its {self.max_report_bytes}-byte cap "
                f"([bridge] max_report_bytes); record refused", code="report_size",
            )
        self._device_bytes = grown
        now = clock.monotonic()
        if old is not None and old.raw == payload and (record.ts is not None or replayed):
            # Same bytes, same `ts`: the age was judged at first arrival. Judging it
            # again (a retained replay after a reconnect) with a wall clock stepped
            # since would cut the record short or stretch it. Without a `ts`, only
            # a live publish renews the record; a replay of what we hold does not.
            slot = _Slot(payload, record, old.deadline, owner, old.lapsed, old.body,
                         old.body_status)
            self.devices[ip] = slot
        else:
            due = deadline(self._since(ip, payload, record.ts, record.ttl, clock, replayed),
                           record.ttl, clock)
            slot = _Slot(payload, record, None, owner)
            self.devices[ip] = slot
            self._set_deadline(ip, slot, due, now)
        if old is None:
            self._order = None
            return CHANGED
        return CHANGED if self._view(old, now) != self._view(slot, now) else UNCHANGED

    def holds(self, ref: TopicRef) -> bool:
        """Whether a device record of this very topic is in the state or waiting."""
        slot = self.devices.get(ref.key)
        if slot is not None and slot.owner == ref.owner:
            return True
        waiting = self._waiting.get(ref.key)
        return waiting is not None and waiting[0] == ref.owner

    def _check_claim(self, ip: str, owner: str, old: _Slot | None) -> None:
        """RecordError (code `claimed`) when another publisher holds address `ip`."""
        if owner and ip in self.configured:
            raise RecordError(f"{ip} is a configured device ([[devices]]): the devices "
                              "collector reports it; record refused", code="claimed")
        if old is not None and old.owner != owner:
            holder = f"app {old.owner}" if old.owner else "a collector (devices/)"
            raise RecordError(f"{ip} is already reported by {holder}; record refused",
                              code="claimed")

    def _apply_metrics(self, payload: bytes, clock: Clock, replayed: bool) -> Outcome:
        if not payload:
            self.metrics, self._metrics_raw, self._metrics_deadline = None, b"", None
            self.arrivals.forget(METRICS)
            return UNCHANGED
        if payload != self._metrics_raw or self.metrics is None:
            parsed = parse_as(GatewayMetrics, payload, max_size=self.max_payload)
            self.metrics, self._metrics_raw = parsed, payload
        elif self.metrics.ts is not None or replayed:
            return UNCHANGED  # keep the deadline judged at first arrival (as for devices)
        metrics = self.metrics
        since = self._since(METRICS, payload, metrics.ts, metrics.ttl, clock, replayed)
        self._metrics_deadline = deadline(since, metrics.ttl, clock)
        return UNCHANGED  # metrics travel with the periodic report

    def _since(self, key: str, payload: bytes, ts: float | None, ttl: float | None,
               clock: Clock, replayed: bool) -> float | None:
        """The wall time a record's age counts from: its `ts`, else its arrival (kept
        across restarts for a record with a `ttl`)."""
        if ttl is None or ts is not None:
            self.arrivals.forget(key)
            return ts
        return self.arrivals.arrived(key, payload, clock.wall(), replayed)

    def _set_deadline(self, ip: str, slot: _Slot, due: float | None, now: float) -> None:
        # A record already past its deadline is offline from the start: nothing is
        # left to wake up for.
        slot.deadline, slot.lapsed = due, due is not None and due <= now
        if due is not None and not slot.lapsed:
            heapq.heappush(self._expiries, (due, ip))
            if len(self._expiries) > 2 * len(self.devices) + 64:
                self._compact_expiries()

    def restore_arrival(self, key: str, payload: bytes, clock: Clock) -> Outcome:
        """A replayed `bridge/arrivals/{key}`: a record judged from its own replay counts
        from the arrival kept before the restart. RecordError when malformed."""
        at = self.arrivals.restore(key, payload)
        if at is None:
            return UNCHANGED
        if key == METRICS:
            if self.metrics is not None:
                self._metrics_deadline = deadline(at, self.metrics.ttl, clock)
            return UNCHANGED
        if key == HARDWARE:
            if self.hardware is not None:
                self._hardware_deadline = deadline(at, self.hardware.ttl, clock)
            return UNCHANGED
        slot = self.devices.get(key)
        if slot is None:
            return UNCHANGED
        now = clock.monotonic()
        before = self._view(slot, now)
        self._set_deadline(key, slot, deadline(at, slot.record.ttl, clock), now)
        return CHANGED if self._view(slot, now) != before else UNCHANGED

    def _apply_hardware(self, payload: bytes, clock: Clock, replayed: bool) -> Outcome:
        if not payload:
            self.hardware, self._hardware_raw, self._hardware_deadline = None, b"", None
            self.arrivals.forget(HARDWARE)
            return UNCHANGED
        if payload != self._hardware_raw or self.hardware is None:
            parsed = parse_as(GatewayHardware, payload, max_size=self.max_payload)
            self.hardware, self._hardware_raw = parsed, payload
        elif self.hardware.ts is not None or replayed:
            return UNCHANGED  # keep the deadline judged at first arrival (as for metrics)
        hardware = self.hardware
        since = self._since(HARDWARE, payload, hardware.ts, hardware.ttl, clock, replayed)
        self._hardware_deadline = deadline(since, hardware.ttl, clock)
        return UNCHANGED  # like the metrics, it travels with the periodic report

    def _apply_info(self, payload: bytes) -> Outcome:
        if not payload:
            changed = self.info is not None
            self.info, self._info_raw = None, b""
            return CHANGED if changed else UNCHANGED
        if payload == self._info_raw:
            return UNCHANGED
        parsed = parse_as(GatewayInfo, payload, max_size=self.max_payload)
        old, self.info, self._info_raw = self.info, parsed, payload
        return CHANGED if _visible(old) != _visible(parsed) else UNCHANGED

    def _apply_collector(self, name: str, payload: bytes, clock: Clock) -> Outcome:
        status = _STATUS_PAYLOADS.get(payload.strip())
        if status is None:
            if not payload:
                status = "online"  # a deleted status says nothing against its devices
            else:
                raise RecordError("collector status must be 'online' or 'offline'", code="status")
        was_offline = name in self.offline_sources
        if (status == "offline") == was_offline:
            return UNCHANGED
        if status == "offline" and len(self.offline_sources) >= _MAX_OFFLINE_SOURCES:
            raise RecordError(
                f"more than {_MAX_OFFLINE_SOURCES} publishers offline; status refused",
                code="limit",
            )
        now = clock.monotonic()
        before = [self._view(s, now) for s in self.devices.values() if s.record.source == name]
        if status == "offline":
            self.offline_sources.add(name)
        else:
            self.offline_sources.discard(name)
        after = [self._view(s, now) for s in self.devices.values() if s.record.source == name]
        return CHANGED if before != after else UNCHANGED

    def retain_only(self, seen: set[TopicRef], clock: Clock) -> Outcome:
        """After a replay: forget what the broker no longer holds.

        A retained record deleted while the bridge was disconnected is not
        replayed, so everything of this gateway that the replay did not bring
        back is gone for good: the state mirrors the broker again. Devices
        refused at the cap during the replay take the room that frees.
        """
        keys = {(ref.kind, ref.key, ref.owner) for ref in seen}
        gone = [ip for ip, slot in self.devices.items()
                if (Kind.DEVICE_STATE, ip, slot.owner) not in keys]
        for ip in gone:
            self._forget(ip)
        self._waiting = {ip: held for ip, held in self._waiting.items()
                         if (Kind.DEVICE_STATE, ip, held[0]) in keys}
        changed = bool(gone)
        if gone:
            self._order = None
            changed = self._admit_waiting(clock) or changed
        if self.info is not None and (Kind.GATEWAY_INFO, "", "") not in keys:
            self.info, self._info_raw, changed = None, b"", True
        if self.metrics is not None and (Kind.GATEWAY_METRICS, "", "") not in keys:
            self.metrics, self._metrics_raw, self._metrics_deadline = None, b"", None
            self.arrivals.forget(METRICS)
        if self.hardware is not None and (Kind.GATEWAY_HARDWARE, "", "") not in keys:
            self.hardware, self._hardware_raw, self._hardware_deadline = None, b"", None
            self.arrivals.forget(HARDWARE)
        statuses = {ref.key for ref in seen if ref.kind is Kind.COLLECTOR_STATUS}
        back = self.offline_sources - statuses
        if back:
            self.offline_sources -= back
            changed = True
        return Outcome(changed=changed)

    def _admit_waiting(self, clock: Clock) -> bool:
        """Take in devices refused at the cap while there is room; True if any came in."""
        admitted = False
        while self._waiting and len(self.devices) < self.max_devices:
            ip = next(iter(self._waiting))
            owner, payload = self._waiting.pop(ip)
            try:
                self._apply_device(ip, owner, payload, clock, replayed=False)
            except RecordError:  # validated when it was refused; cannot happen
                continue
            admitted = True
        return admitted

    def _forget(self, ip: str) -> None:
        self._device_bytes -= _weight(self.devices.pop(ip).raw)
        self.arrivals.forget(ip)

    # -- time ----------------------------------------------------------------

    def _compact_expiries(self) -> None:
        """Drop superseded deadlines: refreshes would otherwise pile up until they pass.

        A deadline already taken into account is not put back: it would count as
        an expiry a second time, and send a report with nothing new in it.
        """
        self._expiries = [(s.deadline, ip) for ip, s in self.devices.items()
                          if s.deadline is not None and not s.lapsed]
        heapq.heapify(self._expiries)

    def next_expiry(self) -> float | None:
        """The earliest monotonic time at which a device may go stale."""
        return self._expiries[0][0] if self._expiries else None

    def expire(self, clock: Clock) -> bool:
        """Drop passed deadlines; True when a device went offline because of one."""
        now = clock.monotonic()
        changed = False
        while self._expiries and self._expiries[0][0] <= now:
            due, ip = heapq.heappop(self._expiries)
            slot = self.devices.get(ip)
            # An entry is current only if the slot still has this very deadline.
            if slot is None or slot.deadline != due or slot.lapsed:
                continue
            slot.lapsed = True
            if slot.record.ep_status == "online":
                changed = changed or slot.record.source not in self.offline_sources
        return changed

    # -- reading -------------------------------------------------------------

    def _status(self, slot: _Slot, now: float) -> str:
        record = slot.record
        if record.ep_status == "offline":
            return "offline"
        if slot.deadline is not None and slot.deadline <= now:
            return "offline"
        if record.source is not None and record.source in self.offline_sources:
            return "offline"
        return "online"

    def _view(self, slot: _Slot, now: float) -> tuple[object, ...]:
        """What the reports show of a device: a change of anything else sends none."""
        record = slot.record
        return (self._status(slot, now), *(getattr(record, name) for name in self._shown))

    def device_views(self, clock: Clock) -> list[DeviceView]:
        """Every device with its effective status, in report (IP) order."""
        if self._order is None:
            self._order = sorted(self.devices, key=ip_sort_key)
        now = clock.monotonic()
        devices = self.devices
        return [
            DeviceView(ip, devices[ip].record, self._status(devices[ip], now)) for ip in self._order
        ]

    def current_metrics(self, clock: Clock) -> GatewayMetrics | None:
        due = self._metrics_deadline
        if due is not None and due <= clock.monotonic():
            return None
        return self.metrics

    def current_hardware(self, clock: Clock) -> GatewayHardware | None:
        due = self._hardware_deadline
        if due is not None and due <= clock.monotonic():
            return None
        return self.hardware

    def gateway(self, clock: Clock, gateway_status: str = "online") -> Gateway | None:
        """The gateway's side of a report now, or None while its identity is unknown."""
        info = self.info_in_force()
        if info is None:
            return None
        return Gateway(self.sn, info, self.current_metrics(clock),
                       self.current_hardware(clock), gateway_status, self.port,
                       self.reporter_id)

    def info_in_force(self) -> GatewayInfo | None:
        """gateway/info with the dev_sno in force (`dev_sno`, when set)."""
        info = self.info
        if info is None or not self.dev_sno or info.dev_sno == self.dev_sno:
            return info
        return info.model_copy(update={"dev_sno": self.dev_sno})

    def report(self, clock: Clock, gateway_status: str = "online") -> Json | None:
        """The report with the gateway for now, or None while its identity is unknown."""
        gateway = self.gateway(clock, gateway_status)
        if gateway is None:
            return None
        views = self.device_views(clock) if self.devices_fmt is None else ()
        return build_gateway_report(self.fmt, gateway, views)

    def devices_report(self, clock: Clock) -> Json | None:
        """The separate sub-device report for now; None for a one-report release or while
        the gateway's identity (its dev_sno) is unknown."""
        info = self.info_in_force()
        if self.devices_fmt is None or info is None:
            return None
        return build_devices_report(self.devices_fmt, info.dev_sno, self.device_views(clock))

    def report_body(
        self, clock: Clock, gateway_status: str = "online"
    ) -> tuple[bytes, int, int] | None:
        """The report with the gateway for now serialised, with its (online, all) device
        counts; None while the gateway's identity is unknown. The same bytes as
        `dumps(report(...))`, made from each device's kept entry, so a report costs
        about one serialisation. For a two-report release it carries no devices, and
        says so (0, 0): `devices_body` counts them."""
        gateway = self.gateway(clock, gateway_status)
        if gateway is None:
            return None
        head = build_gateway_report(self.fmt, gateway)
        if self.devices_fmt is not None:
            return dumps(head), 0, 0
        bodies, online = self._bodies(clock, gateway.info.dev_sno)
        return splice(head, bodies), online, len(bodies)

    def devices_body(self, clock: Clock) -> tuple[bytes, int, int] | None:
        """The separate sub-device report for now serialised, with its (online, all)
        device counts; None for a one-report release or while dev_sno is unknown."""
        fmt, info = self.devices_fmt, self.info_in_force()
        if fmt is None or info is None:
            return None
        bodies, online = self._bodies(clock, info.dev_sno)
        return splice(build_devices_report(fmt, info.dev_sno), bodies, devices_key(fmt)), \
            online, len(bodies)

    def _bodies(self, clock: Clock, dev_sno: str) -> tuple[list[bytes], int]:
        """Each device's serialised entry in report order, kept until it changes, and the
        number online."""
        if self._order is None:
            self._order = sorted(self.devices, key=ip_sort_key)
        fmt = self.device_format
        basis = (dev_sno, fmt)
        if basis != self._bodies_for:
            for slot in self.devices.values():
                slot.body = None
            self._bodies_for = basis
        now = clock.monotonic()
        devices, status_of = self.devices, self._status
        bodies: list[bytes] = []
        online = 0
        for ip in self._order:
            slot = devices[ip]
            status = status_of(slot, now)
            if status == "online":
                online += 1
            body = slot.body
            if body is None or slot.body_status != status:
                body = device_body(fmt, dev_sno, DeviceView(ip, slot.record, status))
                slot.body, slot.body_status = body, status
            bodies.append(body)
        return bodies, online

    def counts(self, clock: Clock) -> tuple[int, int]:
        """(online, offline) devices now."""
        now = clock.monotonic()
        online = sum(1 for s in self.devices.values() if self._status(s, now) == "online")
        return online, len(self.devices) - online



def _weight(raw: bytes) -> int:
    """A device's estimated share of the report body, in bytes."""
    return len(raw) + _ENTRY_OVERHEAD


def _visible(info: GatewayInfo | None) -> dict[str, object] | None:
    """What of the gateway's identity the platform sees (not who published it)."""
    return None if info is None else info.model_dump(exclude={"source"})
