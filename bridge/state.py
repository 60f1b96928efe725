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

The state holds, by what each part keeps: the gateway's own records
(bridge.gatewayrecords), its sub-devices with their publishers (one address,
one publisher: bridge.devicetable), the arrivals of records without `ts`
kept across restarts (bridge.arrivals), and what the reports name besides
(formats, dev_sno in force, gateway_port, reporter_id); from them it builds
the reports.

Pure: time comes from the `Clock` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.arrivals import Arrivals
from bridge.devicetable import DeviceTable, Slot
from bridge.freshness import Clock
from bridge.gatewayrecords import GatewayRecords
from bridge.records import GatewayHardware, GatewayInfo, GatewayMetrics
from bridge.releases import CARRIES, ReportFormat
from bridge.report import (
    DEVICE_FIELDS,
    DeviceView,
    Gateway,
    Json,
    build_devices_report,
    build_gateway_report,
    devices_key,
    dumps,
    splice,
)
from bridge.topics import ARRIVAL_HARDWARE as HARDWARE
from bridge.topics import ARRIVAL_METRICS as METRICS
from bridge.topics import Kind, TopicRef


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
        # When each record with a ttl and no ts arrived, kept across restarts (bridge.arrivals).
        self.arrivals = Arrivals()
        self.records = GatewayRecords(self.arrivals, max_payload)
        self.table = DeviceTable(self.arrivals, max_devices, max_payload, max_report_bytes,
                                 configured)
        self.fmt: ReportFormat = fmt  # the format of the report with the gateway
        self.devices_fmt: ReportFormat | None = None  # of the separate sub-device report
        self.set_formats(fmt, devices_fmt)
        # What the reports name the gateway by besides its records: `gateway_port`
        # (F3-F5) and F7's `reporter_id` ("" : dev_sno).
        self.port: int | None = None
        self.reporter_id = ""
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
        self.table.shown = DEVICE_FIELDS[self.device_format]

    @property
    def device_format(self) -> ReportFormat:
        """The format whose device list carries the sub-devices."""
        return self.fmt if self.devices_fmt is None else self.devices_fmt

    # What the parts hold, read by the service, the outbox and the tests.

    @property
    def devices(self) -> dict[str, Slot]:
        return self.table.devices

    @property
    def offline_sources(self) -> set[str]:
        return self.table.offline_sources

    @property
    def configured(self) -> frozenset[str]:
        return self.table.configured

    @property
    def info(self) -> GatewayInfo | None:
        return self.records.info

    @property
    def metrics(self) -> GatewayMetrics | None:
        return self.records.metrics

    @property
    def hardware(self) -> GatewayHardware | None:
        return self.records.hardware

    # -- feeding -------------------------------------------------------------

    def apply(self, ref: TopicRef, payload: bytes, clock: Clock, replayed: bool = False) -> Outcome:
        """Apply one message; raises RecordError (state untouched) when it is refused.

        `replayed`: the broker sent it from its retained store (a new subscription),
        not because someone just published it.
        """
        kind = ref.kind
        if kind is Kind.DEVICE_STATE:
            return _outcome(self.table.apply(ref.key, ref.owner, payload, clock, replayed))
        if kind is Kind.GATEWAY_METRICS:  # metrics and hardware travel with the periodic report
            self.records.apply_metrics(METRICS, payload, clock, replayed)
        elif kind is Kind.GATEWAY_INFO:
            return _outcome(self.records.apply_info(payload))
        elif kind is Kind.GATEWAY_HARDWARE:
            self.records.apply_hardware(HARDWARE, payload, clock, replayed)
        elif kind is Kind.COLLECTOR_STATUS:
            return _outcome(self.table.apply_status(ref.key, payload, clock))
        elif kind is Kind.BRIDGE_ARRIVAL and replayed:  # our own writes echoed live: nothing new
            return self.restore_arrival(ref.key, payload, clock)
        return UNCHANGED  # the bridge's own topics; config topics go to bridge.settings

    def holds(self, ref: TopicRef) -> bool:
        """Whether a device record of this very topic is in the state or waiting."""
        return self.table.holds(ref.key, ref.owner)

    def restore_arrival(self, key: str, payload: bytes, clock: Clock) -> Outcome:
        """A replayed `bridge/arrivals/{key}`: a record judged from its own replay counts
        from the arrival kept before the restart. RecordError when malformed."""
        at = self.arrivals.restore(key, payload)
        if at is None:
            return UNCHANGED
        if key == METRICS:
            self.records.restore_metrics(at, clock)
            return UNCHANGED
        if key == HARDWARE:
            self.records.restore_hardware(at, clock)
            return UNCHANGED
        return _outcome(self.table.restore(key, at, clock))

    def retain_only(self, seen: set[TopicRef], clock: Clock) -> Outcome:
        """After a replay: forget what the broker no longer holds.

        A retained record deleted while the bridge was disconnected is not
        replayed, so everything of this gateway that the replay did not bring
        back is gone for good: the state mirrors the broker again. Devices
        refused at the cap during the replay take the room that frees.
        """
        kinds = {ref.kind for ref in seen}
        devices = {(ref.key, ref.owner) for ref in seen if ref.kind is Kind.DEVICE_STATE}
        statuses = {ref.key for ref in seen if ref.kind is Kind.COLLECTOR_STATUS}
        changed = self.table.retain_only(devices, statuses, clock)
        gone = self.records.retain_only(Kind.GATEWAY_INFO in kinds,
                                        (METRICS, Kind.GATEWAY_METRICS in kinds),
                                        (HARDWARE, Kind.GATEWAY_HARDWARE in kinds))
        return _outcome(changed or gone)

    # -- time ----------------------------------------------------------------

    def next_expiry(self) -> float | None:
        """The earliest monotonic time at which a device may go stale."""
        return self.table.next_expiry()

    def expire(self, clock: Clock) -> bool:
        """Drop passed deadlines; True when a device went offline because of one."""
        return self.table.expire(clock)

    # -- reading -------------------------------------------------------------

    def device_views(self, clock: Clock) -> list[DeviceView]:
        """Every device with its effective status, in report (IP) order."""
        return self.table.views(clock)

    def current_metrics(self, clock: Clock) -> GatewayMetrics | None:
        return self.records.current_metrics(clock)

    def current_hardware(self, clock: Clock) -> GatewayHardware | None:
        return self.records.current_hardware(clock)

    def counts(self, clock: Clock) -> tuple[int, int]:
        """(online, offline) devices now."""
        return self.table.counts(clock)

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
        info = self.records.info
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
        bodies, online = self.table.bodies(clock, gateway.info.dev_sno, self.device_format)
        return splice(head, bodies), online, len(bodies)

    def devices_body(self, clock: Clock) -> tuple[bytes, int, int] | None:
        """The separate sub-device report for now serialised, with its (online, all)
        device counts; None for a one-report release or while dev_sno is unknown."""
        fmt, info = self.devices_fmt, self.info_in_force()
        if fmt is None or info is None:
            return None
        bodies, online = self.table.bodies(clock, info.dev_sno, fmt)
        return splice(build_devices_report(fmt, info.dev_sno), bodies, devices_key(fmt)), \
            online, len(bodies)


def _outcome(changed: bool) -> Outcome:
    return CHANGED if changed else UNCHANGED
