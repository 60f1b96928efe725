"""The gateway's sub-devices: their records, who publishes each, when each goes stale.

Part of the gateway's state (bridge.state). One address, one publisher: a
device's record comes from the collectors' shared `devices/` topics or from one
app's own space (`apps/{user}/`, the topic's `owner`). When two claim one
address, the config's `[[devices]]` are the collectors' whatever came first;
any other address belongs to the first publisher whose record is held, until it
deletes the record. The other's record is refused (code `claimed`). An app's
record names no other `source` than its own user: its status is
`apps/{user}/status`, and a publisher whose status says `offline` has its
devices reported offline.

Bounded: at most `max_devices` devices (the `[[devices]]` are never refused at
the cap), a report body within `max_report_bytes`; devices refused at the cap
wait (a few) for room. A repeated, byte-identical record is not parsed again.
Each device's serialised report entry is kept until it changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

from bridge.arrivals import Arrivals
from bridge.errors import RecordError
from bridge.freshness import Clock, deadline
from bridge.records import DeviceState, owned, parse_as
from bridge.releases import ReportFormat
from bridge.report import DEVICE_FIELDS, DeviceView, device_body, ip_sort_key

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
class Slot:
    raw: bytes
    record: DeviceState
    deadline: float | None
    owner: str  # the app user whose space the record is in; "" for the collectors'
    lapsed: bool = False  # the deadline has passed and was taken into account
    # The device's serialised entry of `sub_devices`, and the status it shows: kept
    # until the record or the status changes (a new slot starts without one).
    body: bytes | None = None
    body_status: str = ""


class DeviceTable:
    """Every device of one gateway, by IP, with the publishers said to be offline."""

    def __init__(self, arrivals: Arrivals, max_devices: int, max_payload: int,
                 max_report_bytes: int, configured: frozenset[str]) -> None:
        self._arrivals = arrivals
        self.max_devices = max_devices
        self.max_payload = max_payload
        # A report past a platform's body limit delivers nothing at all: devices that
        # would take it past this size are refused instead, each one visibly.
        self.max_report_bytes = max_report_bytes
        # The `[[devices]]` of the config: only the devices collector may write their
        # topics (the broker's ACL denies them to apps), so they are never refused at
        # the cap, however many devices apps publish first.
        self.configured = configured
        self.shown: tuple[str, ...] = DEVICE_FIELDS["F2"]  # record fields the report shows
        self.devices: dict[str, Slot] = {}
        self.offline_sources: set[str] = set()
        self._order: list[str] | None = []
        self._bytes = 0  # sum of _weight() over self.devices
        self._expiries = _Expiries()
        self._waiting: dict[str, tuple[str, bytes]] = {}  # ip -> (owner, record): _MAX_WAITING
        self._bodies_for: tuple[str, ReportFormat] | None = None  # (dev_sno, fmt) of kept bodies

    # -- feeding -------------------------------------------------------------

    def apply(self, ip: str, owner: str, payload: bytes, clock: Clock, replayed: bool) -> bool:
        """A device's record (empty: deleted); whether the reports change. RecordError
        (nothing changed) when it is refused."""
        old = self.devices.get(ip)
        if not payload:
            if self._waiting.get(ip, (owner,))[0] == owner:
                self._waiting.pop(ip, None)
            if old is None or old.owner != owner:
                return False
            self._forget(ip)
            self._admit_waiting(clock)
            return True
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
        grown = self._bytes + _weight(payload) - (_weight(old.raw) if old else 0)
        if grown > self.max_report_bytes:
            raise RecordError(
                f"the report would pass its {self.max_report_bytes}-byte cap "
                f"([bridge] max_report_bytes); record refused", code="report_size",
            )
        self._bytes = grown
        now = clock.monotonic()
        if old is not None and old.raw == payload and (record.ts is not None or replayed):
            # Same bytes, same `ts`: the age was judged at first arrival. Judging it
            # again (a retained replay after a reconnect) with a wall clock stepped
            # since would cut the record short or stretch it. Without a `ts`, only
            # a live publish renews the record; a replay of what we hold does not.
            slot = Slot(payload, record, old.deadline, owner, old.lapsed, old.body,
                        old.body_status)
            self.devices[ip] = slot
        else:
            since = self._arrivals.since(ip, payload, record.ts, record.ttl, clock.wall,
                                         replayed)
            slot = Slot(payload, record, None, owner)
            self.devices[ip] = slot
            self._set_deadline(ip, slot, deadline(since, record.ttl, clock), now)
        if old is None:
            self._order = None
            return True
        return self._view(old, now) != self._view(slot, now)

    def holds(self, ip: str, owner: str) -> bool:
        """Whether a record of `owner` for `ip` is in the table or waiting."""
        slot = self.devices.get(ip)
        if slot is not None and slot.owner == owner:
            return True
        waiting = self._waiting.get(ip)
        return waiting is not None and waiting[0] == owner

    def _check_claim(self, ip: str, owner: str, old: Slot | None) -> None:
        """RecordError (code `claimed`) when another publisher holds address `ip`."""
        if owner and ip in self.configured:
            raise RecordError(f"{ip} is a configured device ([[devices]]): the devices "
                              "collector reports it; record refused", code="claimed")
        if old is not None and old.owner != owner:
            holder = f"app {old.owner}" if old.owner else "a collector (devices/)"
            raise RecordError(f"{ip} is already reported by {holder}; record refused",
                              code="claimed")

    def apply_status(self, name: str, payload: bytes, clock: Clock) -> bool:
        """A publisher's status (a collector's or an app's); whether the reports change."""
        status = _STATUS_PAYLOADS.get(payload.strip())
        if status is None:
            if not payload:
                status = "online"  # a deleted status says nothing against its devices
            else:
                raise RecordError("collector status must be 'online' or 'offline'", code="status")
        if (status == "offline") == (name in self.offline_sources):
            return False
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
        return before != after

    def restore(self, ip: str, at: float, clock: Clock) -> bool:
        """Device `ip` counts from `at`, its arrival kept before a restart."""
        slot = self.devices.get(ip)
        if slot is None:
            return False
        now = clock.monotonic()
        before = self._view(slot, now)
        self._set_deadline(ip, slot, deadline(at, slot.record.ttl, clock), now)
        return self._view(slot, now) != before

    def retain_only(self, seen: set[tuple[str, str]], statuses: set[str], clock: Clock) -> bool:
        """After a replay that brought back the records `seen` ((ip, owner)) and the
        publishers' `statuses`: forget the rest; the devices refused at the cap during
        the replay take the room that frees. Whether the reports change."""
        gone = [ip for ip, slot in self.devices.items() if (ip, slot.owner) not in seen]
        for ip in gone:
            self._forget(ip)
        self._waiting = {ip: held for ip, held in self._waiting.items()
                         if (ip, held[0]) in seen}
        changed = bool(gone)
        if gone:
            self._admit_waiting(clock)
        back = self.offline_sources - statuses
        if back:
            self.offline_sources -= back
            changed = True
        return changed

    def _admit_waiting(self, clock: Clock) -> bool:
        """Take in devices refused at the cap while there is room; True if any came in."""
        admitted = False
        while self._waiting and len(self.devices) < self.max_devices:
            ip = next(iter(self._waiting))
            owner, payload = self._waiting.pop(ip)
            try:
                self.apply(ip, owner, payload, clock, replayed=False)
            except RecordError:  # validated when it was refused; cannot happen
                continue
            admitted = True
        return admitted

    def _forget(self, ip: str) -> None:
        self._bytes -= _weight(self.devices.pop(ip).raw)
        self._arrivals.forget(ip)
        self._order = None

    # -- time ----------------------------------------------------------------

    def _set_deadline(self, ip: str, slot: Slot, due: float | None, now: float) -> None:
        # A record already past its deadline is offline from the start: nothing is
        # left to wake up for.
        slot.deadline, slot.lapsed = due, due is not None and due <= now
        if due is not None and not slot.lapsed:
            self._expiries.push(due, ip, self.devices)

    def next_expiry(self) -> float | None:
        """The earliest monotonic time at which a device may go stale."""
        return self._expiries.first()

    def expire(self, clock: Clock) -> bool:
        """Drop passed deadlines; True when a device went offline because of one."""
        changed = False
        for due, ip in self._expiries.passed(clock.monotonic()):
            slot = self.devices.get(ip)
            # An entry is current only if the slot still has this very deadline.
            if slot is None or slot.deadline != due or slot.lapsed:
                continue
            slot.lapsed = True
            if slot.record.ep_status == "online":
                changed = changed or slot.record.source not in self.offline_sources
        return changed

    # -- reading -------------------------------------------------------------

    def _status(self, slot: Slot, now: float) -> str:
        record = slot.record
        if record.ep_status == "offline":
            return "offline"
        if slot.deadline is not None and slot.deadline <= now:
            return "offline"
        if record.source is not None and record.source in self.offline_sources:
            return "offline"
        return "online"

    def _view(self, slot: Slot, now: float) -> tuple[object, ...]:
        """What the reports show of a device: a change of anything else sends none."""
        record = slot.record
        return (self._status(slot, now), *(getattr(record, name) for name in self.shown))

    def _ordered(self) -> list[str]:
        if self._order is None:
            self._order = sorted(self.devices, key=ip_sort_key)
        return self._order

    def views(self, clock: Clock) -> list[DeviceView]:
        """Every device with its effective status, in report (IP) order."""
        now = clock.monotonic()
        devices = self.devices
        return [DeviceView(ip, devices[ip].record, self._status(devices[ip], now))
                for ip in self._ordered()]

    def bodies(self, clock: Clock, dev_sno: str, fmt: ReportFormat) -> tuple[list[bytes], int]:
        """Each device's serialised entry in report order, kept until it changes, and the
        number online."""
        order = self._ordered()
        basis = (dev_sno, fmt)
        if basis != self._bodies_for:
            for slot in self.devices.values():
                slot.body = None
            self._bodies_for = basis
        now = clock.monotonic()
        devices, status_of = self.devices, self._status
        bodies: list[bytes] = []
        online = 0
        for ip in order:
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


class _Expiries:
    """The devices' deadlines, earliest first; superseded ones are skipped when they
    come up, and dropped when they pile up (refreshes push a new one each)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, ip: str, devices: dict[str, Slot]) -> None:
        heapq.heappush(self._heap, (due, ip))
        if len(self._heap) > 2 * len(devices) + 64:
            # A deadline already taken into account is not put back: it would count
            # as an expiry a second time, and send a report with nothing new in it.
            self._heap = [(s.deadline, each) for each, s in devices.items()
                          if s.deadline is not None and not s.lapsed]
            heapq.heapify(self._heap)

    def first(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def passed(self, now: float) -> Iterator[tuple[float, str]]:
        """Take out each (deadline, ip) due by `now`, earliest first."""
        while self._heap and self._heap[0][0] <= now:
            yield heapq.heappop(self._heap)


def _weight(raw: bytes) -> int:
    """A device's estimated share of the report body, in bytes."""
    return len(raw) + _ENTRY_OVERHEAD
