"""`se3-bridge status`: what the bridge is doing, told to a person, read from the broker.

The bridge keeps no status file: everything is on the broker. This module reads
one gateway's retained topics (bridge and collector status, gateway identity
and metrics, device records, the config topics, and `bridge/settings`, where the
bridge says what it actually uses: report URLs, period, login, refused values),
then waits for the bridge's next `bridge/report` events, which are not
retained: one per delivery attempt, so the answer to "is it delivering?" is
always fresh.

Pure parts, tested without a broker: `Observation` takes messages as they
come, `summarize` turns them into a `Status` at a given wall time,
`format_state` (known at once), `format_outcome` (after the watch) and
`Status.as_json` show it. `StatusReader` is the I/O: connect (a broker that is
down or refuses us is named at once), take in the retained replay, wait.

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
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from bridge.config import Config
from bridge.errors import BrokerError, RecordError
from bridge.freshness import remaining
from bridge.http import redact
from bridge.mqttclient import Connection, ReplayFence
from bridge.reach import wait_connected
from bridge.records import DeviceState, GatewayInfo, GatewayMetrics, parse_as
from bridge.topics import Kind, TopicError, Topics, parse
from bridge.urls import split_urls

logger = logging.getLogger(__name__)

Event = dict[str, Any]
_KEEP_ERRORS = 5  # bridge/errors events kept for the summary (the count covers all)


_CONFIG_TOPICS = {Kind.REPORT_PERIOD, Kind.LOGIN_URL, Kind.DEV_SNO}
# bridge/settings' source words, as a person reads them
_SOURCES = {"topic": "config topic", "login": "login", "file": "config file",
            "gateway": "gateway/info", "none": "none"}


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
    config: dict[str, bytes] = field(default_factory=dict)  # other config topics, by name
    settings: bytes | None = None  # the bridge's retained bridge/settings
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
        # An empty retained payload is a deletion.
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
        elif ref.kind in _CONFIG_TOPICS:
            self._set(self.config, ref.kind.value.split("/")[-1], payload)
        elif ref.kind is Kind.BRIDGE_SETTINGS:
            self.settings = payload or None
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


# -- what the bridge says it uses (bridge/settings) ----------------------------------


@dataclass(frozen=True, slots=True)
class InForce:
    """The bridge's retained `bridge/settings`, read leniently (a field that is not
    what it should be counts as absent). URLs come redacted from the bridge."""

    urls: list[str]
    url_source: str
    period: float | None
    period_source: str
    login_url: str
    login_url_source: str
    login: Event | None  # {"state": off|pending|ok|failed, "at", "error"}
    refused: list[Event]  # [{"setting", "value", "reason", "at"}]


def _part(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _source(part: dict[str, Any]) -> str:
    source = part.get("source")
    return _SOURCES.get(source, str(source)) if isinstance(source, str) else "unknown"


def parse_settings(payload: bytes | None, notes: list[str]) -> InForce | None:
    """What `bridge/settings` says, or None (absent, or unreadable: then a note says so)."""
    if payload is None:
        return None
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        notes.append("bridge/settings is not a JSON object: what the bridge uses is unknown")
        return None
    report_url, period = _part(doc, "report_url"), _part(doc, "report_period")
    urls = report_url.get("value")
    if isinstance(urls, str):
        urls = [urls] if urls else []
    value = period.get("value")
    login_url = _part(doc, "login_url")
    login = doc.get("login")
    refused = doc.get("refused")
    return InForce(
        urls=[redact(str(url)) for url in urls] if isinstance(urls, list) else [],
        url_source=_source(report_url),
        period=float(value) if isinstance(value, int | float) and value > 0 else None,
        period_source=_source(period),
        login_url=redact(str(login_url.get("value") or "")),
        login_url_source=_source(login_url),
        login=login if isinstance(login, dict) else None,
        refused=[r for r in refused if isinstance(r, dict)] if isinstance(refused, list) else [],
    )


def _same_target(event_name: str, url: str) -> bool:
    """An event's target and a listed URL name the same target (the bridge may add a
    token query to a login's target: compared without the query)."""
    return event_name == url or event_name.split("?")[0] == url.split("?")[0]


def _event_for(targets: dict[str, Event], url: str) -> Event | None:
    if url in targets:
        return targets[url]
    return next((e for name, e in targets.items() if _same_target(name, url)), None)


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
    settings_known: bool = False  # the bridge published bridge/settings
    period: float = 0.0  # the report period in force (seconds)
    period_source: str = "config file"
    login_state: Event | None = None  # bridge/settings' login: state, at, error
    refused: list[Event] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # targets not seen yet, within a period

    @property
    def healthy(self) -> bool:
        return not self.problems and not self.pending

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 a problem, 3 nothing wrong seen but a delivery not seen yet."""
        if self.problems:
            return 1
        return 3 if self.pending else 0

    def as_json(self) -> dict[str, Any]:
        """The same as the text, for scripts: plain JSON types only."""
        return {
            "healthy": self.healthy,
            "problems": self.problems,
            "pending": self.pending,
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
            "report_period": {"value": self.period, "source": self.period_source},
            "settings": {"published": self.settings_known, "login": self.login_state,
                         "refused": self.refused},
            "targets": self.targets,
            "login": self.login,
            "errors": {"seen": self.errors_seen, "last": self.errors},
            "waited": round(self.waited, 1),
        }


def _text(payload: bytes | None) -> str | None:
    return None if payload is None else payload.decode("utf-8", "replace").strip()


def expected_targets(obs: Observation, config: Config) -> list[str] | None:
    """The report targets the bridge is using (as events name them), None if unknown.

    What the bridge says in bridge/settings; from a bridge that does not say, the
    bridge's precedence applied to what is seen: the config topic, the login
    (whose answer is not known here: None), the file.
    """
    source, urls = url_source(obs, config)
    if source == "login" and obs.settings is None:
        return None
    return [redact(url) for url in urls]


def url_source(obs: Observation, config: Config) -> tuple[str, list[str]]:
    """(where the report URLs come from, the URLs; none for a login: its answer says)."""
    force = parse_settings(obs.settings, [])
    if force is not None:
        return force.url_source, force.urls
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
    force = parse_settings(obs.settings, notes)
    if obs.settings is None:
        notes.append("the bridge has not published its settings (bridge/settings): an older "
                     "bridge, or one not running; the report URL and period shown are what the "
                     "config says, not what the bridge reports using")
    source, urls = url_source(obs, config)
    urls = [redact(url) for url in urls]  # a URL may carry a token: shown without it
    login_url = None
    if source == "login":
        login_url = (force.login_url if force is not None and force.login_url
                     else redact(config.platform.login_url))
        if force is None:
            urls = sorted(obs.targets)
    period, period_source = _period(force, config)
    refused = list(force.refused) if force is not None else []
    _judge_refused(obs, refused, urls, period, problems, notes)
    login_state = force.login if force is not None else None
    if login_state is not None and login_state.get("state") == "failed":
        notes.append(f"platform login failing: {login_state.get('error')}")
    elif obs.login is not None and obs.login.get("ok") is not True:
        notes.append(f"platform login failing: {obs.login.get('error')}")
    pending: list[str] = []
    if bridge == "online":
        _judge_targets(obs, config, expected_targets(obs, config), waited, period,
                       problems, pending)
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
        settings_known=force is not None, period=period, period_source=period_source,
        login_state=login_state, refused=refused, pending=pending,
    )


def _period(force: InForce | None, config: Config) -> tuple[float, str]:
    if force is not None and force.period is not None:
        return force.period, force.period_source
    return config.platform.interval, "config file"


def _topic_value(obs: Observation, setting: str) -> str | None:
    payload = obs.report_url if setting == "report_url" else obs.config.get(setting)
    return _text(payload)


def _judge_refused(obs: Observation, refused: list[Event], urls: list[str], period: float,
                   problems: list[str], notes: list[str]) -> None:
    """A refused value still on its config topic is a problem; an earlier one, a note."""
    in_use = {"report_url": ", ".join(urls) or "no report URL",
              "report_period": f"{period:g} s"}
    for entry in refused:
        setting = str(entry.get("setting", "?"))
        value, reason = entry.get("value"), entry.get("reason")
        held = _topic_value(obs, setting)
        if held is not None and redact(held) == value:
            keeps = in_use.get(setting, "its previous value")
            problems.append(f"config/{setting} holds {value!r}, which the bridge refused "
                            f"({reason}); it keeps using {keeps}: publish a valid value or "
                            "clear the topic")
        else:
            notes.append(f"the bridge refused config/{setting} {value!r} earlier ({reason})")


def _judge_targets(
    obs: Observation, config: Config, expected: list[str] | None, waited: float,
    period: float, problems: list[str], pending: list[str],
) -> None:
    if expected == []:
        problems.append("no report URL: set platform.report_url or platform.login_url in the "
                        "config, or publish one on config/report_url")
        return
    # One period, plus an HTTP timeout for the attempt to end, holds at least one attempt.
    enough = period + config.platform.timeout
    longer = f"watch longer: --wait {period + 5:g}"
    if expected is None and not obs.targets:
        if obs.info is None:
            problems.append("no delivery attempt: no gateway/info yet")
        elif waited >= enough:
            problems.append(f"no delivery attempt seen in {waited:.0f} s, longer than the "
                            f"report period of {period:g} s (login not done yet?)")
        else:
            pending.append(f"no delivery attempt in the {waited:.0f} s watched; reports go "
                           f"every {period:g} s ({longer})")
        return
    names = expected if expected is not None else sorted(obs.targets)
    for name in names:
        event = _event_for(obs.targets, name)
        if event is None:
            if obs.info is None:
                problems.append(f"{name}: no delivery attempt (no gateway/info yet)")
            elif waited >= enough:
                problems.append(
                    f"{name}: no delivery attempt seen in {waited:.0f} s, longer than the "
                    f"report period of {period:g} s (backing off after failures? try --wait "
                    f"{config.platform.retry_max + 5:g})")
            else:
                pending.append(f"{name}: no delivery attempt in the {waited:.0f} s watched; "
                               f"reports go every {period:g} s ({longer})")
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


def _login_line(s: Status) -> str | None:
    if s.login_state is not None:
        state = str(s.login_state.get("state"))
        at = s.login_state.get("at")
        if state == "failed":
            return f"  login       FAILED ({s.login_state.get('error')}){_ago(at, s.now)}"
        if state == "ok":
            return f"  login       ok{_ago(at, s.now)}"
        return f"  login       {'not used' if state == 'off' else state}"
    if s.login is not None:
        ok = "ok" if s.login.get("ok") is True else f"FAILED ({s.login.get('error')})"
        return f"  login       {ok}{_ago(s.login.get('ts'), s.now)}"
    return None


def format_state(status: Status) -> str:
    """What the retained state says, known as soon as the replay is in; no trailing newline."""
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
    said = "" if s.settings_known else ", by the config: the bridge has not said"
    urls = ", ".join(s.urls)
    if s.login_url is not None:
        lines.append(f"  report URL  {urls or 'none seen yet'} (from the login at "
                     f"{s.login_url}{said})")
    else:
        lines.append(f"  report URL  {urls} (from the {s.url_source}{said})" if urls else
                     f"  report URL  none{said and f' ({said[2:]})'}")
    lines.append(f"  period      {s.period:g} s (from the {s.period_source}{said})")
    login = _login_line(s)
    if login is not None:
        lines.append(login)
    for entry in s.refused:
        lines.append(f"  REFUSED     config/{entry.get('setting')} = {entry.get('value')!r}: "
                     f"{entry.get('reason')}{_ago(entry.get('at'), s.now)}")
    return "\n".join(lines)


def format_outcome(status: Status) -> str:
    """The deliveries seen while watching, then notes and the verdict; no trailing newline."""
    s = status
    lines: list[str] = []
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
    lines.extend(f"NOT SEEN YET: {item}" for item in s.pending)
    lines.extend(f"PROBLEM: {problem}" for problem in s.problems)
    if s.healthy:
        lines.append("OK: the bridge is online and its last report to each target was delivered")
    return "\n".join(lines)


def format_text(status: Status) -> str:
    """The whole summary for a person, several lines, no trailing newline."""
    return f"{format_state(status)}\n{format_outcome(status)}"


def format_json(status: Status) -> str:
    return orjson.dumps(status.as_json(), option=orjson.OPT_INDENT_2).decode()


# -- reading it from the broker -----------------------------------------------------


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
        self.conn = Connection(config.mqtt, f"se3-status-{secrets.token_hex(4)}")
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
                        f"the MQTT broker at {self.config.mqtt.host}:{self.config.mqtt.port} "
                        f"did not finish replaying the retained state within {timeout:g} s"
                    ) from None
                continue
            if isinstance(item, _Fence):
                return
            self.obs.add(*item)

    def will_watch(self) -> bool:
        """Whether a delivery event can come: the bridge is online and has a report to send."""
        expected = expected_targets(self.obs, self.config)
        return (_text(self.obs.bridge) == "online" and self.obs.info is not None
                and expected != [])

    def period(self) -> float:
        return _period(parse_settings(self.obs.settings, []), self.config)[0]

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
        if expected is not None and all(_event_for(obs.targets, t) for t in expected):
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
