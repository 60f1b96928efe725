"""The box's configuration keys (the vendor's `SophonConfig` and V6 `face` config calls)
as the console's settings, both ways.

The vendor's boxes keep many keys; the console serves the ones about status
reporting, under both names where the vendor has two (V5R7C01's and V6's):

    key                                   setting (config/... topic)
    DEVICE_MONITOR_ADDR                   report_url             the gateway report
    REPORTED_PEROID                       report_period
    WEB_HEART_URL, MEDIA_DEVICE_MONITOR_URL            devices_report_url   the sub-device
    WEB_HEART_TIME, MEDIA_DEVICE_MONITOR_REPORT_PEROID devices_report_period  report
    LOGIN_URL, MQ_LOGIN_URL               login_url
    DEV_SNO, MQ_LICENSE_KEY               dev_sno
    LOGIN_STATUS, MQ_LOGIN_STATUS, BOX_MAC                read only
    LOGIN_TOKEN, MQ_LOGIN_TOKEN           always "": the token is never served

Pure: values from an `InForce` and the gateway's MAC, changes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.login import hex_mac
from console import calls
from console.calls import Change
from console.errors import param_error
from console.present import InForce

SETTABLE: Mapping[str, str] = {
    "DEVICE_MONITOR_ADDR": "report_url",
    "REPORTED_PEROID": "report_period",
    "WEB_HEART_URL": "devices_report_url",
    "WEB_HEART_TIME": "devices_report_period",
    "MEDIA_DEVICE_MONITOR_URL": "devices_report_url",
    "MEDIA_DEVICE_MONITOR_REPORT_PEROID": "devices_report_period",
    "LOGIN_URL": "login_url",
    "MQ_LOGIN_URL": "login_url",
    "DEV_SNO": "dev_sno",
    "MQ_LICENSE_KEY": "dev_sno",
}
READ_ONLY = ("LOGIN_STATUS", "MQ_LOGIN_STATUS", "BOX_MAC", "LOGIN_TOKEN", "MQ_LOGIN_TOKEN")
KEYS = tuple(sorted((*SETTABLE, *READ_ONLY)))
MAX_KEYS = 64  # in one call: more is not a mistake the caller should wait on

# MQ_LOGIN_STATUS's codes (V6's config table): 0 logged in; 500001 the login
# failed (the platform's own reason is in the bridge's record, not a code).
LOGGED_IN = 0
LOGIN_FAILED = 500001


def values(settings: InForce, gateway_mac: object) -> dict[str, Any]:
    """Every key served, with the value in force (URLs redacted)."""
    by_setting: dict[str, Any] = {
        "report_url": ",".join(settings.report_url.value),
        "report_period": settings.report_period.value,
        "devices_report_url": ",".join(settings.devices_report_url.value),
        "devices_report_period": settings.devices_report_period.value,
        "login_url": settings.login_url.value,
        "dev_sno": settings.dev_sno.value,
    }
    code = _login_code(settings.login)
    out: dict[str, Any] = {key: by_setting[name] for key, name in SETTABLE.items()}
    out["MQ_LOGIN_STATUS"] = code
    out["LOGIN_STATUS"] = None if code is None else {
        "code": code,
        "message": "login success" if code == LOGGED_IN else _login_error(settings.login),
        "chinese_message": "登录成功" if code == LOGGED_IN else "登录失败",
    }
    out["BOX_MAC"] = hex_mac(gateway_mac) if isinstance(gateway_mac, str) and gateway_mac else ""
    out["LOGIN_TOKEN"] = out["MQ_LOGIN_TOKEN"] = ""
    return {key: out[key] for key in KEYS}


def config_dict(body: Mapping[str, object]) -> dict[str, object]:
    """A set call's `config_dict`: `{KEY: value}`, at least one key."""
    if "config_dict" not in body:
        raise param_error("config_dict", "required")
    given = body["config_dict"]
    if not isinstance(given, dict):
        raise param_error("config_dict", "must be an object of {KEY: value}")
    if not given:
        raise param_error("config_dict", "empty; name at least one key")
    if len(given) > MAX_KEYS:
        raise param_error("config_dict", f"more than {MAX_KEYS} keys")
    return given


def changes(config_dict: Mapping[str, object]) -> list[Change]:
    """The changes a `{KEY: value}` dict asks for; a 400 naming the first key that
    cannot be set (unknown, read-only, a value the bridge would refuse), and then
    nothing is changed."""
    chosen: dict[str, tuple[str, Change]] = {}
    for key, value in config_dict.items():
        name = SETTABLE.get(key)
        if name is None:
            why = "is read only" if key in READ_ONLY else \
                f"is not a key this box serves (it serves {', '.join(KEYS)})"
            raise param_error(str(key)[:100], why)
        change = calls.setting(name, value, key)
        earlier = chosen.get(name)
        if earlier is not None and earlier[1] != change:
            raise param_error(key, f"sets the same setting as {earlier[0]} to another value")
        chosen[name] = (key, change)
    return [change for _key, change in chosen.values()]


def _login_code(login: Mapping[str, Any] | None) -> int | None:
    state = login.get("state") if login else None
    if state == "ok":
        return LOGGED_IN
    if state == "failed":
        return LOGIN_FAILED
    return None  # no login configured, or none answered yet


def _login_error(login: Mapping[str, Any] | None) -> str:
    error = login.get("error") if login else None
    return str(error)[:300] if error else "login failed"
