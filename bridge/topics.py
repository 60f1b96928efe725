"""The MQTT topic layout (docs/topics.md): building topics and parsing them back.

    {prefix}/{sn}/gateway/info
    {prefix}/{sn}/gateway/metrics
    {prefix}/{sn}/gateway/hardware
    {prefix}/{sn}/devices/{ip}/state
    {prefix}/{sn}/collectors/{name}/status
    {prefix}/{sn}/apps/{user}/devices/{ip}/state   (an app's own space: its broker user)
    {prefix}/{sn}/apps/{user}/status
    {prefix}/{sn}/bridge/status | bridge/report | bridge/errors | bridge/settings
    {prefix}/{sn}/bridge/arrivals/{ip} | arrivals/metrics | arrivals/hardware (bridge.arrivals)
    {prefix}/{sn}/config/report_url | report_period | login_url | dev_sno
    {prefix}/{sn}/config/devices_report_url | devices_report_period | reporter_id | release
    {prefix}/{sn}/config/report_now      (a command, not retained: send a report now)

Parsing is pure and cheap: it runs for every message the bridge receives.
A device address must be spelled as the bridge would spell it (canonical
form): `2001:DB8::1` and `2001:db8::1` would otherwise be two devices with one
address. Levels longer than an address or a name can be are refused before
anything else looks at them.

An app's records live under `apps/{user}/`, where the broker's ACL lets only
that user write: the topic, not the record, says who published it (`owner`).
App users are named `app` or `app-NAME` (`APP_USER`), so an app's status never
shares a name with a collector's.
"""

from __future__ import annotations

import enum
import re
import sys
from dataclasses import dataclass

from bridge.addresses import MAX_ADDRESS_TEXT, canonical_ip

# A collector's name is a `source` (at most 128 characters).
MAX_NAME = 128
# bridge/arrivals/metrics, .../hardware: the arrival of the gateway's metrics, hardware
ARRIVAL_METRICS, ARRIVAL_HARDWARE = "metrics", "hardware"
# The broker users apps connect as, and the names of their topic spaces.
APP_USER = re.compile(r"app(-[a-z0-9][a-z0-9-]{0,30})?")


class Kind(enum.Enum):
    GATEWAY_INFO = "gateway/info"
    GATEWAY_METRICS = "gateway/metrics"
    GATEWAY_HARDWARE = "gateway/hardware"
    DEVICE_STATE = "devices/state"
    COLLECTOR_STATUS = "collectors/status"
    BRIDGE_STATUS = "bridge/status"
    BRIDGE_REPORT = "bridge/report"
    BRIDGE_ERRORS = "bridge/errors"
    BRIDGE_SETTINGS = "bridge/settings"
    BRIDGE_ARRIVAL = "bridge/arrivals"
    REPORT_URL = "config/report_url"
    REPORT_PERIOD = "config/report_period"
    LOGIN_URL = "config/login_url"
    DEV_SNO = "config/dev_sno"
    DEVICES_REPORT_URL = "config/devices_report_url"
    DEVICES_REPORT_PERIOD = "config/devices_report_period"
    REPORTER_ID = "config/reporter_id"
    RELEASE = "config/release"
    REPORT_NOW = "config/report_now"

    # Members are singletons, so identity is their equality: hashing by it is a C
    # call, where Enum's own hash is a Python one, taken a few times per message.
    __hash__ = object.__hash__


_FIXED = {
    ("gateway", "info"): Kind.GATEWAY_INFO,
    ("gateway", "metrics"): Kind.GATEWAY_METRICS,
    ("gateway", "hardware"): Kind.GATEWAY_HARDWARE,
    ("bridge", "status"): Kind.BRIDGE_STATUS,
    ("bridge", "report"): Kind.BRIDGE_REPORT,
    ("bridge", "errors"): Kind.BRIDGE_ERRORS,
    ("bridge", "settings"): Kind.BRIDGE_SETTINGS,
    ("config", "report_url"): Kind.REPORT_URL,
    ("config", "report_period"): Kind.REPORT_PERIOD,
    ("config", "login_url"): Kind.LOGIN_URL,
    ("config", "dev_sno"): Kind.DEV_SNO,
    ("config", "devices_report_url"): Kind.DEVICES_REPORT_URL,
    ("config", "devices_report_period"): Kind.DEVICES_REPORT_PERIOD,
    ("config", "reporter_id"): Kind.REPORTER_ID,
    ("config", "release"): Kind.RELEASE,
    ("config", "report_now"): Kind.REPORT_NOW,
}


@dataclass(frozen=True, slots=True)
class TopicRef:
    """A parsed topic: whose (`sn`), what (`kind`) and, for devices and collectors, `key`.

    `key` is the device IP in canonical form, the collector name, or an arrival's key.
    `owner` is the app user whose space (`apps/{owner}/`) the topic is in; "" for
    the collectors' shared topics.
    """

    sn: str
    kind: Kind
    key: str = ""
    owner: str = ""


class TopicError(ValueError):
    """A topic under our prefix that has no meaning in the layout."""


def parse(topic: str, prefix: str) -> TopicRef:
    """Parse `topic`, raising TopicError when it is not of a known shape."""
    parts = topic.split("/")
    n_prefix = prefix.count("/") + 1
    if "/".join(parts[:n_prefix]) != prefix:
        raise TopicError("not under the topic prefix")
    rest = parts[n_prefix:]
    if len(rest) < 3 or not rest[0]:
        raise TopicError("unknown topic shape")
    # One copy of the serial, whatever number of a gateway's topics are held (the bridge
    # keeps a parsed topic for each of its devices).
    sn = sys.intern(rest[0])
    if len(rest) == 3:
        kind = _FIXED.get((rest[1], rest[2]))
        if kind is None:
            raise TopicError("unknown topic shape")
        return TopicRef(sn, kind)
    if len(rest) == 4 and rest[1] == "devices" and rest[3] == "state":
        return TopicRef(sn, Kind.DEVICE_STATE, _device_ip(rest[2]))
    if len(rest) == 4 and rest[1] == "bridge" and rest[2] == "arrivals":
        key = rest[3] if rest[3] in (ARRIVAL_METRICS, ARRIVAL_HARDWARE) else _device_ip(rest[3])
        return TopicRef(sn, Kind.BRIDGE_ARRIVAL, key)
    if len(rest) == 4 and rest[1] == "collectors" and rest[3] == "status" and rest[2]:
        if len(rest[2]) > MAX_NAME:
            raise TopicError(f"collector name longer than {MAX_NAME} characters")
        return TopicRef(sn, Kind.COLLECTOR_STATUS, rest[2])
    if rest[1] == "apps" and len(rest) in (4, 6):
        return _app_topic(sn, rest)
    raise TopicError("unknown topic shape")


def _app_topic(sn: str, rest: list[str]) -> TopicRef:
    """`apps/{user}/status` or `apps/{user}/devices/{ip}/state` (`rest` from the serial on)."""
    user = rest[2]
    if len(rest) == 4 and rest[3] == "status":
        kind = Kind.COLLECTOR_STATUS
    elif len(rest) == 6 and rest[3] == "devices" and rest[5] == "state":
        kind = Kind.DEVICE_STATE
    else:
        raise TopicError("unknown topic shape")
    if not APP_USER.fullmatch(user):
        raise TopicError("an app's space is apps/app/ or apps/app-NAME/ (its broker user)")
    if kind is Kind.COLLECTOR_STATUS:
        return TopicRef(sn, kind, user, user)
    return TopicRef(sn, kind, _device_ip(rest[4]), user)


def record_space(topic: str, base: str) -> bool:
    """Whether `topic` is below `base` (`{prefix}/{sn}`) where device records are
    published, `devices/` or `apps/`, even when it does not parse."""
    return topic.startswith((f"{base}/devices/", f"{base}/apps/"))


def _device_ip(text: str) -> str:
    if len(text) > MAX_ADDRESS_TEXT:
        raise TopicError(
            f"device topic level of {len(text)} characters is longer than an IP address can be")
    try:
        ip = canonical_ip(text)
    except ValueError as exc:
        raise TopicError(f"bad device IP in topic: {text!r}: {exc}") from None
    if ip != text:
        raise TopicError(f"device IP {text!r} in topic is not in canonical form: publish it as "
                         f"{ip!r}")
    return ip


class Topics:
    """Builds the topics of one gateway under one prefix."""

    def __init__(self, prefix: str, sn: str) -> None:
        self.base = f"{prefix}/{sn}"

    @property
    def gateway_info(self) -> str:
        return f"{self.base}/gateway/info"

    @property
    def gateway_metrics(self) -> str:
        return f"{self.base}/gateway/metrics"

    @property
    def gateway_hardware(self) -> str:
        return f"{self.base}/gateway/hardware"

    def device_state(self, ip: str) -> str:
        return f"{self.base}/devices/{ip}/state"

    def collector_status(self, name: str) -> str:
        return f"{self.base}/collectors/{name}/status"

    def app_device_state(self, user: str, ip: str) -> str:
        return f"{self.base}/apps/{user}/devices/{ip}/state"

    def app_status(self, user: str) -> str:
        return f"{self.base}/apps/{user}/status"

    @property
    def bridge_status(self) -> str:
        return f"{self.base}/bridge/status"

    @property
    def bridge_report(self) -> str:
        return f"{self.base}/bridge/report"

    @property
    def bridge_errors(self) -> str:
        return f"{self.base}/bridge/errors"

    @property
    def bridge_settings(self) -> str:
        return f"{self.base}/bridge/settings"

    def arrival(self, key: str) -> str:
        return f"{self.base}/bridge/arrivals/{key}"

    @property
    def report_url(self) -> str:
        return f"{self.base}/config/report_url"

    @property
    def report_period(self) -> str:
        return f"{self.base}/config/report_period"

    @property
    def login_url(self) -> str:
        return f"{self.base}/config/login_url"

    @property
    def dev_sno(self) -> str:
        return f"{self.base}/config/dev_sno"

    @property
    def devices_report_url(self) -> str:
        return f"{self.base}/config/devices_report_url"

    @property
    def devices_report_period(self) -> str:
        return f"{self.base}/config/devices_report_period"

    @property
    def reporter_id(self) -> str:
        return f"{self.base}/config/reporter_id"

    @property
    def release(self) -> str:
        return f"{self.base}/config/release"

    @property
    def report_now(self) -> str:
        return f"{self.base}/config/report_now"

    @property
    def fence(self) -> str:
        """Subscribed to, never published: its SUBACK marks the end of a retained replay."""
        return f"{self.base}/bridge/fence"

    @property
    def everything(self) -> str:
        """The subscription filter for all of this gateway's topics."""
        return f"{self.base}/#"
