"""The reports going out: each channel's body built from the state when it is due.

The bridge's main loop asks `Outbox` what is due (`send_due`) and when next
(`next_due`); a change of what the platform sees makes every report due soon
(`changed`). Each channel (bridge.channel: the gateway's report, and in the
two-report releases the sub-devices' too) has its own format, taken from the
release in force: a new release (`apply_settings`) makes its reports due at
once, each complete; so does a new `reporter_id` or `config/dev_sno`. `finish` sends each report's
last (`offline`) copy at shutdown, bounded in time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bridge.channel import GATEWAY, Channel
from bridge.delivery import Target
from bridge.freshness import Clock
from bridge.releases import Release
from bridge.report import Json
from bridge.state import GatewayState
from bridge.stats import Stats

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportNames:
    """What the settings in force make of the reports: the release (their formats), and
    the names they carry beside the records ("": the gateway's own)."""

    release: Release
    reporter_id: str = ""  # V6's system report; "": dev_sno
    dev_sno: str = ""  # config/dev_sno, before gateway/info is republished with it


class Outbox:
    """Builds each channel's report from `state` and offers it to the channel's targets."""

    def __init__(self, state: GatewayState, clock: Clock, stats: Stats, fmt: str) -> None:
        self._state = state
        self._clock = clock
        self._stats = stats
        self._format = fmt  # `[platform] format`: a variant, where the release offers it
        self.channels: Mapping[str, Channel] = {}  # the platform link's, set by the bridge

    def mark_ready(self, now: float) -> None:
        """The gateway is known and the retained state in: the first reports are due."""
        for channel in self.channels.values():
            channel.schedule.mark_ready(now)

    def changed(self) -> None:
        """Something the platform sees has changed: each report goes soon."""
        now = self._clock.monotonic()
        for channel in self.channels.values():
            channel.schedule.changed(now)

    def next_due(self) -> list[float | None]:
        return [channel.schedule.next_due() for channel in self.channels.values()]

    def send_due(self, now: float) -> None:
        for channel in list(self.channels.values()):
            if channel.schedule.is_due(now):
                channel.schedule.sent(now)
                built = self.build(channel.name)
                if built is not None:
                    channel.offer(*built)

    def build(self, report: str = GATEWAY, status: str = "online") -> tuple[bytes, int] | None:
        """The report `report` (gateway or devices) for now as (body, device count); None
        while the gateway is unknown. `status` is the gateway's; the sub-device report
        names none (its devices keep theirs)."""
        if report == GATEWAY:
            built = self._state.report_body(self._clock, status)
        else:
            built = self._state.devices_body(self._clock)
        if built is None:
            return None
        body, online, count = built
        if report != GATEWAY or self._state.devices_fmt is None:
            # The report that carries the devices counts them: a two-report release's
            # box report carries none, which is no news about them.
            self._stats.devices(online, count - online)
        return body, count

    def payload(self) -> Json | None:
        """The report for now as JSON, for a person (`se3-bridge snapshot`); under a
        two-report release both, by format (the box's, then the sub-devices'). None while
        the gateway is unknown."""
        state = self._state
        report = state.report(self._clock)
        if report is None or state.devices_fmt is None:
            return report
        return {state.fmt: report, state.devices_fmt: state.devices_report(self._clock)}

    def ready_report(self, report: str) -> tuple[bytes, int] | None:
        """The report for a new target: none before the first one is due."""
        channel = self.channels.get(report)
        return self.build(report) if channel is not None and channel.schedule.ready else None

    def apply_settings(self, names: ReportNames) -> None:
        """The release and the names the reports carry, as the settings say now; a new one
        makes every report due soon, built whole in its new form."""
        state = self._state
        chosen = names.release
        fmt = chosen.sent_under(self._format)[0]
        now = (fmt, chosen.devices, names.reporter_id, names.dev_sno)
        if now == (state.fmt, state.devices_fmt, state.reporter_id, state.dev_sno):
            return
        state.set_formats(fmt, chosen.devices)
        state.reporter_id, state.dev_sno = names.reporter_id, names.dev_sno
        if state.info is not None:
            self.changed()

    def finish(self, deadline: float) -> None:
        """The last report of each channel (gateway offline) to its targets, until the
        monotonic `deadline`; a channel not yet ready only stops its targets."""
        finishing: list[Target] = []
        for channel in self.channels.values():
            last = self.build(channel.name, "offline") if channel.schedule.ready else None
            targets = channel.targets()
            if last is not None and targets:
                logger.info("sending the last %s report (gateway offline) to %d targets",
                            channel.name, len(targets))
                for target in targets:
                    target.finish(*last, deadline)
                finishing += targets
            else:
                for target in targets:
                    target.stop()
        for target in finishing:
            target.join(deadline - time.monotonic())
