"""The vendor's configuration calls as pure checks: a request body in, config changes out.

The field names are the vendor's (sophonai/bm1682, V2R2C01 sections 4.5 and 8),
its spelling included (`reported_peroid`). An empty value clears a setting, so
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


def _text(body: Mapping[str, object], field: str) -> str:
    if field not in body:
        raise param_error(field, "required")
    value = body[field]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise param_error(field, "must be a string")
    return value
