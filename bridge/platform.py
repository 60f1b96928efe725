"""The bridge's side of the platform: settings in force, report targets, login.

`PlatformLink` holds what the config topics, the config file and the login
answer say (`bridge.settings`), the targets that follow from it
(`bridge.targets`) and the login worker (`bridge.login`). It publishes the
retained bridge/settings when they change, and asks for a new login when the
login URL, the authorisation code or the gateway is new, or when a target the
login issued keeps refusing its token.

Every method runs on the bridge's main loop, except `_on_attempt` and
`_publish_event`, which the targets' and the login's threads call: what they
have for the main loop they hand to `post`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict

import orjson

from bridge.config import PlatformSection
from bridge.delivery import Attempt, Backoff, Target
from bridge.errors import RecordError
from bridge.freshness import Clock
from bridge.http import HttpSender
from bridge.login import LoginFailed, LoginResult, LoginWorker
from bridge.records import GatewayInfo
from bridge.settings import Settings
from bridge.stats import Stats
from bridge.targets import TargetSet
from bridge.topics import Kind, Topics

logger = logging.getLogger(__name__)

# Refusals in a row from one login-issued target that ask for a new login: a 401 or
# 403 says the token is no longer good (the platform rotated it) at the first one; a
# 404 may be a moved address, which a new login issues, or a passing fault.
_RELOGIN_AFTER = {401: 1, 403: 1, 404: 3}

Publish = Callable[[str, bytes, bool, int], object]  # topic, payload, retain, qos
Post = Callable[..., None]  # run func(*args) on the main loop
Report = Callable[[], tuple[bytes, int] | None]  # the report body for now, device count


class PlatformLink:
    """Settings in force, the targets they name, and the login that may issue them."""

    def __init__(
        self,
        platform: PlatformSection,
        topics: Topics,
        sender_name: str,
        clock: Clock,
        stats: Stats,
        *,
        announce: bool,
        publish: Publish,
        post: Post,
        report: Report,
        set_period: Callable[[float], None],
        gateway: Callable[[], GatewayInfo | None],
        reject: Callable[[str, RecordError], None],
        next_seq: Callable[[], int],
    ) -> None:
        self._platform = platform
        self._topics = topics
        self._sender_name = sender_name
        self._clock = clock
        self._stats = stats
        self._announce = announce
        self._publish = publish
        self._post = post
        self._report = report  # None also while the gateway is not ready
        self._set_period = set_period
        self._gateway = gateway
        self._reject = reject
        self._next_seq = next_seq
        self.settings = Settings(platform, clock.wall)
        self._targets = TargetSet(self._make_target)
        self._login_key: tuple[str, str, str] | None = None
        self._refusals: dict[str, int] = {}
        self._refusals_lock = threading.Lock()
        self._relogin_at: float | None = None  # monotonic time of the last relogin
        # Made even without a login URL: the config topic may bring one at any time.
        self._login = self._make_login() if announce else None
        self._settings_raw: bytes | None = None  # the bridge/settings last published
        self._warned_no_target = False

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start the targets the settings name now, and the login worker."""
        self.update_targets()
        if self._login is not None:
            self._login.start()

    def targets(self) -> list[Target]:
        return self._targets.all()

    def by_url(self) -> dict[str, Target]:
        return self._targets.by_url()

    def stop_login(self) -> None:
        if self._login is not None:
            self._login.stop()

    # -- settings and targets (bridge.settings, bridge.targets) -------------

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
        """Put what the settings say in force: period, targets, login; publish them."""
        period, _ = self.settings.period()
        self._set_period(period)
        self._maybe_login()
        self.update_targets()
        self.publish_settings()

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

    def offer(self, body: bytes, count: int) -> None:
        """Hand a report to every target (a warning, once, while there is none)."""
        if not self._targets:
            if not self._warned_no_target:
                logger.warning("no report URL configured yet: report not sent")
                self._warned_no_target = True
            return
        for target in self._targets.all():
            target.offer(body, count)

    def update_targets(self) -> None:
        if not self._announce:
            return  # a snapshot: it reports to no one, so it has no targets
        urls, source = self.settings.report_urls()
        self._targets.set_auth(self.settings.auth())
        added = self._targets.update(urls, issued_by_login=source == "login")
        if added:
            self._warned_no_target = False
        # A new target gets the state at once; the others have it already.
        built = self._report() if added else None
        if built is not None:
            for target in added:
                target.offer(*built)

    def _make_target(self, url: str, params: Callable[[], Mapping[str, str]] | None) -> Target:
        platform = self._platform
        return Target(
            url,
            self._sender_name,
            lambda: HttpSender(platform.timeout, platform.ca_file),
            Backoff(platform.retry_min, platform.retry_max),
            self._on_attempt,
            self._next_seq,
            params,
        )

    def _on_attempt(self, attempt: Attempt) -> None:
        """Called on a target's thread after each POST."""
        now = self._clock.wall()
        self._stats.attempt(attempt.target, attempt.ok, now)
        self._publish_event({"ts": round(now, 3), **asdict(attempt)})
        if attempt.target not in self._targets.login_names:
            return  # only a target the login issued can be fixed by logging in again
        after = _RELOGIN_AFTER.get(attempt.status or 0)
        with self._refusals_lock:
            if after is None:
                self._refusals.pop(attempt.target, None)
                return
            count = self._refusals.get(attempt.target, 0) + 1
            self._refusals[attempt.target] = 0 if count >= after else count
        if count >= after:
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
        """Ask for a login when its URL or the gateway's identity is new (or a relogin
        was asked)."""
        target = self.settings.login_target()
        info = self._gateway()
        if self._login is None or target is None or info is None:
            if target is None:
                self._login_key = None
            return
        if info.gateway_mac is None:
            if self._login_key != ("", "", ""):
                logger.warning("cannot log in: gateway/info has no gateway_mac for hex_mac")
                self._login_key = ("", "", "")
            return
        key = (*target, info.gateway_mac)
        if key != self._login_key:
            self._login_key = key
            self.settings.login_requested()
            self._login.request(*key)
            self.publish_settings()

    def _logged_in(self, result: LoginResult) -> None:
        if self.settings.logged_in(result):
            self.settings_changed()

    def _login_failed(self, failure: LoginFailed) -> None:
        self.settings.login_failed(failure)
        self.publish_settings()
