"""`se3-bridge status`: what the bridge is doing, told to a person, read from the broker.

The bridge keeps no status file: everything is on the broker. This module reads
one gateway's retained topics (bridge and collector status, gateway identity
and metrics, device records, the config topics, and `bridge/settings`, where the
bridge says what it actually uses: report URLs, period, login, refused values),
then waits for the bridge's next `bridge/report` events, which are not
retained: one per delivery attempt, so the answer to "is it delivering?" is
always fresh.

The pure parts, tested without a broker, are beside it: `Observation`
(bridge.observation) takes messages as they come, bridge.inforce reads what
`bridge/settings` says, `summarize` (bridge.judge) turns them into a `Status`
(bridge.verdict) at a given wall time, and bridge.statustext shows it
(`format_state` known at once, `format_outcome` after the watch). This module is
the I/O, `StatusReader`: connect (a broker that is down or refuses us is named at
once), take in the retained replay, wait.

The wait ends early once every expected target has reported (the targets are
what `bridge/settings` lists; from an older bridge that publishes no settings,
what the config topic or file says, and with a login `settle` seconds after
the first event), and at once when the bridge is not online, since no event
would come. A target without an attempt is judged against the report period
in force: within one period that is "not seen yet" (exit 3), not a problem.
"""

from __future__ import annotations

import logging
import queue
import secrets
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from bridge.config import Config
from bridge.errors import BrokerError
from bridge.inforce import (
    event_for,
    expected_devices_targets,
    expected_targets,
    parse_settings,
    period_in_force,
)
from bridge.judge import summarize
from bridge.mqttclient import Connection, ReplayFence
from bridge.observation import Observation, text
from bridge.reach import wait_connected
from bridge.topics import Topics
from bridge.verdict import Status

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Fence:
    """The retained replay of our subscription is complete."""



def default_wait(config: Config, period: float | None = None) -> float:
    """Long enough for one periodic report: the period in force (else the file's) plus 5 s."""
    return (config.platform.interval if period is None else period) + 5.0


class StatusReader:
    """One look at the broker: `open` (connect, replay), `watch`, `summary`, `close`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        sn = config.gateway.serial()
        topics = Topics(config.mqtt.topic_prefix, sn)
        self.obs = Observation(config.mqtt.topic_prefix, sn)
        self.waited = 0.0
        self._inbox: queue.SimpleQueue[tuple[str, bytes, bool] | _Fence] = queue.SimpleQueue()
        self._fence = ReplayFence(topics.everything, topics.fence,
                                  lambda: self._inbox.put(_Fence()))
        self.mqtt = config.mqtt.for_looking()  # the watchers' port when there is one
        self.conn = Connection(self.mqtt, f"se3-status-{secrets.token_hex(4)}")
        self.conn.client.on_message = self._on_message
        self.conn.client.on_subscribe = self._fence.on_subscribe
        self.conn.on_connected(self._fence.subscribe)

    # paho callback on its network thread: hand over and return (STYLE, PITFALLS).
    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def open(self, timeout: float) -> None:
        """Connect and take in the retained state; BrokerError naming what went wrong."""
        if logging.getLogger().level > logging.DEBUG:
            # "connected to broker" on stderr is noise before a summary.
            logging.getLogger("bridge.mqttclient").setLevel(logging.WARNING)
        self.conn.start()
        wait_connected(self.conn, timeout)  # refused, unreachable, credentials: at once
        end = time.monotonic() + timeout
        while True:
            if self._fence.refused:
                raise BrokerError(
                    f"the MQTT broker refused user {self.config.mqtt.username or 'anonymous'} "
                    f"the subscription to {self._fence.topic_filter}: use a role that may read "
                    "it (debug, operator or bridge)")
            try:
                item = self._inbox.get(timeout=max(0.0, min(0.1, end - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= end:
                    raise BrokerError(
                        f"the MQTT broker at {self.mqtt.host}:{self.mqtt.port} "
                        f"did not finish replaying the retained state within {timeout:g} s"
                    ) from None
                continue
            if isinstance(item, _Fence):
                return
            self.obs.add(*item)

    def will_watch(self) -> bool:
        """Whether a delivery event can come: the bridge is online and has a report to send."""
        expected = expected_targets(self.obs, self.config)
        return (text(self.obs.bridge) == "online" and self.obs.info is not None
                and expected != [])

    def period(self) -> float:
        return period_in_force(parse_settings(self.obs.settings, []), self.config)[0]

    def watch(self, wait: float) -> None:
        """Take in report events for up to `wait` s, ending once every target has reported."""
        start = time.monotonic()
        if self.will_watch():
            _watch(self._inbox, self.obs, self.config, wait)
        self.waited = time.monotonic() - start

    def summary(self) -> Status:
        return summarize(self.obs, self.config, time.time(), self.waited)

    def close(self) -> None:
        self.conn.close()


def read_status(config: Config, wait: float | None, timeout: float = 10.0) -> Status:
    """Connect as the config's MQTT user, read the gateway's state, watch up to `wait` s
    (default: the report period in force plus 5 s)."""
    reader = StatusReader(config)
    try:
        reader.open(timeout)
        reader.watch(default_wait(config, reader.period()) if wait is None else wait)
    finally:
        reader.close()
    return reader.summary()


def _watch(inbox: queue.SimpleQueue[Any], obs: Observation, config: Config,
           wait: float) -> None:
    end = time.monotonic() + wait
    settle = config.platform.timeout + 1.0
    first_event: float | None = None
    while True:
        expected = expected_targets(obs, config)
        if expected == [] or obs.info is None:
            return  # the bridge has nothing to report, or nowhere to: no event will come
        if expected is not None and all(event_for(obs.targets, t) for t in expected) and all(
                event_for(obs.devices_targets, t) for t in expected_devices_targets(obs)):
            return
        deadline = end
        if expected is None and obs.targets:
            # Targets from a login are not known here: the others' attempts follow the
            # first one's within an HTTP timeout.
            first_event = first_event or time.monotonic()
            deadline = min(end, first_event + settle)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            item = inbox.get(timeout=left)
        except queue.Empty:
            return
        if not isinstance(item, _Fence):
            obs.add(*item)

