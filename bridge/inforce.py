"""What the bridge says it uses, from its retained `bridge/settings` (read leniently), and
which report targets `se3-bridge status` therefore expects a delivery attempt from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bridge.config import Config
from bridge.observation import Event, Observation, text
from bridge.urls import split_urls
from bridge.urltext import redact

# bridge/settings' source words, as a person reads them
_SOURCES = {"topic": "config topic", "login": "login", "file": "config file",
            "gateway": "gateway/info", "none": "none"}


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
    release: str = ""  # the release in force ("" from a bridge that does not say)
    devices: ReportInForce | None = None  # the sub-device report of a two-report release


@dataclass(frozen=True, slots=True)
class ReportInForce:
    """One report's URLs and period in force, as `bridge/settings` says."""

    urls: list[str]
    url_source: str
    period: float | None
    period_source: str


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
    gateway = _report(doc, "")
    devices = _report(doc, "devices_") if "devices_report_url" in doc else None
    login_url = _part(doc, "login_url")
    login = doc.get("login")
    refused = doc.get("refused")
    release = _part(doc, "release").get("value")
    return InForce(
        urls=gateway.urls, url_source=gateway.url_source,
        period=gateway.period, period_source=gateway.period_source,
        release=release if isinstance(release, str) else "",
        devices=devices,
        login_url=redact(str(login_url.get("value") or "")),
        login_url_source=_source(login_url),
        login=login if isinstance(login, dict) else None,
        refused=[r for r in refused if isinstance(r, dict)] if isinstance(refused, list) else [],
    )


def _report(doc: dict[str, Any], prefix: str) -> ReportInForce:
    """One report's URLs and period (`report_url`, or `devices_report_url` by prefix)."""
    report_url, period = _part(doc, f"{prefix}report_url"), _part(doc, f"{prefix}report_period")
    urls = report_url.get("value")
    if isinstance(urls, str):
        urls = [urls] if urls else []
    value = period.get("value")
    return ReportInForce(
        urls=[redact(str(url)) for url in urls] if isinstance(urls, list) else [],
        url_source=_source(report_url),
        period=float(value) if isinstance(value, int | float) and value > 0 else None,
        period_source=_source(period),
    )


def _same_target(event_name: str, url: str) -> bool:
    """An event's target and a listed URL name the same target (the bridge may add a
    token query to a login's target: compared without the query)."""
    return event_name == url or event_name.split("?")[0] == url.split("?")[0]


def _event_for(targets: dict[str, Event], url: str) -> Event | None:
    if url in targets:
        return targets[url]
    return next((e for name, e in targets.items() if _same_target(name, url)), None)



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
    override = text(obs.report_url)
    if override:
        return "config topic", split_urls(override)
    if config.platform.login_url:
        return "login", []
    if config.platform.report_url:
        return "config file", list(config.platform.report_url)
    return "none", []


def expected_devices_targets(obs: Observation) -> list[str]:
    """The sub-device report's targets, as `bridge/settings` lists them ([]: none, or a
    one-report release)."""
    force = parse_settings(obs.settings, [])
    return [] if force is None or force.devices is None else force.devices.urls


def event_for(targets: dict[str, Event], url: str) -> Event | None:
    """The latest delivery event of the target `url` names, if any."""
    return _event_for(targets, url)


def period_in_force(force: InForce | None, config: Config) -> tuple[float, str]:
    """The report period the bridge uses and its source (the file's when it has not said)."""
    if force is not None and force.period is not None:
        return force.period, force.period_source
    return config.platform.interval, "config file"
