"""The vendor's configuration calls as pure checks: a request body in, config changes out.

The field names are the vendor's (sophonai/bm1682, V2R2C01 sections 4.5 and 8),
its spelling included (`reported_peroid`). An empty value clears a setting, so
the next source (the login, then the config file) is in force again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bridge import urls as bridge_urls
from bridge.urls import check_http_url, split_urls
from console.errors import param_error

MIN_PERIOD = 1
MAX_PERIOD = 86_400
_DEV_SNO = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces


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
    """One http(s) URL or several separated by commas, as the topic holds them ("" clears).

    The bridge's own check, so that a call never answers success for a value the
    bridge would refuse (not http(s), too many targets).
    """
    try:
        return ",".join(bridge_urls.report_urls(split_urls(text)))
    except ValueError as exc:
        raise param_error(field, str(exc)) from None


def login_url(body: Mapping[str, object]) -> Change:
    """PUT /SophonMQ/api/LoginUrl."""
    url = _text(body, "login_url").strip()
    if url:
        _http_url("login_url", url)
    return Change("login_url", url)


def dev_sno(body: Mapping[str, object]) -> Change:
    """PUT /SophonMQ/api/DevSno."""
    code = _text(body, "dev_sno").strip()
    if code and not _DEV_SNO.fullmatch(code):
        raise param_error("dev_sno", "must be 1-128 printable characters without spaces")
    return Change("dev_sno", code)


def _text(body: Mapping[str, object], field: str) -> str:
    if field not in body:
        raise param_error(field, "required")
    value = body[field]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise param_error(field, "must be a string")
    return value


def _http_url(field: str, url: str) -> None:
    try:
        check_http_url(url)
    except ValueError as exc:
        raise param_error(field, str(exc)) from None


def report_period(value: object, field: str = "report_period") -> str:
    """Whole seconds in 1..86400 (a number or its digits), as the topic holds it ("" clears)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise param_error(field, "must be a whole number of seconds")
    if not MIN_PERIOD <= value <= MAX_PERIOD:
        raise param_error(field, f"must be between {MIN_PERIOD} and {MAX_PERIOD} seconds")
    return str(value)
