"""The bridge service: MQTT in, state kept, reports out, on one main loop.

Threads and who owns what:
- the main loop (`run`) owns the MQTT connection, the `GatewayState` and the
  `Schedule`: it drives paho's network I/O itself (`bridge.rim`), so
  `_on_message` applies each record to the state where it is read, and it
  hands finished report bodies to targets;
- each target's worker thread owns its HTTP session and backoff
  (`bridge.delivery`), the login worker its own (`bridge.login`); what they
  have for the main loop (a login's result, an attempt's event) they post to
  it with `Rim.call_soon`.

The first report waits for the broker's replay of retained state to finish, so
it is complete: after subscribing to the gateway's topics the bridge subscribes
once more, and the answer to that second subscription arrives, on the same
connection, after every retained message of the first.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from bridge.config import Config
from bridge.delivery import Attempt, Backoff, Target
from bridge.errors import BrokerError, RecordError
from bridge.freshness import Clock, SystemClock
from bridge.http import HttpSender
from bridge.login import LoginFailed, LoginResult, LoginWorker
from bridge.logs import Damper
from bridge.mqttclient import Connection, ReplayFence
from bridge.reach import wait_connected
from bridge.report import Json
from bridge.rim import Rim
from bridge.schedule import Schedule
from bridge.settings import CONFIG_KINDS, Settings
from bridge.state import GatewayState
from bridge.stats import Stats
from bridge.targets import TargetSet
from bridge.topics import Kind, TopicError, TopicRef, Topics, parse

logger = logging.getLogger(__name__)

_MAX_WAIT = 5.0
_FENCE_TIMEOUT = 10.0  # a broker that never answers the fence still gets reports
_OWN_KINDS = frozenset(
    {Kind.BRIDGE_STATUS, Kind.BRIDGE_REPORT, Kind.BRIDGE_ERRORS, Kind.BRIDGE_SETTINGS}
)
_AUTH_REFUSALS = frozenset({401, 403, 404})
_RELOGIN_AFTER = 3  # refusals in a row from one target


def boot_id() -> str:
    """New at every start: 64 random bits as 16 hex digits.

    Nothing from the clock: a box without a real-time clock boots to the same
    time again and again, and the start second plus a few random bits repeated
    after a few hundred boots. With 64 bits a repeat is out of reach (about one
    chance in 10^10 after 50,000 boots).
    """
    return secrets.token_hex(8)


class Bridge:
    """One bridge for the gateway named in the config."""

    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        stats: Stats | None = None,
        announce: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.stats = stats or Stats()
        self.sn = config.gateway.serial()
        self.prefix = config.mqtt.topic_prefix
        self.topics = Topics(self.prefix, self.sn)
        self.boot = boot_id()
        limits = config.bridge
        self.state = GatewayState(
            self.sn, limits.max_devices, limits.max_payload, config.platform.format,
            limits.max_report_bytes, frozenset(device.ip for device in config.devices),
        )
        self.settings = Settings(config.platform, self.clock.wall)
        self.schedule = Schedule(config.platform.interval, config.platform.min_interval)
        self._announce = announce
        # The same topics come again and again (refreshes, replays): parse each once.
        self._refs: dict[str, TopicRef] = {}
        self._refs_max = 2 * config.bridge.max_devices + 1024
        self._stop = threading.Event()
        self._replayed = False
        self._fence_deadline: float | None = None
        self._seen: set[TopicRef] | None = None  # what the current replay brought back
        self._next_seq = itertools.count(1).__next__  # report seq, shared by all targets
        self._failures = Damper(burst=3, window=60.0)
        self._targets = TargetSet(self._make_target)
        self._login_key: tuple[str, str, str] | None = None
        self._refusals: dict[str, int] = {}
        self._refusals_lock = threading.Lock()
        self._relogin_at: float | None = None  # monotonic time of the last relogin
        # Made even without a login URL: the config topic may bring one at any time.
        self._login = self._make_login() if announce else None
        self._settings_raw: bytes | None = None  # the bridge/settings last published
        self._damper = Damper(burst=5, window=60.0)
        self._warned_no_target = False
        # A fixed id: a restarted bridge takes over its old session at once,
        # so the old connection's last will cannot land after our "online".
        client_id = f"se3-bridge-{self.sn}" if announce else f"se3-peek-{secrets.token_hex(4)}"
        self.conn = Connection(
            config.mqtt, client_id, self.topics.bridge_status if announce else None
        )
        self.rim = Rim(self.conn)
        self._fence = ReplayFence(
            self.topics.everything, self.topics.fence,
            lambda: self._guarded(self._replay_done),
        )
        self.rim.set_on_message(self._on_message)
        self.conn.client.on_subscribe = self._fence.on_subscribe
        self.conn.on_connected(lambda client: self._guarded(self._subscribe, client))

    # -- paho callbacks: on the main loop, inside `Rim.run_once` -------------

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        try:
            self._apply(msg.topic, bytes(msg.payload), msg.retain)
        except Exception:
            if self._failures.allow("_apply")[0]:
                logger.exception("main loop: _apply failed; going on")

    def _subscribe(self, client: mqtt.Client) -> None:
        self._fence_deadline = self.clock.monotonic() + _FENCE_TIMEOUT
        self._seen = set()
        self._fence.subscribe(client)
        self._settings_raw = None  # published again: the broker may have lost it
        self._publish_settings()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Connect to the broker in the background."""
        self._update_targets()
        if self._login is not None:
            self._login.start()
        self.rim.start()

    def stop(self) -> None:
        """Ask `run` to finish (safe from a signal handler or another thread)."""
        self._stop.set()
        self.rim.wake()

    def run(self) -> None:
        """Serve until `stop()`; then send the last `offline` report and disconnect."""
        self.start()
        try:
            while not self._stop.is_set():
                self.step(self._wait_time())
        finally:
            self._shutdown()

    def step(self, timeout: float) -> None:
        """Wait up to `timeout` for input, apply what came, send what is due."""
        self.rim.run_once(timeout)
        self._guarded(self._tick)

    def _guarded(self, work: Callable[..., None], *args: Any) -> None:
        """The loop's boundary: a bug in one step is logged, and the bridge goes on."""
        try:
            work(*args)
        except Exception:
            if self._failures.allow(work.__name__)[0]:
                logger.exception("main loop: %s failed; going on", work.__name__)

    def snapshot(self, timeout: float) -> Json | None:
        """Connect, take in the retained state, and return the report for now (None
        without gateway info); BrokerError when the replay is not over in `timeout` s."""
        self.rim.start()
        end = time.monotonic() + timeout
        try:
            # refused, unreachable, credentials: at once
            wait_connected(self.conn, timeout, self.rim.run_once)
            while not self._replayed and not self._fence.refused and time.monotonic() < end:
                self.step(min(0.5, end - time.monotonic()))
        finally:
            self.rim.close()
        if self._fence.refused:
            raise BrokerError(f"the broker refused the subscription to {self._fence.topic_filter}:"
                              " check its ACL for this user")
        if not self._replayed:
            settings = self.config.mqtt
            raise BrokerError(
                f"no retained state from the MQTT broker at {settings.host}:{settings.port} "
                f"within {timeout:g} s: connected, but the replay of {self._fence.topic_filter} "
                "did not finish"
            )
        return self.state.report(self.clock)

    # -- the main loop's work ------------------------------------------------

    def _replay_done(self) -> None:
        if self._seen is not None and self._replayed:
            outcome = self.state.retain_only(self._seen, self.clock)
            if outcome.changed:
                logger.info("records deleted while disconnected are gone from the report")
                self.schedule.changed(self.clock.monotonic())
            if self.settings.forget_unseen({ref.kind for ref in self._seen}):
                logger.info("config topics cleared while disconnected no longer apply")
                self._settings_changed()
        if not self._replayed:
            logger.info("retained state received: %d devices", len(self.state.devices))
        self._replayed, self._fence_deadline, self._seen = True, None, None

    def _apply(self, topic: str, payload: bytes, replayed: bool) -> None:
        ref = self._refs.get(topic)
        cached = ref is not None
        if ref is None:
            try:
                ref = parse(topic, self.prefix)
            except TopicError as exc:
                self._reject(topic, RecordError(str(exc), code="topic"))
                return
        if ref.sn != self.sn or ref.kind in _OWN_KINDS:
            return
        if ref.kind is Kind.REPORT_NOW:
            # A command, not state: one left retained by mistake is not obeyed at each start.
            if not replayed:
                logger.info("a report was asked for on %s", topic)
                self.schedule.changed(self.clock.monotonic())
            return
        if self._seen is not None:
            self._seen.add(ref)
        if ref.kind in CONFIG_KINDS:
            self._apply_setting(topic, ref.kind, payload)
            return
        try:
            outcome = self.state.apply(ref, payload, self.clock, replayed)
        except RecordError as exc:
            self._reject(topic, exc)
            return
        self.stats.accepted()
        if not cached and payload:
            # Only topics that hold a record are kept: deletes (of devices we may
            # never have seen) and refused records would otherwise fill the cache.
            if len(self._refs) >= self._refs_max:
                self._refs.clear()
            self._refs[topic] = ref
        if ref.kind is Kind.GATEWAY_INFO and self.state.info is not None:
            if self.settings.gateway_dev_sno != self.state.info.dev_sno:
                self.settings.gateway_dev_sno = self.state.info.dev_sno
                self._publish_settings()
            self._maybe_login()
        if outcome.changed:
            self.schedule.changed(self.clock.monotonic())

    def _reject(self, topic: str, error: RecordError) -> None:
        self.stats.rejected(error.code)
        shown = topic if len(topic) <= 200 else topic[:197] + "..."
        allowed, suppressed = self._damper.allow(error.code)
        if allowed:
            more = f" ({suppressed} more like it suppressed)" if suppressed else ""
            logger.warning("rejected %s: %s%s", shown, error, more)
        if self._announce:
            event = {"ts": round(self.clock.wall(), 3), "topic": shown, "reason": str(error),
                     "code": error.code}
            self.conn.publish(self.topics.bridge_errors, orjson.dumps(event), qos=0)

    def _tick(self) -> None:
        now = self.clock.monotonic()
        if self.state.expire(self.clock):
            self.schedule.changed(now)
        if self._fence_deadline is not None and now >= self._fence_deadline:
            logger.warning("broker did not confirm the end of the retained replay; going on")
            self._replayed, self._fence_deadline, self._seen = True, None, None
        if self._announce and self._replayed and self.state.info is not None:
            self.schedule.mark_ready(now)
        if self.schedule.is_due(now):
            self._send(now)

    def _wait_time(self) -> float:
        now = self.clock.monotonic()
        times = [self.schedule.next_due(), self.state.next_expiry()]
        wait = min([t - now for t in times if t is not None], default=_MAX_WAIT)
        if self._fence_deadline is not None:
            wait = min(wait, self._fence_deadline - now)
        return min(max(wait, 0.0), _MAX_WAIT)

    def _send(self, now: float) -> None:
        self.schedule.sent(now)
        built = self._build()
        if built is None:
            return
        if not self._targets:
            if not self._warned_no_target:
                logger.warning("no report URL configured yet: report not sent")
                self._warned_no_target = True
            return
        for target in self._targets.all():
            target.offer(*built)

    def _build(self) -> tuple[bytes, int] | None:
        """The report for now as (body, device count); None while the gateway is unknown."""
        built = self.state.report_body(self.clock)
        if built is None:
            return None
        body, online, count = built
        self.stats.devices(online, count - online)
        return body, count

    # -- settings and targets (bridge.settings, bridge.targets) -------------

    def _apply_setting(self, topic: str, kind: Kind, payload: bytes) -> None:
        try:
            changed = self.settings.apply(kind, payload)
        except RecordError as exc:
            self._reject(topic, exc)  # the previous value stays in force
            self._publish_settings()
            return
        self.stats.accepted()
        if changed:
            logger.info("%s %s by its config topic", kind.value.partition("/")[2],
                        "set" if payload.strip() else "cleared")
            self._settings_changed()

    def _settings_changed(self) -> None:
        """Put what the settings say in force: period, targets, login; publish them."""
        period, _ = self.settings.period()
        if period != self.schedule.interval:
            logger.info("reporting every %g s", period)
            self.schedule.interval = period
        self._maybe_login()
        self._update_targets()
        self._publish_settings()

    def _publish_settings(self) -> None:
        """The retained bridge/settings, when what it says has changed."""
        if not self._announce:
            return
        doc = self.settings.document()
        raw = orjson.dumps(doc)
        if raw != self._settings_raw:
            self._settings_raw = raw
            record = {"ts": round(self.clock.wall(), 3), **doc}
            self.conn.publish(self.topics.bridge_settings, orjson.dumps(record), retain=True,
                              qos=1)

    def _make_target(self, url: str, params: Callable[[], Mapping[str, str]] | None) -> Target:
        platform = self.config.platform
        return Target(
            url,
            f"{self.sn}-{self.boot}",
            lambda: HttpSender(platform.timeout, platform.ca_file),
            Backoff(platform.retry_min, platform.retry_max),
            self._on_attempt,
            self._next_seq,
            params,
        )

    def _update_targets(self) -> None:
        urls, source = self.settings.report_urls()
        self._targets.set_auth(self.settings.auth())
        added = self._targets.update(urls, issued_by_login=source == "login")
        if added:
            self._warned_no_target = False
        # A new target gets the state at once; the others have it already.
        built = self._build() if added and self.schedule.ready else None
        if built is not None:
            for target in added:
                target.offer(*built)

    def _on_attempt(self, attempt: Attempt) -> None:
        """Called on a target's thread after each POST."""
        now = self.clock.wall()
        self.stats.attempt(attempt.target, attempt.ok, now)
        self._publish_event({"ts": round(now, 3), **asdict(attempt)})
        if attempt.target not in self._targets.login_names:
            return  # only a target the login issued can be fixed by logging in again
        with self._refusals_lock:
            if attempt.status not in _AUTH_REFUSALS:
                self._refusals.pop(attempt.target, None)
                return
            count = self._refusals.get(attempt.target, 0) + 1
            self._refusals[attempt.target] = 0 if count >= _RELOGIN_AFTER else count
        if count >= _RELOGIN_AFTER:
            self.rim.call_soon(self._relogin, attempt.target, count)

    def _publish_event(self, event: dict[str, object]) -> None:
        """Called on worker threads: the main loop publishes."""
        if self._announce:
            self.rim.call_soon(
                self.conn.publish, self.topics.bridge_report, orjson.dumps(event), False, 0
            )

    # -- login ---------------------------------------------------------------

    def _make_login(self) -> LoginWorker:
        platform = self.config.platform
        return LoginWorker(
            HttpSender(platform.timeout, platform.ca_file),
            Backoff(platform.retry_min, platform.retry_max),
            lambda result: self.rim.call_soon(self._logged_in, result),
            self._publish_event,
            self.clock.wall,
            on_failure=lambda failure: self.rim.call_soon(self._login_failed, failure),
        )

    def _relogin(self, target: str, count: int) -> None:
        """A report target issued by the login keeps refusing us: log in again, at most
        once per `retry_max`. A new login's token has every refused target of the login
        try again at once, so a platform that refuses every token, with several targets,
        would otherwise be asked again and again without a pause."""
        now = self.clock.monotonic()
        spacing = self.config.platform.retry_max
        if self._relogin_at is not None and now - self._relogin_at < spacing:
            logger.debug("%s refused %d reports in a row; logged in again %.1f s ago",
                         target, count, now - self._relogin_at)
            return
        logger.info("%s refused %d reports in a row: logging in again", target, count)
        self._relogin_at = now
        self._login_key = None
        self._maybe_login()

    def _maybe_login(self) -> None:
        """Ask for a login when its URL or the gateway's identity is new (or a relogin
        was asked)."""
        target = self.settings.login_target()
        info = self.state.info
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
            self._publish_settings()

    def _logged_in(self, result: LoginResult) -> None:
        if self.settings.logged_in(result):
            self._settings_changed()

    def _login_failed(self, failure: LoginFailed) -> None:
        self.settings.login_failed(failure)
        self._publish_settings()

    @property
    def targets(self) -> dict[str, Target]:
        return self._targets.by_url()

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.config.platform.shutdown_timeout
        last = self.state.report_body(self.clock, "offline") if self.schedule.ready else None
        targets = self._targets.all()
        if last is not None and targets:
            body, _, count = last
            logger.info("sending the last report (gateway offline) to %d targets", len(targets))
            for target in targets:
                target.finish(body, count, deadline)
            for target in targets:
                target.join(deadline - time.monotonic())
        else:
            for target in targets:
                target.stop()
        if self._login is not None:
            self._login.stop()
        self.rim.close()

