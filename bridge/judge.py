"""What an observation of the broker means (`se3-bridge status`): records judged as the
bridge judges them, the settings in force, each target's last delivery; problems (exit 1),
targets not seen yet within a period (exit 3) and notes.

Pure: the wall time is passed in.
"""

from __future__ import annotations

from bridge.config import Config
from bridge.errors import RecordError
from bridge.freshness import remaining
from bridge.inforce import (
    InForce,
    event_for,
    expected_targets,
    parse_settings,
    period_in_force,
    url_source,
)
from bridge.missing import missing_from_records
from bridge.observation import Event, Observation, text
from bridge.records import DeviceState, GatewayInfo, GatewayMetrics, parse_as
from bridge.releases import RELEASES
from bridge.urltext import redact
from bridge.verdict import Devices, DevicesReport, Status


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
    bridge = text(obs.bridge) or "unknown"
    if bridge == "unknown":
        problems.append("no bridge/status on the broker: the bridge has never connected to it "
                        "(not started, another broker, another gateway.sn or topic_prefix?)")
    elif bridge != "online":
        problems.append(f"the bridge is {bridge}: stopped, or its connection to the broker "
                        "was lost (its last will)")
    collectors = {name: text(p) or "" for name, p in sorted(obs.collectors.items())}
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
    period, period_source = period_in_force(force, config)
    refused = list(force.refused) if force is not None else []
    _judge_refused(obs, refused, urls, period, problems, notes)
    login_state = force.login if force is not None else None
    if login_state is not None and login_state.get("state") == "failed":
        notes.append(f"platform login failing: {login_state.get('error')}")
    elif obs.login is not None and obs.login.get("ok") is not True:
        notes.append(f"platform login failing: {obs.login.get('error')}")
    pending: list[str] = []
    devices_report = _devices_report(force, obs)
    if bridge == "online":
        _judge_targets(obs, config, expected_targets(obs, config), waited, period,
                       problems, pending)
        if devices_report is not None:
            _judge_targets(obs, config, devices_report.urls, waited, devices_report.period,
                           problems, pending, obs.devices_targets, "sub-device report: ")
    if obs.errors_seen:
        notes.append(f"{obs.errors_seen} message(s) rejected while watching (bridge/errors)")
    targets = {name: obs.targets[name] for name in sorted(obs.targets)}
    platform = config.platform
    in_force = platform.platform_release
    if force is not None and force.release in RELEASES:  # config/release may have switched
        in_force = RELEASES[force.release]
    shown = " + ".join(in_force.sent_under(platform.format))
    missing = missing_from_records(
        in_force.name, platform.format, obs.sn, info=obs.info, metrics=obs.metrics,
        hardware=obs.hardware, devices=obs.devices, port=config.gateway_port(),
        reporter_id=config.gateway.reporter_id)
    return Status(
        gateway_sn=obs.sn, broker=f"{config.mqtt.host}:{config.mqtt.for_looking().port}",
        bridge=bridge,
        collectors=collectors, gateway=gateway, metrics_age=metrics_age,
        metrics_stale=metrics_stale, devices=devices, url_source=source, urls=urls,
        login_url=login_url,
        targets=targets, login=obs.login, errors=list(obs.errors), errors_seen=obs.errors_seen,
        waited=waited, now=now, problems=problems, notes=notes,
        settings_known=force is not None, period=period, period_source=period_source,
        login_state=login_state, refused=refused, pending=pending,
        release=f"{in_force.name}: {shown}", missing=missing, devices_report=devices_report,
    )


def _devices_report(force: InForce | None, obs: Observation) -> DevicesReport | None:
    """The sub-device report, where bridge/settings says the release has one."""
    if force is None or force.devices is None:
        return None
    second = force.devices
    return DevicesReport(
        urls=second.urls, url_source=second.url_source,
        period=second.period if second.period is not None else force.period or 0.0,
        period_source=second.period_source,
        targets={name: obs.devices_targets[name] for name in sorted(obs.devices_targets)})



def _topic_value(obs: Observation, setting: str) -> str | None:
    payload = obs.report_url if setting == "report_url" else obs.config.get(setting)
    return text(payload)


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
    seen: dict[str, Event] | None = None, label: str = "",
) -> None:
    """Each expected target's last attempt (of the gateway report, or of the report whose
    events are `seen`, named by `label`)."""
    targets = obs.targets if seen is None else seen
    if expected == [] and label:
        problems.append(f"{label}no URL: set platform.devices_report_url in the config, or "
                        "publish one on config/devices_report_url")
        return
    if expected == []:
        problems.append("no report URL: set platform.report_url or platform.login_url in the "
                        "config, or publish one on config/report_url")
        return
    # One period, plus an HTTP timeout for the attempt to end, holds at least one attempt.
    enough = period + config.platform.timeout
    longer = f"watch longer: --wait {period + 5:g}"
    if expected is None and not targets:
        if obs.info is None:
            problems.append("no delivery attempt: no gateway/info yet")
        elif waited >= enough:
            problems.append(f"no delivery attempt seen in {waited:.0f} s, longer than the "
                            f"report period of {period:g} s (login not done yet?)")
        else:
            pending.append(f"no delivery attempt in the {waited:.0f} s watched; reports go "
                           f"every {period:g} s ({longer})")
        return
    names = expected if expected is not None else sorted(targets)
    for name in names:
        event = event_for(targets, name)
        if event is None:
            if obs.info is None:
                problems.append(f"{label}{name}: no delivery attempt (no gateway/info yet)")
            elif waited >= enough:
                problems.append(
                    f"{label}{name}: no delivery attempt seen in {waited:.0f} s, longer than the "
                    f"report period of {period:g} s (backing off after failures? try --wait "
                    f"{config.platform.retry_max + 5:g})")
            else:
                pending.append(f"{label}{name}: no delivery attempt in the {waited:.0f} s watched; "
                               f"reports go every {period:g} s ({longer})")
            continue
        problem = _attempt_problem(f"{label}{name}", event)
        if problem is not None:
            problems.append(problem)

