"""The vendor's configuration calls as pure checks: a request body in, config changes out.

The field names are the vendor's (sophonai/bm1682: V2R2C01 sections 4.5 and 8,
V5R7C01's `SophonSystem/api/monitor`, V6's `setsystemmonitorconfig`), its
spelling included (`reported_peroid`). An empty value clears a setting, so
the next source (the login, then the config file) is in force again.

Every value is checked by the bridge's own rule for its setting (bridge.rules),
so a call never answers success for a value the bridge would refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from bridge import rules
from bridge.urls import split_urls
from console.errors import param_error

_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass(frozen=True, slots=True)
class Change:
    """One retained config topic to publish: `config/{setting}` = `value` ("" clears)."""

    setting: str
    value: str


def monitor_server_url(body: Mapping[str, object]) -> list[Change]:
    """POST /SophonFogSys/api/MonitorServerUrl: the report URL(s) and the period."""
    urls = report_urls(_text(body, "monitor_server_url"), "monitor_server_url")
    kind = body.get("content-type", "json")
    if not isinstance(kind, str) or kind.strip().lower() not in ("json", "form-data"):
        raise param_error("content-type", "must be json")
    if kind.strip().lower() == "form-data":
        raise param_error("content-type", "form-data is not supported; only json")
    if "reported_peroid" not in body:
        raise param_error("reported_peroid", "required")
    period = report_period(body["reported_peroid"], "reported_peroid")
    return [Change("report_period", period), Change("report_url", urls)]


def monitor(body: Mapping[str, object]) -> list[Change]:
    """POST /SophonSystem/api/monitor (V5R7C01): the gateway report's URL list and
    period, and optionally the authorisation code."""
    if "monitor_address_list" not in body:
        raise param_error("monitor_address_list", "required")
    if "report_period" not in body:
        raise param_error("report_period", "required")
    found = [setting("report_url", body["monitor_address_list"], "monitor_address_list"),
             setting("report_period", body["report_period"], "report_period")]
    if "dev_sno" in body:
        found.append(setting("dev_sno", body["dev_sno"], "dev_sno"))
    return found


def system_monitor_config(body: Mapping[str, object]) -> list[Change]:
    """POST /sophon/v2/system/setsystemmonitorconfig (V6): the gateway report's URLs
    (comma-separated) and period, and optionally its `reporter_id`."""
    for field in ("device_monitor_url", "device_monitor_report_period"):
        if field not in body:
            raise param_error(field, "required")
    found = [setting("report_url", _text(body, "device_monitor_url"), "device_monitor_url"),
             setting("report_period", body["device_monitor_report_period"],
                     "device_monitor_report_period")]
    if "reporter_id" in body:
        found.append(setting("reporter_id", body["reporter_id"], "reporter_id"))
    return found


def setting(name: str, value: object, field: str) -> Change:
    """Setting `name` (its config/... topic) to `value` as a call's `field` gives it,
    checked by the setting's rule; None or "" clears it. A list of URLs is taken
    where the vendor's call gives one (`monitor_address_list`)."""
    if name in _URLS:
        if isinstance(value, list):
            value = _joined(value, field)
        return Change(name, report_urls(_string(value, field), field))
    if name in _PERIODS:
        return Change(name, report_period(value, field))
    text = _string(value, field).strip()
    return Change(name, _checked(field, _RULES[name], text) if text else "")


def report_urls(text: str, field: str = "report_url") -> str:
    """One http(s) URL or several separated by commas, as the topic holds them ("" clears)."""
    return ",".join(_checked(field, rules.report_urls, split_urls(text)))


def login_url(body: Mapping[str, object]) -> Change:
    """PUT /SophonMQ/api/LoginUrl."""
    url = _text(body, "login_url").strip()
    return Change("login_url", _checked("login_url", rules.login_url, url) if url else "")


def dev_sno(body: Mapping[str, object]) -> Change:
    """PUT /SophonMQ/api/DevSno."""
    code = _text(body, "dev_sno").strip()
    return Change("dev_sno", _checked("dev_sno", rules.dev_sno, code) if code else "")


def report_period(value: object, field: str = "report_period") -> str:
    """Whole seconds in 1..86400 (a number or its digits), as the topic holds it ("" clears)."""
    if value is None or value == "":
        return ""
    return str(_checked(field, rules.report_period, value))


def _checked(field: str, rule: Callable[[_In], _Out], value: _In) -> _Out:
    """`rule(value)`, or the call's 400 naming `field` with the rule's reason."""
    try:
        return rule(value)
    except ValueError as exc:
        raise param_error(field, str(exc)) from None


def _joined(urls: list[object], field: str) -> str:
    if not all(isinstance(url, str) and "," not in url for url in urls):
        raise param_error(field, "must be a list of URLs (strings without commas)")
    return ",".join(str(url) for url in urls)


def _string(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise param_error(field, "must be a string")
    return value


_URLS = ("report_url", "devices_report_url")
_PERIODS = ("report_period", "devices_report_period")
_RULES: dict[str, Callable[[str], str]] = {
    "login_url": rules.login_url, "dev_sno": rules.dev_sno, "reporter_id": rules.reporter_id,
    "release": rules.release}


def _text(body: Mapping[str, object], field: str) -> str:
    if field not in body:
        raise param_error(field, "required")
    value = body[field]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise param_error(field, "must be a string")
    return value
