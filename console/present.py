"""The view for people and scripts: settings in force with their source, gateway,
devices and report targets, built from a `Snapshot` without I/O.

Every URL goes through `redact()` (no user info, no query: the login token and
URL credentials never leave), and nothing else secret is in the snapshot.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from bridge.config import Config
from bridge.hide import without_credentials
from bridge.missing import missing_from_records
from bridge.releases import DEFAULT_RELEASE, RELEASES
from bridge.urls import split_urls
from bridge.urltext import redact
from console.view import Record, Snapshot, TargetLog

TYPES = {"0": "turnstile", "1": "capture camera", "2": "IPC static", "3": "IPC dynamic",
         "4": "access control"}
FROM_BRIDGE = "bridge"
NOT_CONFIRMED = "the bridge has not published bridge/settings yet: configured values shown"


@dataclass(frozen=True, slots=True)
class Setting:
    value: Any
    source: str


@dataclass(frozen=True, slots=True)
class InForce:
    """The settings and whether the bridge itself said so (`confirmed`).

    The sub-device report's URLs and period (two-report releases), `reporter_id`
    and the release come from the bridge's record where it names them, else from
    the config topics and the file, as the others do before the bridge has spoken.
    """

    report_url: Setting
    report_period: Setting
    login_url: Setting
    dev_sno: Setting
    confirmed: bool
    login: dict[str, Any] | None = None
    refused: tuple[dict[str, Any], ...] = ()
    devices_report_url: Setting = Setting([], "none")
    devices_report_period: Setting = Setting(None, "none")
    reporter_id: Setting = Setting("", "none")
    release: Setting = Setting(DEFAULT_RELEASE, "file")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def two_reports(self) -> bool:
        """Whether the release in force sends the sub-devices in a report of their own."""
        found = RELEASES.get(str(self.release.value))
        return found is not None and found.devices is not None


def in_force(snap: Snapshot, config: Config) -> InForce:
    """From the bridge's `bridge/settings`, else from the config topics and the file."""
    fallback = _fallback(snap, config)
    told = snap.settings.data if snap.settings is not None else None
    return fallback if told is None else _told(told, fallback)


def _fallback(snap: Snapshot, config: Config) -> InForce:
    topic = snap.config
    file = config.platform
    if "report_url" in topic:
        url = Setting([redact(u) for u in split_urls(topic["report_url"])], "topic")
    else:
        url = Setting([redact(u) for u in file.report_url], "file" if file.report_url else "none")
    period_text = topic.get("report_period", "")
    if period_text.isdigit():
        period = Setting(int(period_text), "topic")
    else:
        period = Setting(_whole(file.interval), "file")
    if topic.get("login_url"):
        login = Setting(redact(topic["login_url"]), "topic")
    else:
        login = Setting(redact(file.login_url) if file.login_url else "",
                        "file" if file.login_url else "none")
    info_sno = snap.info.data.get("dev_sno") if snap.info is not None else None
    if topic.get("dev_sno"):
        sno = Setting(topic["dev_sno"], "topic")
    elif isinstance(info_sno, str) and info_sno:
        sno = Setting(info_sno, "gateway")
    else:
        sno = Setting(config.gateway.dev_sno, "file" if config.gateway.dev_sno else "none")
    if "devices_report_url" in topic:
        devices_url = Setting([redact(u) for u in split_urls(topic["devices_report_url"])],
                              "topic")
    else:
        devices_url = Setting([redact(u) for u in file.devices_report_url],
                              "file" if file.devices_report_url else "none")
    if topic.get("devices_report_period", "").isdigit():
        devices_period = Setting(int(topic["devices_report_period"]), "topic")
    else:  # the file's, else the gateway report's period in the file
        devices_period = Setting(_whole(file.devices_interval or file.interval), "file")
    if topic.get("reporter_id"):
        reporter = Setting(topic["reporter_id"], "topic")
    elif config.gateway.reporter_id:
        reporter = Setting(config.gateway.reporter_id, "file")
    else:
        reporter = Setting(sno.value, "dev_sno")  # as the bridge names it
    release = Setting(topic["release"], "topic") if topic.get("release") in RELEASES else \
        Setting(file.release, "file")
    return InForce(url, period, login, sno, confirmed=False, devices_report_url=devices_url,
                   devices_report_period=devices_period, reporter_id=reporter, release=release)


def _told(told: dict[str, Any], fallback: InForce) -> InForce:
    def setting(name: str, default: Any) -> Setting:
        item = told.get(name)
        if not isinstance(item, dict):
            return Setting(default, "unknown")
        return Setting(item.get("value", default), str(item.get("source", "unknown")))

    def urls(name: str) -> Setting:
        url = setting(name, [])
        listed = url.value if isinstance(url.value, list) else [url.value]
        return Setting([redact(str(u)) for u in listed if u], url.source)

    def seconds(name: str) -> Setting:
        period = setting(name, 0)
        if not isinstance(period.value, int | float) or isinstance(period.value, bool):
            return Setting(0, period.source)
        return Setting(_whole(period.value), period.source)

    def named(name: str) -> bool:
        return isinstance(told.get(name), dict)

    login_url = setting("login_url", "")
    login_url = Setting(redact(str(login_url.value)) if login_url.value else "", login_url.source)
    sno = setting("dev_sno", "")
    login = told.get("login") if isinstance(told.get("login"), dict) else None
    listed = told.get("refused")
    refused: list[Any] = listed if isinstance(listed, list) else []
    sno = Setting(str(sno.value or ""), sno.source)
    reporter = setting("reporter_id", "")
    if not named("reporter_id"):  # dev_sno unless a topic or the file set one
        chosen = fallback.reporter_id.source != "dev_sno"
        reporter = fallback.reporter_id if chosen else Setting(sno.value, "dev_sno")
    release = setting("release", "")
    return InForce(
        urls("report_url"), seconds("report_period"), login_url, sno, confirmed=True,
        login=login,
        refused=tuple(_refusal(r) for r in refused[-10:] if isinstance(r, dict)),
        devices_report_url=urls("devices_report_url") if named("devices_report_url")
        else fallback.devices_report_url,
        devices_report_period=seconds("devices_report_period")
        if named("devices_report_period") else fallback.devices_report_period,
        reporter_id=Setting(str(reporter.value or ""), reporter.source),
        release=Setting(str(release.value), release.source)
        if named("release") and release.value in RELEASES else fallback.release,
    )


def _refusal(item: dict[str, Any]) -> dict[str, Any]:
    value = str(item.get("value", ""))
    return {"setting": str(item.get("setting", "")), "reason": str(item.get("reason", "")),
            "at": item.get("at"), "value": redact(value) if "://" in value else value}


def _whole(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def gateway(snap: Snapshot, sn: str, now: float) -> dict[str, Any]:
    info = snap.info.data if snap.info else {}
    metrics = _fresh_metrics(snap.metrics, now)
    bridge = snap.bridge_status
    return {
        "sn": sn,
        "known": snap.info is not None,
        "name": info.get("gateway_name"),
        "ip": info.get("gateway_ip"),
        "mac": info.get("gateway_mac"),
        "dev_sno": info.get("dev_sno"),
        "sw_version": _version_line(info.get("sw_version")),
        "sdk_version": info.get("sdk_version"),
        "metrics": metrics,
        "bridge": {"status": bridge[0], "since": bridge[1]} if bridge else None,
        "collectors": {name: {"status": word, "since": at}
                       for name, (word, at) in sorted(snap.collectors.items())},
    }


def _version_line(text: object) -> str | None:
    """The VERSION line of a build-info text, else its first line."""
    if not isinstance(text, str):
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    versions = [line for line in lines if line.upper().startswith("VERSION")]
    return (versions or lines or [""])[0][:200] or None


def _fresh_metrics(record: Record | None, now: float) -> dict[str, Any] | None:
    if record is None:
        return None
    data = record.data
    born = _number(data.get("ts")) or record.at
    ttl = _number(data.get("ttl"))
    keys = ("cpu_usage", "memory_size", "memory_usage", "disk_size", "disk_free_size",
            "temperature")
    return {**{k: data.get(k) for k in keys if _number(data.get(k)) is not None},
            "age": max(0.0, now - born), "stale": ttl is not None and now > born + ttl}


def stale(snap: Snapshot, ip: str, now: float) -> str | None:
    """Why the record of device `ip` is stale (held, but its publisher is gone: the record
    expired, its publisher's status says offline or there is none, it names no
    publisher), "" while its publisher is online, None when there is no such record."""
    record = snap.devices.get(ip)
    if record is None:
        return None
    data = record.data
    ttl = _number(data.get("ttl"))
    if ttl is not None and (_number(data.get("ts")) or record.at) + ttl <= now:
        return "expired"
    source = data.get("source") if isinstance(data.get("source"), str) else None
    if source is None:
        return "its record names no publisher"
    word = snap.collectors.get(source, ("", 0.0))[0]
    if word == "online":
        return ""
    return f"publisher {source} is offline" if word == "offline" else \
        f"publisher {source} has no status"


def devices(snap: Snapshot, now: float) -> list[dict[str, Any]]:
    """One row per device record, sorted by IP, with the status the bridge reports and
    whether it is stale (the console can delete it then)."""
    offline_sources = {name for name, (word, _) in snap.collectors.items() if word == "offline"}
    rows = []
    for ip, record in snap.devices.items():
        data = record.data
        born = _number(data.get("ts")) or record.at
        ttl = _number(data.get("ttl"))
        left = None if ttl is None else born + ttl - now
        status = data.get("ep_status") if data.get("ep_status") in ("online", "offline") else "?"
        note = ""
        source = data.get("source") if isinstance(data.get("source"), str) else None
        if left is not None and left <= 0:
            status, note = "offline", "expired"
        elif source in offline_sources:
            status, note = "offline", f"publisher {source} is offline"
        ep_type = str(data.get("ep_type", ""))
        url = data.get("ep_url")
        rows.append({
            "ip": ip,
            "name": _text(data.get("ep_name")),
            "status": status,
            "note": note,
            "type": f"{TYPES[ep_type]} ({ep_type})" if ep_type in TYPES else f"unknown ({ep_type})",
            "location": _text(data.get("ep_location")),
            "url": redact(url) if isinstance(url, str) and url else "",
            "source": source or "",
            "stale": stale(snap, ip, now) or "",
            "age": max(0.0, now - born),
            "expires_in": left,
            "expiring_soon": left is not None and ttl is not None and 0 < left <= ttl / 4,
        })
    return sorted(rows, key=lambda row: _ip_key(row["ip"]))


def targets(snap: Snapshot, settings: InForce) -> list[dict[str, Any]]:
    """Each target in force with the bridge's last word on it; under a two-report
    release, the gateway report's (`report` "gateway") and then the sub-device
    report's ("devices")."""
    reports = [("gateway", settings.report_url, snap.targets)]
    if settings.two_reports:
        reports.append(("devices", settings.devices_report_url, snap.devices_targets))
    rows = []
    for report, urls, logs in reports:
        for name in urls.value:
            log = logs.get(name, TargetLog())
            rows.append({"url": name, "source": urls.source, "report": report, **asdict(log)})
        if not settings.confirmed:  # the bridge's own view is unknown: what it reported to
            rows += [{"url": name, "source": "earlier", "report": report, **asdict(log)}
                     for name, log in logs.items() if name not in urls.value]
    return rows


def release_view(settings: InForce, snap: Snapshot | None = None, config: Config | None = None,
                 sn: str = "") -> dict[str, Any]:
    """The release in force, what it sends, every release there is (for the form) and,
    given the records, what its reports have no value for (bridge.missing)."""
    name = str(settings.release.value)
    found = RELEASES.get(name)
    missing: list[str] = []
    if found is not None and snap is not None and config is not None:
        missing = missing_from_records(
            name, config.platform.format, sn, info=_raw(snap.info), metrics=_raw(snap.metrics),
            hardware=_raw(snap.hardware),
            devices={ip: orjson.dumps(r.data) for ip, r in snap.devices.items()},
            port=config.gateway_port(), reporter_id=str(settings.reporter_id.value or ""))
    return {"name": name, "source": settings.release.source,
            "reports": list(found.sent_under(config.platform.format if config else "v1"))
            if found else [],
            "two_reports": settings.two_reports,
            "reporter_id": found is not None and found.gateway == "F7",
            "missing": missing,
            "all": list(RELEASES)}


def _raw(record: Record | None) -> bytes | None:
    return None if record is None else orjson.dumps(record.data)


def page_model(snap: Snapshot, config: Config, sn: str, now: float,
               connected: bool) -> dict[str, Any]:
    """Everything the page and `GET /api/view` show."""
    settings = in_force(snap, config)
    return {
        "now": now,
        "connected": connected,
        "console_started": snap.started,
        "gateway": gateway(snap, sn, now),
        "devices": devices(snap, now),
        "targets": targets(snap, settings),
        "settings": settings.as_dict(),
        "release": release_view(settings, snap, config, sn),
        "settings_note": "" if settings.confirmed else NOT_CONFIRMED,
        "errors": [_error(e) for e in snap.errors][-10:],
    }


def _error(event: dict[str, Any]) -> dict[str, Any]:
    reason = event.get("reason")  # the bridge hides URL credentials; so does the page
    return {"at": _number(event.get("ts")), "topic": _text(event.get("topic")),
            "reason": _text(without_credentials(reason) if isinstance(reason, str) else None)}


def _text(value: object) -> str:
    return value[:300] if isinstance(value, str) else ""


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _ip_key(ip: str) -> tuple[int, str]:
    parts = ip.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return (0, ".".join(f"{int(p):03d}" for p in parts))
    return (1, ip)
