"""The bridge's side of the platform: settings in force, the reports' channels, login.

`PlatformLink` holds what the config topics, the config file and the login
answer say (`bridge.settings`), one `Channel` per report the platform's release
takes (bridge.channel: the gateway's, and for V5R7C01 and V6 the sub-devices'
too), each with the targets that follow from the settings, and the login worker
(`bridge.login`, in the release's variant). It publishes the retained
bridge/settings when they change, and asks for a new login when the login URL,
the authorisation code, the release's login variant or the gateway is new, or
when a target the login issued keeps refusing its token. A new release (the
`config/release` topic) takes effect at once: the bridge is told
(`on_settings`, with the names the reports carry), the sub-device channel comes
or goes.

Every method runs on the bridge's main loop, except `_on_attempt` and
`_publish_event`, which the targets' and the login's threads call: what they
have for the main loop they hand to `post`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict

import orjson

from bridge.channel import DEVICES, GATEWAY, Channel
from bridge.config import PlatformSection
from bridge.delivery import Attempt, Backoff, Target
from bridge.errors import RecordError
from bridge.freshness import Clock
from bridge.http import HttpSender
from bridge.login import LoginFailed, LoginResult, LoginWorker, login_request
from bridge.outbox import ReportNames
from bridge.records import GatewayInfo
from bridge.releases import LOGINS
from bridge.settings import Settings
from bridge.stats import Stats
from bridge.topics import Kind, Topics

logger = logging.getLogger(__name__)

Publish = Callable[[str, bytes, bool, int], object]  # topic, payload, retain, qos
Post = Callable[..., None]  # run func(*args) on the main loop
Report = Callable[[str], tuple[bytes, int] | None]  # a channel's body for now, device count


class PlatformLink:
    """Settings in force, the channels of the release's reports, and the login."""

    def __init__(
        self,
        platform: PlatformSection,
        topics: Topics,
        sn: str,
        sender_name: str,
        clock: Clock,
        stats: Stats,
        *,
        announce: bool,
        publish: Publish,
        post: Post,
        report: Report,
        on_settings: Callable[[ReportNames], None],
        gateway: Callable[[], GatewayInfo | None],
        reject: Callable[[str, RecordError], None],
        next_seq: Callable[[], int],
        reporter_id: str = "",
    ) -> None:
        self._platform = platform
        self._topics = topics
        self._sn = sn
        self._sender_name = sender_name
        self._clock = clock
        self._stats = stats
        self._announce = announce
        self._publish = publish
        self._post = post
        self._report = report  # None also while the gateway is not ready
        self._on_settings = on_settings
        self._gateway = gateway
        self._reject = reject
        self._next_seq = next_seq
        self.settings = Settings(platform, clock.wall, reporter_id)
        self.release = self.settings.release()[0]
        self.channels: dict[str, Channel] = {}
        self._open_channels()
        self._login_key: tuple[str, ...] | None = None
        self._relogin_at: float | None = None  # monotonic time of the last relogin
        # Made even without a login URL: the config topic may bring one at any time.
        self._login = self._make_login() if announce else None
        self._settings_raw: bytes | None = None  # the bridge/settings last published

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start the targets the settings name now, and the login worker."""
        self.update_targets()
        if self._login is not None:
            self._login.start()

    def targets(self) -> list[Target]:
        return [target for channel in self.channels.values() for target in channel.targets()]

    def by_url(self) -> dict[str, Target]:
        """The targets by URL, the gateway report's over the sub-devices' for one URL."""
        return {url: target for channel in reversed(self.channels.values())
                for url, target in channel.by_url().items()}

    def stop_login(self) -> None:
        if self._login is not None:
            self._login.stop()

    # -- settings, release and channels ---------------------------------------

    def apply_setting(self, topic: str, kind: Kind, payload: bytes) -> None:
        """A record on one of the config topics."""
        try:
            changed = self.settings.apply(kind, payload)
        except RecordError as exc:
            self._reject(topic, exc)  # the previous value stays in force
            self.publish_settings()
            return
        self._stats.accepted()
        if changed:
            logger.info("%s %s by its config topic", kind.value.partition("/")[2],
                        "set" if payload.strip() else "cleared")
            self.settings_changed()

    def forget_unseen(self, kinds: set[Kind]) -> None:
        """The replay is over: config topics it did not bring back no longer apply."""
        if self.settings.forget_unseen(kinds):
            logger.info("config topics cleared while disconnected no longer apply")
            self.settings_changed()

    def gateway_changed(self, info: GatewayInfo) -> None:
        """A new gateway/info: its dev_sno, and perhaps a login."""
        if self.settings.gateway_dev_sno != info.dev_sno:
            self.settings.gateway_dev_sno = info.dev_sno
            self.publish_settings()
        self._maybe_login()

    def settings_changed(self) -> None:
        """Put what the settings say in force: release, periods, targets, login; publish."""
        chosen = self.settings.release()[0]
        if chosen != self.release:
            logger.info("platform release %s: %s report(s), login %s", chosen.name,
                        " + ".join(chosen.reports), chosen.login)
            self.release = chosen
            self._open_channels()
        reporter_id, source = self.settings.reporter_id()
        dev_sno, dev_sno_source = self.settings.dev_sno()
        self._on_settings(ReportNames(
            chosen, "" if source == "dev_sno" else reporter_id,
            dev_sno if dev_sno_source == "topic" else ""))
        for name, channel in self.channels.items():
            channel.set_period(self.settings.period(name)[0])
        self._maybe_login()
        self.update_targets()
        self.publish_settings()

    def _open_channels(self) -> None:
        """One channel per report of the release in force (a channel no longer used stops)."""
        wanted = [GATEWAY] if self.release.devices is None else [GATEWAY, DEVICES]
        for name in [n for n in self.channels if n not in wanted]:
            self.channels.pop(name).close()
        ready = any(channel.schedule.ready for channel in self.channels.values())
        for name in wanted:
            if name not in self.channels:
                channel = Channel(name, self._make_target, self.settings.period(name)[0],
                                  self._platform.min_interval)
                channel.schedule.ready = ready
                self.channels[name] = channel

    def republish_settings(self) -> None:
        """Publish bridge/settings again (a new connection: the broker may have lost it)."""
        self._settings_raw = None
        self.publish_settings()

    def publish_settings(self) -> None:
        """The retained bridge/settings, when what it says has changed."""
        if not self._announce:
            return
        doc = self.settings.document()
        raw = orjson.dumps(doc)
        if raw != self._settings_raw:
            self._settings_raw = raw
            record = {"ts": round(self._clock.wall(), 3), **doc}
            self._publish(self._topics.bridge_settings, orjson.dumps(record), True, 1)

    def update_targets(self) -> None:
        if not self._announce:
            return  # a snapshot: it reports to no one, so it has no targets
        auth = self.settings.auth()
        for name, channel in self.channels.items():
            urls, source = self.settings.report_urls(name)
            added = channel.update(urls, source == "login", auth)
            # A new target gets the state at once; the others have it already.
            built = self._report(name) if added else None
            if built is not None:
                for target in added:
                    target.offer(*built)
        self._stats.targets((name, target.name) for name, channel in self.channels.items()
                            for target in channel.targets())

    def _make_target(self, report: str, url: str,
                     params: Callable[[], Mapping[str, str]] | None) -> Target:
        platform = self._platform
        return Target(
            url,
            self._sender_name,
            lambda: HttpSender(platform.timeout, platform.ca_file),
            Backoff(platform.retry_min, platform.retry_max),
            lambda attempt: self._on_attempt(report, attempt),
            self._next_seq,
            params,
        )

    def _on_attempt(self, report: str, attempt: Attempt) -> None:
        """Called on a target's thread after each POST."""
        now = self._clock.wall()
        self._stats.attempt(attempt.target, attempt.ok, now, report)
        self._publish_event({"ts": round(now, 3), "report": report, **asdict(attempt)})
        channel = self.channels.get(report)
        count = channel.attempted(attempt) if channel is not None else 0
        if count:
            self._post(self._relogin, attempt.target, count)

    def _publish_event(self, event: dict[str, object]) -> None:
        """Called on worker threads: the main loop publishes."""
        if self._announce:
            self._post(self._publish, self._topics.bridge_report, orjson.dumps(event), False, 0)

    # -- login ---------------------------------------------------------------

    def _make_login(self) -> LoginWorker:
        platform = self._platform
        return LoginWorker(
            HttpSender(platform.timeout, platform.ca_file),
            Backoff(platform.retry_min, platform.retry_max),
            lambda result: self._post(self._logged_in, result),
            self._publish_event,
            self._clock.wall,
            on_failure=lambda failure: self._post(self._login_failed, failure),
        )

    def _relogin(self, target: str, count: int) -> None:
        """A report target issued by the login refuses us (the first 401 or 403): log in
        again at once, then at most once per `retry_max`. A new login's token has every
        refused target of the login try again at once, so a platform that refuses every
        token, with several targets, would otherwise be asked again and again without a
        pause."""
        now = self._clock.monotonic()
        spacing = self._platform.retry_max
        if self._relogin_at is not None and now - self._relogin_at < spacing:
            logger.debug("%s refused %d reports in a row; logged in again %.1f s ago",
                         target, count, now - self._relogin_at)
            return
        logger.info("%s refused %d report%s in a row: logging in again", target, count,
                    "" if count == 1 else "s")
        self._relogin_at = now
        self._login_key = None
        self._maybe_login()

    def _maybe_login(self) -> None:
        """Ask for a login when its URL, variant or the gateway's identity is new (or a
        relogin was asked)."""
        target = self.settings.login_target()
        info = self._gateway()
        if self._login is None or target is None or info is None:
            if target is None:
                self._login_key = None
            return
        url, dev_sno, variant = target
        key = (*target, info.gateway_mac or "")
        if key == self._login_key:
            return
        self._login_key = key
        request = login_request(url, dev_sno, LOGINS[self.release.login], self._sn,
                                info.gateway_mac)
        if request is None:
            logger.warning("cannot log in (%s): gateway/info has no gateway_mac for hex_mac",
                           variant)
            return
        self.settings.login_requested()
        self._login.request(request)
        self.publish_settings()

    def _logged_in(self, result: LoginResult) -> None:
        if self.settings.logged_in(result):
            self.settings_changed()

    def _login_failed(self, failure: LoginFailed) -> None:
        self.settings.login_failed(failure)
        self.publish_settings()
