"""The rule of each setting: one definition, used wherever a value enters.

A setting can arrive by several ways: the config file (`se3-bridge check`,
every program at start), a retained `config/...` topic (the bridge, the
gateway collector), a login answer, a record (`gateway/info`) and the box's
console calls. Each of them checks the value with the function here, so a
value one of them takes is never one another refuses: a console call that
answers success has published a value the bridge uses, and a file `check`
passes holds nothing the bridge would drop.

Each rule is a function from the value as given to the value in force; it
raises `ValueError` whose text says what a usable value is, without the
setting's name (`must be 1-128 letters, ...`): the caller names the setting its
own way (`gateway.dev_sno: ...` in the file, `dev_sno` in a call's error,
`bridge/settings` refusals) with `refusal()`. An empty value is not checked
here: it means "not set" (the next source is in force) to every caller.

    setting        rule               where it enters
    dev_sno        dev_sno()          gateway.dev_sno, config/dev_sno, gateway/info,
                                      PUT /SophonMQ/api/DevSno
    report URLs    report_urls()      platform.report_url, config/report_url, login
                                      answer (bridge.urls.screen), MonitorServerUrl
    report period  report_period()    config/report_period, login answer,
                                      MonitorServerUrl's reported_peroid
    login URL      login_url()        platform.login_url, config/login_url,
                                      PUT /SophonMQ/api/LoginUrl
    gateway name   gateway_name()     gateway.name, gateway/info
    gateway serial serial()           gateway.sn, gateway.sn_file
    reporter_id    reporter_id()      gateway.reporter_id, config/reporter_id,
                                      setsystemmonitorconfig
    release        release()          platform.release, config/release, the console
    devices' report URLs and period: the report's own rules (report_urls(),
    report_period()), from platform.devices_report_url, config/devices_report_*,
    the login answer, SophonConfig and the V6 face config calls

(`platform.interval` in the file is the report period's last fallback and also
takes fractions down to 0.1 s, for tests and demos; it is checked by the file's
own bounds.)

A new setting gets its rule here, before any program takes it: the devices'
report URL and period, `reporter_id`, the platform release, and any other the
box's calls or the login answer will carry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator

from bridge import releases
from bridge.fields import no_control
from bridge.urls import check_http_url
from bridge.urls import report_urls as _report_urls

PERIOD_MIN, PERIOD_MAX = 1, 86_400  # seconds
NAME_MAX = 256
REPORTER_ID_MAX = 128

_DEV_SNO = re.compile(r"[A-Za-z0-9._-]{1,128}")
DEV_SNO_RULE = "must be 1-128 letters, digits, '.', '_' or '-'"
# The serial is a topic level and part of X-Report-Id: no MQTT wildcards, no '/'.
_SERIAL = re.compile(r"[A-Za-z0-9._-]{1,64}")
SERIAL_RULE = "must be 1-64 letters, digits, '.', '_' or '-'"
PERIOD_RULE = f"must be a whole number of seconds from {PERIOD_MIN} to {PERIOD_MAX}"


def refusal(setting: str, exc: ValueError) -> str:
    """The text of a refusal: `setting: reason`."""
    return f"{setting}: {exc}"


def dev_sno(value: str) -> str:
    """The platform's authorisation code: a query parameter and part of every `ep_id`."""
    if not _DEV_SNO.fullmatch(value):
        raise ValueError(DEV_SNO_RULE)
    return value


def serial(value: str) -> str:
    """The gateway serial (a topic level)."""
    if not _SERIAL.fullmatch(value):
        raise ValueError(SERIAL_RULE)
    return value


def report_period(value: object) -> int:
    """Whole seconds from 1 to 86400: a number (30, 30.0) or its text (" 30 ")."""
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.isascii() and text.isdigit() else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(PERIOD_RULE)
    if not PERIOD_MIN <= value <= PERIOD_MAX:
        raise ValueError(PERIOD_RULE)
    return value


def login_url(value: str) -> str:
    """An http:// or https:// URL with a host, without control characters."""
    check_http_url(value)
    return value


def report_urls(urls: Iterable[str]) -> list[str]:
    """Distinct http(s) URLs, at most bridge.urls.MAX_TARGETS (the login answer's
    addresses go through bridge.urls.screen, which applies the same check to each)."""
    return _report_urls(urls)


def gateway_name(value: str) -> str:
    """The gateway's name as the platform shows it: 1-256 characters, not only blanks,
    no control character (as in every record string)."""
    return _label(value, NAME_MAX)


def reporter_id(value: str) -> str:
    """The id a V6 system status report carries (`reporter_id`, dev_sno unless set): text
    for the platform to group reports by, 1-128 characters, no control character."""
    return _label(value, REPORTER_ID_MAX)


def _label(value: str, most: int) -> str:
    """Text that names something: no control character (bridge.fields.no_control, the
    records' rule), not only blanks, at most `most` characters."""
    no_control(value)
    if not value.strip():
        raise ValueError("must not be blank (whitespace only)")
    if len(value) > most:
        raise ValueError(f"must be at most {most} characters")
    return value


def release(value: str) -> str:
    """A platform release of bridge.releases (`V6R1C01`), spelled as there."""
    return releases.release(value.strip()).name


# For pydantic models (the config file, records): the same rules as field types.
DevSno = Annotated[str, AfterValidator(dev_sno)]
GatewayName = Annotated[str, AfterValidator(gateway_name)]
