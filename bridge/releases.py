"""Every platform release the box has shipped: the one table of what each expects.

The vendor documented the box's status reporting release by release in its API
book (sophonai/bm1682, "设备状态上报内容", "系统状态信息上报", "采集端设备状态信息上报"
and "管理平台系统登录接口"). A platform expects the release it was built for, so
`[platform] release` picks, from this table and nothing else:

- the report the gateway sends (`gateway`), and for the two-report releases
  (V5R7C01, V6) the separate sub-device report (`devices`);
- the platform login variant (`login`, L0-L4);
- which `[platform] format` values the release accepts and what each sends
  instead of its own report (`variants`: V2R1C01's "v2" is the MQ 7.3 variant
  with `ep_ext_data`; V2R6C01's and V5R6C01's "port" is the flat report plus
  `gateway_port` that those releases also ship).

Data only: code asks the table (`release(name)`, `login_variant(name)`) rather
than comparing release names. docs/protocol.md has the same table in prose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

# The report formats, by the names of docs/protocol.md:
#   F1     V2R1C01's "设备状态上报内容": the seed's keys, no `temperature`
#   F1-MQ  its MQ 7.3 variant: every device carries `ep_ext_data`, no `ep_url` (format "v2")
#   F2     the seed (V2R2C01): flat metrics and `temperature`
#   F3     F2 plus `gateway_port` after `dev_sno`
#   F4     F3 with nested `cpu_info` / `memory_info` / `disk_info`
#   F5     V5R7C01's system status: the box only, with disks, fan, uptime and TPU
#   F6     V5R7C01's sub-device status: `dev_sno` and `sub_devices` only
#   F7     V6's system status: `reporter_id`, `gateway_mac` at the top, `emmc` / `hdd`
#   F8     V6's media-device status: `mq_license_key` and `media_devices`
ReportFormat = Literal["F1", "F1-MQ", "F2", "F3", "F4", "F5", "F6", "F7", "F8"]
REPORT_FORMATS: tuple[ReportFormat, ...] = get_args(ReportFormat)
# What a report carries: the gateway with its devices (one-report releases), the
# gateway alone, or the devices alone.
Carries = Literal["both", "gateway", "devices"]
CARRIES: Mapping[ReportFormat, Carries] = MappingProxyType({
    "F1": "both", "F1-MQ": "both", "F2": "both", "F3": "both", "F4": "both",
    "F5": "gateway", "F6": "devices", "F7": "gateway", "F8": "devices",
})

# The values of `[platform] format`: "v1" is the release's own report.
FormatName = Literal["v1", "v2", "port"]
FORMAT_NAMES: tuple[FormatName, ...] = get_args(FormatName)

LoginName = Literal["L0", "L1", "L2", "L3", "L4"]
ReleaseName = Literal[
    "V2R1C01", "V2R2C01", "V2R3C01", "V2R4C01", "V2R6C01",
    "V5R2C01", "V5R3C01", "V5R4C01", "V5R5C01", "V5R6C01", "V5R7C01",
    "V6R1C01", "V6R2C01",
]
RELEASE_NAMES: tuple[ReleaseName, ...] = get_args(ReleaseName)
DEFAULT_RELEASE: ReleaseName = "V2R2C01"  # the seed


@dataclass(frozen=True, slots=True)
class LoginVariant:
    """How one login variant asks and what its answer names.

    `params` are the query parameters, each named for the value it carries:
    "dev_sno" the authorisation code, "hex_mac" the MAC as `0x` + 12 hex
    digits, "sn" the box's serial. L4 names the code `mq_license_key` and the
    serial `device_sn`, and (as its own example does) still sends `dev_sno` and
    `hex_mac`. The answer's keys are tried in the order given.
    """

    name: LoginName
    params: tuple[tuple[str, str], ...]  # (query parameter, value name)
    address_keys: tuple[str, ...]  # the (gateway) report's URL(s)
    period_keys: tuple[str, ...]
    token_keys: tuple[str, ...]
    devices_address_keys: tuple[str, ...] = ()  # the sub-device report's, where separate
    devices_period_keys: tuple[str, ...] = ()


_SE3_PARAMS = (("dev_sno", "dev_sno"), ("hex_mac", "hex_mac"))
_SE3_ANSWER = {
    "address_keys": ("deviceMonitorAddr",),
    "period_keys": ("deviceMonitorPeriod",),
    "token_keys": ("token",),
}
# L0-L3 differ on the wire only in answer keys the bridge does not use
# (`deviceInfoAddr` vs `deviceListInfoAddr`, the `recordUpload*` switches).
LOGINS: Mapping[LoginName, LoginVariant] = MappingProxyType({
    "L0": LoginVariant("L0", _SE3_PARAMS, **_SE3_ANSWER),
    "L1": LoginVariant("L1", _SE3_PARAMS, **_SE3_ANSWER),
    "L2": LoginVariant("L2", _SE3_PARAMS, **_SE3_ANSWER),
    "L3": LoginVariant("L3", _SE3_PARAMS, **_SE3_ANSWER),
    "L4": LoginVariant(
        "L4",
        (("mq_license_key", "dev_sno"), ("device_sn", "sn"),
         ("dev_sno", "dev_sno"), ("hex_mac", "hex_mac")),
        address_keys=("device_monitor_url",),
        period_keys=("device_monitor_report_period",),
        token_keys=("mq_login_token",),
        devices_address_keys=("media_device_monitor_url",),
        devices_period_keys=("media_device_monitor_report_period",),
    ),
})


@dataclass(frozen=True, slots=True)
class Release:
    """One release: its report(s), its login variant, the formats it accepts."""

    name: ReleaseName
    gateway: ReportFormat  # the report with the gateway (and, for "both", its devices)
    devices: ReportFormat | None  # the separate sub-device report; None: one report
    login: LoginName
    variants: Mapping[str, ReportFormat]  # `[platform] format` -> the gateway report

    def gateway_format(self, fmt: str = "v1") -> ReportFormat:
        """The gateway report under `[platform] format = fmt`; KeyError if not offered."""
        return self.variants[fmt]

    def sent_under(self, fmt: str) -> tuple[ReportFormat, ...]:
        """The formats sent under `[platform] format = fmt`, gateway report first: the
        variant where this release offers it, else its own (a release switched on
        config/release keeps the file's format only where the new one offers it)."""
        gateway = self.variants.get(fmt, self.gateway)
        return (gateway,) if self.devices is None else (gateway, self.devices)

    @property
    def reports(self) -> tuple[ReportFormat, ...]:
        """The formats this release sends by default, gateway report first."""
        return self.sent_under("v1")


def _release(name: ReleaseName, gateway: ReportFormat, devices: ReportFormat | None,
             login: LoginName, **others: ReportFormat) -> Release:
    return Release(name, gateway, devices, login,
                   MappingProxyType({"v1": gateway, **others}))


RELEASES: Mapping[str, Release] = MappingProxyType({r.name: r for r in (
    _release("V2R1C01", "F1", None, "L0", v2="F1-MQ"),
    _release("V2R2C01", "F2", None, "L1"),
    _release("V2R3C01", "F2", None, "L2"),
    _release("V2R4C01", "F2", None, "L2"),
    _release("V2R6C01", "F4", None, "L3", port="F3"),
    _release("V5R2C01", "F2", None, "L3"),
    _release("V5R3C01", "F2", None, "L3"),
    _release("V5R4C01", "F2", None, "L3"),
    _release("V5R5C01", "F2", None, "L3"),
    _release("V5R6C01", "F4", None, "L3", port="F3"),  # its login text is L3's, one row reworded
    _release("V5R7C01", "F5", "F6", "L3"),
    _release("V6R1C01", "F7", "F8", "L4"),
    _release("V6R2C01", "F7", "F8", "L4"),
)})


def release(name: str) -> Release:
    """The release called `name`; ValueError naming the known ones otherwise."""
    found = RELEASES.get(name)
    if found is None:
        raise ValueError(f"unknown release {name!r}; known: {', '.join(RELEASES)}")
    return found


def login_variant(name: str) -> LoginVariant:
    """The login variant the release called `name` speaks."""
    return LOGINS[release(name).login]


def check_format(release_name: str, fmt: str) -> None:
    """ValueError unless release `release_name` offers `[platform] format = fmt`."""
    offered = release(release_name).variants
    if fmt not in offered:
        raise ValueError(
            f"format {fmt!r} is not offered by release {release_name} "
            f"(it offers {', '.join(repr(v) for v in offered)})"
        )
