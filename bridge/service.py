"""The bridge service: MQTT in, state kept, reports out, on one main loop.

Threads and who owns what:
- the main loop (`run`) owns the MQTT connection, the `GatewayState` and the
  `Schedule`: it drives paho's network I/O itself (`bridge.rim`), so
  `_on_message` applies each record to the state where it is read, and it
  hands finished report bodies to targets (the platform side: settings,
  targets, login, in `bridge.platform`);
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
from collections.abc import Callable
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from bridge.arrivals import FLUSH_EVERY
from bridge.config import Config
from bridge.delivery import Target
from bridge.errors import BrokerError, RecordError
from bridge.freshness import Clock, SystemClock
from bridge.logs import Damper
from bridge.mqttclient import Connection, ReplayFence
from bridge.outbox import Outbox
from bridge.platform import PlatformLink
from bridge.reach import wait_connected
from bridge.report import Json
from bridge.rim import Rim
from bridge.settings import CONFIG_KINDS
from bridge.state import GatewayState
from bridge.stats import Stats
from bridge.topics import Kind, TopicError, TopicRef, Topics, parse, record_space

logger = logging.getLogger(__name__)

_MAX_WAIT = 5.0
_FENCE_TIMEOUT = 10.0  # a broker that never answers the fence still gets reports
_OWN_KINDS = frozenset(
    {Kind.BRIDGE_STATUS, Kind.BRIDGE_REPORT, Kind.BRIDGE_ERRORS, Kind.BRIDGE_SETTINGS}
)


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
            self.sn, limits.max_devices, limits.max_payload, config.platform.gateway_format,
            limits.max_report_bytes, frozenset(device.ip for device in config.devices),
            config.platform.platform_release.devices,
        )
        self.state.port = config.gateway_port()
        self.state.reporter_id = config.gateway.reporter_id
        self._announce = announce
        # The same topics come again and again (refreshes, replays): parse each once.
        self._refs: dict[str, TopicRef] = {}
        self._refs_max = 2 * config.bridge.max_devices + 1024
        self._stop = threading.Event()
        self._replayed = False
        self._arrivals_due = 0.0  # monotonic time of the next write of arrivals
        self._fence_deadline: float | None = None
        self._seen: set[TopicRef] | None = None  # what the current replay brought back
        self._next_seq = itertools.count(1).__next__  # report seq, shared by all targets
        self._failures = Damper(burst=3, window=60.0)
        self._damper = Damper(burst=5, window=60.0)
        # A fixed id: a restarted bridge takes over its old session at once,
        # so the old connection's last will cannot land after our "online".
        client_id = f"se3-bridge-{self.sn}" if announce else f"se3-peek-{secrets.token_hex(4)}"
        self.conn = Connection(
            config.mqtt if announce else config.mqtt.for_looking(), client_id,
            self.topics.bridge_status if announce else None,
            # MQTT 3.1.1 on the hot path: under MQTT 5 paho builds and clears a properties
            # object for every PUBLISH read, a third of the bridge's CPU per message
            # (bench ingest: 121 -> 79 us). The bridge needs no PUBACK reason codes (its
            # writes are its own bridge/ topics) and 2.0.11 sends no DISCONNECT reason.
            mqtt5=False,
        )
        self.rim = Rim(self.conn)
        self.outbox = Outbox(self.state, self.clock, self.stats, config.platform.format)
        # The platform side: settings in force, report targets, login (bridge.platform).
        self.link = PlatformLink(
            config.platform, self.topics, self.sn, f"{self.sn}-{self.boot}", self.clock,
            self.stats,
            announce=announce,
            publish=self.conn.publish,
            post=self.rim.call_soon,
            report=self.outbox.ready_report,
            on_settings=self.outbox.apply_settings,
            gateway=lambda: self.state.info,
            reject=self._reject,
            next_seq=self._next_seq,
            reporter_id=config.gateway.reporter_id,
        )
        self.settings = self.link.settings
        self.outbox.channels = self.link.channels
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
        self.link.republish_settings()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Connect to the broker in the background."""
        self.link.start()
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
        without gateway info; both by format under a two-report release, Outbox.payload);
        BrokerError when the replay is not over in `timeout` s."""
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
        return self.outbox.payload()

    # -- the main loop's work ------------------------------------------------

    def _replay_done(self) -> None:
        if self._seen is not None and self._replayed:
            outcome = self.state.retain_only(self._seen, self.clock)
            if outcome.changed:
                logger.info("records deleted while disconnected are gone from the report")
                self.outbox.changed()
            self.link.forget_unseen({ref.kind for ref in self._seen})
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
                if payload or not record_space(topic, self.topics.base):
                    self._reject(topic, RecordError(str(exc), code="topic"), bool(payload))
                return  # a delete of what can be no record (our own erase, echoed) is nothing
        if ref.sn != self.sn or ref.kind in _OWN_KINDS:
            return
        if ref.kind is Kind.REPORT_NOW:
            # A command, not state: one left retained by mistake is not obeyed at each start.
            if not replayed:
                logger.info("a report was asked for on %s", topic)
                self.outbox.changed()
            return
        if self._seen is not None:
            self._seen.add(ref)
        if ref.kind in CONFIG_KINDS:
            self.link.apply_setting(topic, ref.kind, payload)
            return
        try:
            outcome = self.state.apply(ref, payload, self.clock, replayed)
        except RecordError as exc:
            self._reject(topic, exc, ref.kind is Kind.DEVICE_STATE and not self.state.holds(ref))
            return
        if payload or outcome.changed:  # not a delete of a record we never had
            self.stats.accepted()
        if not cached and payload:
            # Only topics that hold a record are kept: deletes (of devices we may
            # never have seen) and refused records would otherwise fill the cache.
            if len(self._refs) >= self._refs_max:
                self._refs.clear()
            self._refs[topic] = ref
        if ref.kind is Kind.GATEWAY_INFO and self.state.info is not None:
            self.link.gateway_changed(self.state.info)
        if outcome.changed:
            self.outbox.changed()

    def _write_arrivals(self, now: float) -> None:
        """Keep the arrivals of records without `ts` on the broker (bridge.arrivals): only
        once the replay has brought back the ones kept before, at most once a second."""
        if not (self._announce and self._replayed and self.state.arrivals.pending()):
            return
        if now < self._arrivals_due:
            return
        self._arrivals_due = now + FLUSH_EVERY
        for key, payload in self.state.arrivals.take():
            self.conn.publish(self.topics.arrival(key), payload, retain=True, qos=1)

    def _reject(self, topic: str, error: RecordError, erase: bool = False) -> None:
        """Count, log (damped) and announce a refused message. `erase`: delete its retained
        copy, if any, from the broker when it is in a device records' space, so that
        what the bridge refuses cannot pile up in the broker's memory."""
        self.stats.rejected(error.code)
        if erase and self._announce and record_space(topic, self.topics.base):
            self.conn.publish(topic, b"", retain=True, qos=0)
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
            self.outbox.changed()
        if self._fence_deadline is not None and now >= self._fence_deadline:
            logger.warning("broker did not confirm the end of the retained replay; going on")
            self._replayed, self._fence_deadline, self._seen = True, None, None
        if self._announce and self._replayed and self.state.info is not None:
            self.outbox.mark_ready(now)
        self.outbox.send_due(now)
        self._write_arrivals(now)

    def _wait_time(self) -> float:
        now = self.clock.monotonic()
        times = [*self.outbox.next_due(), self.state.next_expiry()]
        if self._announce and self._replayed and self.state.arrivals.pending():
            times.append(self._arrivals_due)
        wait = min([t - now for t in times if t is not None], default=_MAX_WAIT)
        if self._fence_deadline is not None:
            wait = min(wait, self._fence_deadline - now)
        return min(max(wait, 0.0), _MAX_WAIT)

    @property
    def targets(self) -> dict[str, Target]:
        return self.link.by_url()

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.config.platform.shutdown_timeout
        self.outbox.finish(deadline)
        self._arrivals_due = 0.0
        self._write_arrivals(time.monotonic())
        self.link.stop_login()
        self.rim.close()

