"""`se3-bridge status`: what the bridge is doing, told to a person, read from the broker.

The bridge keeps no status file: everything is on the broker. This module reads
one gateway's retained topics (bridge and collector status, gateway identity
and metrics, device records, the `config/report_url` override), then waits for
the bridge's next `bridge/report` events, which are not retained: one per
delivery attempt, so the answer to "is it delivering?" is always fresh.

Pure parts, tested without a broker: `Observation` takes messages as they
come, `summarize` turns them into a `Status` at a given wall time, `format_text`
and `Status.as_json` show it. `read_status` is the I/O: connect, take in the
retained replay, wait, and summarize.

The wait ends early once every expected target has reported (the targets are
known from the config topic or the config file; with a platform login they are
not, and the wait then ends `settle` seconds after the first event), and at
once when the bridge is not online, since no event would come.
"""

from __future__ import annotations

import logging
import queue
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from bridge.config import Config, split_urls
from bridge.errors import BrokerError, RecordError
from bridge.freshness import remaining
from bridge.http import redact
from bridge.mqttclient import Connection, ReplayFence
from bridge.records import DeviceState, GatewayInfo, GatewayMetrics, parse_as
from bridge.topics import Kind, TopicError, Topics, parse

logger = logging.getLogger(__name__)

Event = dict[str, Any]
_KEEP_ERRORS = 5  # bridge/errors events kept for the summary (the count covers all)


@dataclass(frozen=True, slots=True)
class _Fence:
    """The retained replay of our subscription is complete."""


# -- what was seen ---------------------------------------------------------------


@dataclass
class Observation:
    """The messages of one gateway seen so far; fed by `add`, in arrival order."""

    prefix: str
    sn: str
    bridge: bytes | None = None
    collectors: dict[str, bytes] = field(default_factory=dict)
    info: bytes | None = None
    metrics: bytes | None = None
    devices: dict[str, bytes] = field(default_factory=dict)
    report_url: bytes | None = None
    targets: dict[str, Event] = field(default_factory=dict)
    login: Event | None = None
    errors: list[Event] = field(default_factory=list)
    errors_seen: int = 0

    def add(self, topic: str, payload: bytes, retained: bool) -> None:
        """Take one message; unknown topics and bad events are ignored."""
        try:
            ref = parse(topic, self.prefix)
        except TopicError:
            return
        if ref.sn != self.sn:
            return
        # An empty retained payload is a deletion (CONTRACT section 2).
        if ref.kind is Kind.BRIDGE_STATUS:
            self.bridge = payload or None
        elif ref.kind is Kind.COLLECTOR_STATUS:
            self._set(self.collectors, ref.key, payload)
        elif ref.kind is Kind.GATEWAY_INFO:
            self.info = payload or None
        elif ref.kind is Kind.GATEWAY_METRICS:
            self.metrics = payload or None
        elif ref.kind is Kind.DEVICE_STATE:
            self._set(self.devices, ref.key, payload)
        elif ref.kind is Kind.REPORT_URL:
            self.report_url = payload or None
        elif not retained:
            self._event(ref.kind, payload)

    @staticmethod
    def _set(table: dict[str, bytes], key: str, payload: bytes) -> None:
        if payload:
            table[key] = payload
        else:
            table.pop(key, None)

    def _event(self, kind: Kind, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        if kind is Kind.BRIDGE_ERRORS:
            self.errors_seen += 1
            self.errors = [*self.errors, event][-_KEEP_ERRORS:]
        elif isinstance(event.get("target"), str):
            self.targets[event["target"]] = event
        elif isinstance(event.get("login"), str):
            self.login = event


# -- what it means ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Devices:
    """Device records by effective status, judged as the bridge judges them."""

    online: int = 0
    offline: int = 0
    stale: int = 0  # of `offline`: said online, but ts + ttl has passed
    orphaned: int = 0  # of `offline`: said online, but their source's status is offline
    invalid: int = 0  # records the bridge refuses (it keeps an earlier valid one, if any)

    @property
    def total(self) -> int:
        return self.online + self.offline


@dataclass(frozen=True, slots=True)
class Status:
    """One look at the bridge of one gateway; `problems` empty means healthy (exit 0)."""

    gateway_sn: str
    broker: str
    bridge: str  # online | offline | unknown
    collectors: dict[str, str]
    gateway: dict[str, str] | None
    metrics_age: float | None
    metrics_stale: bool
    devices: Devices
    url_source: str  # config topic | login | config file | none
    urls: list[str]  # with a login: the targets seen, as the login's answer is not known here
    login_url: str | None
    targets: dict[str, Event]
    login: Event | None
    errors: list[Event]
    errors_seen: int
    waited: float
    now: float
    problems: list[str]
    notes: list[str]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """The same as the text, for scripts: plain JSON types only."""
        return {
            "healthy": self.healthy,
            "problems": self.problems,
            "notes": self.notes,
            "gateway_sn": self.gateway_sn,
            "broker": self.broker,
            "bridge": self.bridge,
            "collectors": self.collectors,
            "gateway": self.gateway,
            "metrics": None if self.metrics_age is None else {
                "age": round(self.metrics_age, 1), "stale": self.metrics_stale},
            "devices": {
                "total": self.devices.total, "online": self.devices.online,
                "offline": self.devices.offline, "stale": self.devices.stale,
                "orphaned": self.devices.orphaned, "invalid": self.devices.invalid,
            },
            "report_url": {"source": self.url_source, "urls": self.urls,
                           "login_url": self.login_url},
            "targets": self.targets,
            "login": self.login,
            "errors": {"seen": self.errors_seen, "last": self.errors},
            "waited": round(self.waited, 1),
        }


def _text(payload: bytes | None) -> str | None:
    return None if payload is None else payload.decode("utf-8", "replace").strip()


def expected_targets(obs: Observation, config: Config) -> list[str] | None:
    """The report targets the bridge should be using (as events name them), None if unknown.

    Same precedence as the bridge: the config topic, then the login, then the file.
    """
    source, urls = url_source(obs, config)
    if source == "login":
        return None
    return [redact(url) for url in urls]


def url_source(obs: Observation, config: Config) -> tuple[str, list[str]]:
    """(where the report URLs come from, the URLs; none for a login: its answer says)."""
    override = _text(obs.report_url)
    if override:
        return "config topic", split_urls(override)
    if config.platform.login_url:
        return "login", []
    if config.platform.report_url:
        return "config file", list(config.platform.report_url)
    return "none", []


def _expired(ts: float | None, ttl: float | None, now: float) -> bool:
    """As the bridge judges a record arriving at wall time `now` (bridge.freshness)."""
    left = remaining(ts, ttl, now)
    return left is not None and left <= 0


def _devices(obs: Observation, offline_sources: set[str], now: float) -> Devices:
    online = offline = stale = orphaned = invalid = 0
    for ip, payload in obs.devices.items():
        try:
            record = parse_as(DeviceState, payload, ip)
        except RecordError:
            invalid += 1
            continue
        if record.ep_status == "offline":
            offline += 1
        elif _expired(record.ts, record.ttl, now):
            offline += 1
            stale += 1
        elif record.source is not None and record.source in offline_sources:
            offline += 1
            orphaned += 1
        else:
            online += 1
    return Devices(online, offline, stale, orphaned, invalid)


def _gateway(obs: Observation, notes: list[str]) -> dict[str, str] | None:
    if obs.info is None:
        return None
    try:
        info = parse_as(GatewayInfo, obs.info)
    except RecordError as exc:
        notes.append(f"gateway/info is refused by the bridge: {exc}")
        return None
    shown = {
        "gateway_name": info.gateway_name, "gateway_ip": info.gateway_ip,
        "dev_sno": info.dev_sno, "gateway_mac": info.gateway_mac,
        "sdk_version": info.sdk_version,
        "sw_version": info.sw_version.strip().splitlines()[0] if info.sw_version.strip() else "",
    }
    return {key: value for key, value in shown.items() if value is not None}


def _metrics(obs: Observation, now: float, notes: list[str]) -> tuple[float | None, bool]:
    if obs.metrics is None:
        return None, False
    try:
        metrics = parse_as(GatewayMetrics, obs.metrics)
    except RecordError as exc:
        notes.append(f"gateway/metrics is refused by the bridge: {exc}")
        return None, False
    if metrics.ts is None:
        return None, False
    age = max(0.0, now - metrics.ts)
    stale = _expired(metrics.ts, metrics.ttl, now)
    if stale:
        notes.append(f"gateway metrics are {age:.0f} s old, past their ttl: left out of reports")
    return age, stale


def _attempt_problem(name: str, event: Event) -> str | None:
    if event.get("ok") is True:
        return None
    what = f"HTTP {event['status']}" if event.get("status") else "no answer"
    error = event.get("error")
    retry = event.get("retry_in")
    again = f", retrying in {retry:g} s" if isinstance(retry, int | float) else ""
    return (f"{name}: last attempt failed ({what}: {error}; attempt {event.get('attempt')}"
            f"{again})")


def summarize(obs: Observation, config: Config, now: float, waited: float) -> Status:
    """What `obs` means at wall time `now`, after waiting `waited` s for report events."""
    problems: list[str] = []
    notes: list[str] = []
    bridge = _text(obs.bridge) or "unknown"
    if bridge == "unknown":
        problems.append("no bridge/status on the broker: the bridge has never connected to it "
                        "(not started, another broker, another gateway.sn or topic_prefix?)")
    elif bridge != "online":
        problems.append(f"the bridge is {bridge}: stopped, or its connection to the broker "
                        "was lost (its last will)")
    collectors = {name: _text(p) or "" for name, p in sorted(obs.collectors.items())}
    offline_sources = {name for name, state in collectors.items() if state == "offline"}
    for name in sorted(offline_sources):
        notes.append(f"collector {name} is offline: its devices are reported offline")
    gateway = _gateway(obs, notes)
    if gateway is None and obs.info is None:
        notes.append("no gateway/info: the bridge sends no report until the gateway collector "
                     "publishes it")
    metrics_age, metrics_stale = _metrics(obs, now, notes)
    devices = _devices(obs, offline_sources, now)
    if devices.invalid:
        notes.append(f"{devices.invalid} device record(s) refused by the bridge "
                     "(see bridge/errors or the bridge's log)")
    source, urls = url_source(obs, config)
    urls = [redact(url) for url in urls]  # a URL may carry a token: shown without it
    login_url = redact(config.platform.login_url) if source == "login" else None
    if source == "login":
        urls = sorted(obs.targets)
    expected = expected_targets(obs, config)
    if bridge == "online":
        _judge_targets(obs, config, expected, waited, problems)
    if obs.login is not None and obs.login.get("ok") is not True:
        notes.append(f"platform login failing: {obs.login.get('error')}")
    if obs.errors_seen:
        notes.append(f"{obs.errors_seen} message(s) rejected while watching (bridge/errors)")
    targets = {name: obs.targets[name] for name in sorted(obs.targets)}
    return Status(
        gateway_sn=obs.sn, broker=f"{config.mqtt.host}:{config.mqtt.port}", bridge=bridge,
        collectors=collectors, gateway=gateway, metrics_age=metrics_age,
        metrics_stale=metrics_stale, devices=devices, url_source=source, urls=urls,
        login_url=login_url,
        targets=targets, login=obs.login, errors=list(obs.errors), errors_seen=obs.errors_seen,
        waited=waited, now=now, problems=problems, notes=notes,
    )


def _judge_targets(
    obs: Observation, config: Config, expected: list[str] | None, waited: float,
    problems: list[str],
) -> None:
    if expected == []:
        problems.append("no report URL: set platform.report_url or platform.login_url in the "
                        "config, or publish one on config/report_url")
        return
    names = expected if expected is not None else sorted(obs.targets)
    if not names:
        problems.append(f"no delivery attempt seen in {waited:.0f} s (login not done yet? "
                        "see the bridge's log)")
    for name in names:
        event = obs.targets.get(name)
        if event is None:
            hint = ("no gateway/info yet" if obs.info is None else
                    f"backing off after failures? try --wait {config.platform.retry_max + 5:g}")
            problems.append(f"{name}: no delivery attempt seen in {waited:.0f} s ({hint})")
            continue
        problem = _attempt_problem(name, event)
        if problem is not None:
            problems.append(problem)


# -- showing it --------------------------------------------------------------------


def _ago(ts: object, now: float) -> str:
    if not isinstance(ts, int | float):
        return ""
    return f", {max(0.0, now - ts):.0f} s ago"


def _attempt_line(name: str, event: Event, now: float) -> str:
    result = "ok" if event.get("ok") is True else "FAILED"
    status = f"HTTP {event['status']}" if event.get("status") else "no answer"
    error = f" ({event['error']})" if event.get("error") else ""
    final = ", last report before shutdown" if event.get("final") else ""
    return (f"    {name}: {result}, {status}{error}, report {event.get('report_id')}, "
            f"attempt {event.get('attempt')}, {event.get('devices')} devices, "
            f"{event.get('bytes')} bytes{_ago(event.get('ts'), now)}{final}")


def format_text(status: Status) -> str:
    """The summary for a person, several lines, no trailing newline."""
    s = status
    lines = [f"gateway {s.gateway_sn} on broker {s.broker}", f"  bridge      {s.bridge}"]
    collectors = ", ".join(f"{n} {state}" for n, state in s.collectors.items()) or "none seen"
    lines.append(f"  collectors  {collectors}")
    if s.gateway is None:
        lines.append("  gateway     no valid gateway/info")
    else:
        g = s.gateway
        extra = "".join(f", {key} {g[key]}" for key in ("gateway_mac", "sdk_version") if key in g)
        lines.append(f"  gateway     {g['gateway_name']}, ip {g['gateway_ip']}, "
                     f"dev_sno {g['dev_sno']}{extra}")
    if s.metrics_age is None:
        lines.append("  metrics     none with a ts")
    else:
        stale = " (stale: left out of reports)" if s.metrics_stale else ""
        lines.append(f"  metrics     {s.metrics_age:.0f} s old{stale}")
    d = s.devices
    detail = [f"{d.online} online", f"{d.offline} offline"]
    if d.stale:
        detail.append(f"{d.stale} of them past their ttl")
    if d.orphaned:
        detail.append(f"{d.orphaned} of them by an offline collector")
    if d.invalid:
        detail.append(f"{d.invalid} invalid")
    lines.append(f"  devices     {d.total}: {', '.join(detail)}")
    urls = ", ".join(s.urls)
    if s.login_url is not None:
        lines.append(f"  report URL  {urls or 'none seen yet'} (from the login at {s.login_url})")
    else:
        lines.append(f"  report URL  {urls} (from the {s.url_source})" if urls else
                     "  report URL  none")
    if s.login is not None:
        ok = "ok" if s.login.get("ok") is True else f"FAILED ({s.login.get('error')})"
        lines.append(f"  login       {ok}{_ago(s.login.get('ts'), s.now)}")
    if s.bridge == "online":
        lines.append(f"  deliveries  (watched {s.waited:.0f} s)")
        for name, event in s.targets.items():
            lines.append(_attempt_line(name, event, s.now))
        if not s.targets:
            lines.append("    none seen")
    if s.errors_seen:
        lines.append(f"  rejected    {s.errors_seen} message(s) while watching, last:")
        lines.extend(f"    {e.get('topic')}: {e.get('reason')}" for e in s.errors)
    lines.append("")
    lines.extend(f"note: {note}" for note in s.notes)
    lines.extend(f"PROBLEM: {problem}" for problem in s.problems)
    if s.healthy:
        lines.append("OK: the bridge is online and its last report to each target was delivered")
    return "\n".join(lines)


def format_json(status: Status) -> str:
    return orjson.dumps(status.as_json(), option=orjson.OPT_INDENT_2).decode()


# -- reading it from the broker -----------------------------------------------------


def default_wait(config: Config) -> float:
    """Long enough for one periodic report: the platform interval plus 5 s."""
    return config.platform.interval + 5.0


def read_status(config: Config, wait: float, timeout: float = 10.0) -> Status:
    """Connect as the config's MQTT user, read the gateway's state, watch up to `wait` s."""
    sn = config.gateway.serial()
    topics = Topics(config.mqtt.topic_prefix, sn)
    inbox: queue.SimpleQueue[tuple[str, bytes, bool] | _Fence] = queue.SimpleQueue()

    # paho callbacks run on its network thread: hand over and return (STYLE, PITFALLS).
    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        inbox.put((msg.topic, bytes(msg.payload), bool(msg.retain)))

    fence = ReplayFence(topics.everything, topics.fence, lambda: inbox.put(_Fence()))
    conn = Connection(config.mqtt, f"se3-status-{secrets.token_hex(4)}")
    conn.client.on_message = on_message
    conn.client.on_subscribe = fence.on_subscribe
    conn.on_connected(fence.subscribe)
    if logging.getLogger().level > logging.DEBUG:
        # "connected to broker" on stderr is noise before a summary.
        logging.getLogger("bridge.mqttclient").setLevel(logging.WARNING)
    obs = Observation(config.mqtt.topic_prefix, sn)
    conn.start()
    try:
        _replay(inbox, obs, config, timeout)
        start = time.monotonic()
        if _text(obs.bridge) == "online":
            _watch(inbox, obs, config, wait)
        waited = time.monotonic() - start
    finally:
        conn.close()
    return summarize(obs, config, time.time(), waited)


def _replay(inbox: queue.SimpleQueue[Any], obs: Observation, config: Config,
            timeout: float) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            item = inbox.get(timeout=max(0.0, end - time.monotonic()))
        except queue.Empty:
            where = f"{config.mqtt.host}:{config.mqtt.port}"
            who = config.mqtt.username or "anonymous"
            raise BrokerError(
                f"no answer from the MQTT broker at {where} as {who} within {timeout:g} s "
                "(not running, wrong port, or it refused the credentials: see the log)"
            ) from None
        if isinstance(item, _Fence):
            return
        obs.add(*item)


def _watch(inbox: queue.SimpleQueue[Any], obs: Observation, config: Config,
           wait: float) -> None:
    end = time.monotonic() + wait
    settle = config.platform.timeout + 1.0
    first_event: float | None = None
    while True:
        expected = expected_targets(obs, config)
        if expected == [] or obs.info is None:
            return  # the bridge has nothing to report, or nowhere to: no event will come
        if expected is not None and all(t in obs.targets for t in expected):
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
