"""The report tables the reference platform checks against: data, one entry per format.

Each format is the table of one of the vendor's documents (sophonai/bm1682),
key by key in the table's order: its JSON type, whether it is required (必选),
the rule its value follows and, for an object or a list of objects, the keys
inside. `receiver.conformance` walks these tables; nothing else in the
receiver knows a key name of a report, except the page's view of it
(`Format.view`).

- "v1": the seed document this project was built from ("设备状态上报内容", the
  V2R2C01 book as first published), with the project's own rules on top
  (rounding, sorted devices, `temperature` optional where the board has no
  sensor).
- "v2": the V2R1C01 MQ variant (`ep_ext_data` on each device, no `ep_url`).
- "F1".."F8": the vendor's tables as printed, named as in docs/protocol.md.
  Where a document's example disagrees with its own table, the table is here.

A value that only the box's hardware can give (its metrics, disks, fan, TPU)
is `measured`: when the box cannot measure it, it is left out (or, for text,
sent empty) and the platform notes it as not measured instead of calling it a
violation; a wrong type or value is a violation all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from bridge.fields import TEMPERATURE_MAX, TEMPERATURE_MIN
from receiver import rules
from receiver.rules import Rule

Kind = Literal["string", "float", "int", "bool", "object", "array"]
Carries = Literal["both", "gateway", "devices"]
FormatName = Literal["v1", "v2", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8"]


@dataclass(frozen=True)
class Key:
    """One row of a table."""

    name: str
    kind: Kind
    required: bool = True
    rule: Rule | None = None
    keys: tuple[Key, ...] = ()  # an object's keys, or those of each object of a list
    measured: bool = False  # only the hardware knows it: absent or "" is noted, not a violation
    # An optional string sent blank is a violation (unknown is left out), unless "" is
    # one of its values (ep_name: "" when none).
    empty_ok: bool = False
    aliases: tuple[str, ...] = ()  # other names a document of the release uses for it


@dataclass(frozen=True)
class Devices:
    """The checks across a format's list of devices, beyond each device's own keys."""

    key: str  # the list's key
    ip: str  # each device's address
    status: str  # each device's online/offline
    unique: tuple[str, ...]  # keys no two devices share (addresses compared as addresses)
    sorted_by_ip: bool = False  # the project's rule: devices in address order
    ep_id: bool = False  # ep_id is dev_sno + "__" + ...
    ep_id_is_ip: bool = True  # ... + ep_ip (else: + the address or the stream URL)
    columns: tuple[str, ...] = ()  # the keys the page shows, in its column order


@dataclass(frozen=True)
class Format:
    """One report format: where it comes from, what it carries, its table."""

    name: FormatName
    source: str  # the vendor's document, by name
    carries: Carries
    keys: tuple[Key, ...]
    devices: Devices | None
    identity: tuple[str, ...]  # top-level keys naming the box, the first present wins
    order_of: str = "the vendor table's"  # whose key order a misplaced key goes against
    # The key carrying the platform's authorisation code (the login's dev_sno); None when
    # the format has none (F7's reporter_id is the code only unless set otherwise).
    code: str | None = "dev_sno"


def _measured(keys: tuple[Key, ...], *but: str) -> tuple[Key, ...]:
    """`keys` and everything inside them marked measured, except the keys named `but`."""
    return tuple(
        k if k.name in but else replace(k, measured=True, keys=_measured(k.keys))
        for k in keys
    )


def _optional(keys: tuple[Key, ...], *names: str) -> tuple[Key, ...]:
    return tuple(replace(k, required=False) if k.name in names else k for k in keys)


def _required(keys: tuple[Key, ...]) -> tuple[Key, ...]:
    return tuple(replace(k, required=True) for k in keys)


def _without(keys: tuple[Key, ...], *names: str) -> tuple[Key, ...]:
    return tuple(k for k in keys if k.name not in names)


def _after(keys: tuple[Key, ...], name: str, *new: Key) -> tuple[Key, ...]:
    at = [k.name for k in keys].index(name) + 1
    return (*keys[:at], *new, *keys[at:])


def _with(keys: tuple[Key, ...], name: str, **changes: object) -> tuple[Key, ...]:
    return tuple(replace(k, **changes) if k.name == name else k for k in keys)  # type: ignore[arg-type]


_STATUS = rules.one_of("online", "offline")
_EP_TYPES = rules.one_of("0", "1", "2", "3", "4", shown='"0".."4"')
_MEDIA_TYPES = rules.one_of("photo", "rtsp", "file", "gb28181")
_TEMPERATURE = rules.number(TEMPERATURE_MIN, TEMPERATURE_MAX)
_RATE = rules.number(0, 1)  # "满值为1"
_GB = rules.number(0, None)
_PORT = rules.number(1, 65535)

# -- the seed (v1) and its V2R1C01 MQ variant (v2): the project's payload ----------

_V1_TOP = (
    Key("gateway_ip", "string", rule=rules.ip),
    Key("gateway_name", "string", rule=rules.non_empty),
    Key("gateway_status", "string", rule=_STATUS),
    Key("gateway_sn", "string", rule=rules.non_empty),
    Key("dev_sno", "string", rule=rules.non_empty),
)
_V1_EXT = (
    Key("sw_version", "string"),
    Key("sdk_version", "string", False),
    Key("gateway_mac", "string", False, rules.mac),
    Key("cpu_usage", "float", False, rules.number(0, 100, 1)),
    Key("memory_size", "float", False, rules.number(0, None, 2)),
    Key("memory_usage", "float", False, rules.number(0, 1, 2)),
    Key("disk_size", "float", False, rules.number(0, None, 2)),
    Key("disk_free_size", "float", False, rules.number(0, None, 2)),
    Key("temperature", "int", False, rules.number(TEMPERATURE_MIN, TEMPERATURE_MAX, 0)),
)
_V1_DEVICE = (
    Key("ep_id", "string"),
    Key("ep_name", "string", False, empty_ok=True),
    Key("ep_ip", "string", rule=rules.ip),
    Key("ep_status", "string", rule=_STATUS),
    Key("ep_location", "string", rule=rules.non_empty),
    Key("ep_type", "string", rule=_EP_TYPES),
    Key("ep_url", "string", False),
)
_EP_COLUMNS = ("ep_ip", "ep_name", "ep_status", "ep_type", "ep_location", "ep_url")
_V1_DEVICES = Devices("sub_devices", "ep_ip", "ep_status", ("ep_ip",), sorted_by_ip=True,
                      ep_id=True,
                      columns=_EP_COLUMNS)
_EP_EXT = Key("ep_ext_data", "object", keys=(
    Key("sw_version", "string", False), Key("group_name", "string", False)))


def _report(top: tuple[Key, ...], ext: tuple[Key, ...], device: tuple[Key, ...]) -> tuple[Key, ...]:
    return (*top, Key("gateway_ext_data", "object", keys=ext),
            Key("sub_devices", "array", keys=device))


_V1 = _report(_V1_TOP, _V1_EXT, _V1_DEVICE)
_V2 = _report(
    _optional(_V1_TOP, "dev_sno"),
    _optional(_V1_EXT, "sw_version"),
    (*_optional(_without(_V1_DEVICE, "ep_url"), "ep_location"), _EP_EXT),
)

# -- the vendor's tables ----------------------------------------------------------

_F_TOP = _with(_V1_TOP, "gateway_ip", rule=rules.ips)
# F1 ("设备状态上报内容", V2R1C01): the seed's keys without temperature; metrics optional.
_F1_EXT = (
    Key("sw_version", "string"),
    Key("sdk_version", "string", False),
    Key("gateway_mac", "string", False, rules.mac),
    Key("cpu_usage", "float", False, rules.number(0, 100)),  # "百分比"
    Key("memory_size", "float", False, _GB),
    Key("memory_usage", "float", False, _RATE),
    Key("disk_size", "float", False, _GB),
    Key("disk_free_size", "float", False, _GB),
)
_F1 = _report(_F_TOP, _F1_EXT, _V1_DEVICE)
# F2 (the same document in V2R2C01 onward): every metric required, temperature added,
# ep_type "2" (IPC static) gone.
_F2_EXT = _measured(
    (*_required(_F1_EXT), Key("temperature", "int", rule=_TEMPERATURE)), "sw_version")
_F2_DEVICE = _with(_V1_DEVICE, "ep_type", rule=rules.one_of("0", "1", "3", "4"))
_F2 = _report(_F_TOP, _F2_EXT, _F2_DEVICE)
# F3: F2 with the port of the box's application after dev_sno.
_PORT_KEY = Key("gateway_port", "int", rule=_PORT)
_F3_TOP = _after(_F_TOP, "dev_sno", _PORT_KEY)
_F3 = _report(_F3_TOP, _F2_EXT, _F2_DEVICE)


def _region(name: str) -> Key:
    """One memory region of memory_info: its share and its sizes."""
    return Key(name, "object", keys=(
        Key(f"{name}_scale", "float", rule=_RATE), Key("total", "string", rule=rules.size),
        Key("free", "string", rule=rules.size), Key("used", "string", rule=rules.size)))


_REGIONS = (_region("system"), _region("tpu"), _region("video"))
# F4 ("设备状态上报内容", 5.6, V2R6C01 and V5R6C01): nested metrics.
_CPU_INFO = Key("cpu_info", "object", keys=(
    Key("cpu_rate", "float", rule=_RATE),
    Key("info", "object", keys=(
        Key("cpu_type", "string"), Key("cpu_freg", "string"),
        Key("cpu_count", "string", rule=rules.count))),
))
_MEMORY_INFO = Key("memory_info", "object", keys=(
    Key("hardware_total_memory", "string", rule=rules.size),
    Key("total_memory", "string", rule=rules.size),
    Key("total_free_memory", "string", rule=rules.size),
    Key("total_used_memory", "string", rule=rules.size),
    Key("total_memory_scale", "float", rule=_RATE),
    *_REGIONS,
))
_DISK_INFO = Key("disk_info", "object", keys=(
    Key("hardware_total_disk", "string", rule=rules.size),
    Key("disk_rate", "float", rule=_RATE),
    Key("total_disk", "string", rule=rules.size),
    Key("free_disk", "string", rule=rules.size),
    Key("used_disk", "string", rule=rules.size),
))
_IDS = (Key("sw_version", "string"), Key("sdk_version", "string"),
        Key("gateway_mac", "string", rule=rules.mac))
_F4_EXT = _measured((*_IDS, _CPU_INFO, _MEMORY_INFO, _DISK_INFO,
                     Key("temperature", "int", rule=_TEMPERATURE)), "sw_version")
_F4 = _report(_F3_TOP, _F4_EXT, _F2_DEVICE)
# F5 ("系统状态信息上报", V5R7C01): the box alone, with disks, fan, uptime and TPU.
_F5_EXT = _measured((
    *_IDS, _CPU_INFO, _MEMORY_INFO, _DISK_INFO,
    Key("external_hard_drives_info", "object", keys=(
        Key("external_hard_state", "string", rule=rules.one_of("0", "1")),
        Key("external_hard_disk_rate", "float", rule=_RATE),
        Key("external_hard_total_disk", "string", rule=rules.size),
        Key("external_hard_free_disk", "string", rule=rules.size),
        Key("external_hard_used_disk", "string", rule=rules.size))),
    Key("temperature", "int", rule=_TEMPERATURE),
    Key("board_temperature", "int", rule=_TEMPERATURE),
    Key("nnsdk_version", "string"),
    Key("fan_speed", "string", rule=rules.speed),
    Key("uptime", "string"),
    Key("tpu_info", "object", keys=(
        Key("tpu_rate", "float", rule=_RATE),
        Key("info", "object", keys=(Key("detail", "string"),)))),
), "sw_version")
_F5 = (*_F3_TOP, Key("gateway_ext_data", "object", keys=_F5_EXT))
# F6 ("采集端设备状态信息上报", V5R7C01): the sub-devices alone, typed by media.
_F6 = (
    Key("dev_sno", "string", rule=rules.non_empty),
    Key("sub_devices", "array", keys=(
        Key("ep_id", "string"),
        Key("ep_ip", "string", rule=rules.ip),
        Key("ep_status", "string", rule=_STATUS),
        Key("ep_location", "string", rule=rules.non_empty),
        Key("ep_type", "string", rule=_MEDIA_TYPES),
        Key("ep_name", "string", False, empty_ok=True),
    )),
)


def _disk(name: str) -> Key:
    return Key(name, "object", keys=(
        Key("mount_status", "bool"),
        Key("nominal_capacity", "string", rule=rules.size),
        Key("disk_usage", "float", rule=_RATE),
        Key("total_disk", "string", rule=rules.size),
        Key("free_disk", "string", rule=rules.size),
        Key("used_disk", "string", rule=rules.size)))


# F7 ("系统状态信息上报", V6R1C01 = V6R2C01). Its table names the disks `disk_info` and
# `external_hard_drives_info` but describes them, and its example sends them, as
# `emmc` and `hdd`: the sub-tables are the only description of their keys.
_F7 = (
    *_without(_F_TOP, "dev_sno"),
    Key("gateway_mac", "string", rule=rules.mac, measured=True),
    Key("reporter_id", "string", rule=rules.non_empty),
    Key("gateway_ext_data", "object", keys=_measured((
        Key("cpu_info", "object", keys=(
            Key("cur_cpu_usage", "float", rule=_RATE),
            Key("cpu_arch", "string"), Key("cpu_freg", "string"),
            Key("cpu_cores", "string", rule=rules.count))),
        Key("memory_info", "object", keys=(
            Key("total_memory", "string", rule=rules.size),
            Key("svt_memory", "string", rule=rules.size),
            Key("svt_free_memory", "string", rule=rules.size),
            Key("svt_used_memory", "string", rule=rules.size),
            Key("svt_memory_usage", "float", rule=_RATE),
            *_REGIONS)),
        _disk("emmc"),
        _disk("hdd"),
        Key("core_temperature", "float", rule=_TEMPERATURE),
        Key("board_temperature", "float", rule=_TEMPERATURE),
        Key("fan_speed", "float", rule=_GB),
        Key("uptime", "string"),
        Key("tpu_info", "object", keys=(
            Key("tpu_usage", "float", rule=_RATE), Key("tpu_description", "string"))),
    ))),
)
# F8 ("采集端设备状态信息上报", V6): the media devices. Both documents' examples call the
# list `sub_devices`; their tables say `media_devices`.
_F8 = (
    Key("mq_license_key", "string", rule=rules.non_empty),
    Key("media_devices", "array", aliases=("sub_devices",), keys=(
        Key("media_device_id", "string", rule=rules.non_empty),
        Key("media_device_name", "string"),
        Key("media_device_url", "string", rule=rules.non_empty),
        Key("media_device_ip", "string", rule=rules.ip),
        Key("media_device_status", "string", rule=_STATUS),
        Key("media_device_type", "string", rule=_MEDIA_TYPES),
        Key("permission_id", "string"),
    )),
)

_EP = Devices("sub_devices", "ep_ip", "ep_status", ("ep_ip",), ep_id=True, columns=_EP_COLUMNS)
_SEED_DOC = "设备状态上报内容"
_BOX = ("gateway_sn",)
_OURS = "docs/protocol.md's"  # the seed's key order is this project's own table
FORMATS: dict[FormatName, Format] = {f.name: f for f in (
    Format("v1", f"the seed {_SEED_DOC} (this project's payload)", "both", _V1, _V1_DEVICES,
           _BOX, _OURS),
    Format("v2", f"{_SEED_DOC}, V2R1C01 MQ 7.3 variant", "both", _V2,
           replace(_V1_DEVICES, columns=(*_EP_COLUMNS[:-1], "ep_ext_data")), _BOX, _OURS),
    Format("F1", f"{_SEED_DOC} (V2R1C01)", "both", _F1, _EP, _BOX),
    Format("F2", f"{_SEED_DOC} (V2R2C01-V2R4C01, V5R2C01-V5R5C01)", "both", _F2, _EP, _BOX),
    Format("F3", f"{_SEED_DOC} with gateway_port (4.5, V2R6C01 onward)", "both", _F3, _EP, _BOX),
    Format("F4", f"{_SEED_DOC}, nested metrics (5.6, V2R6C01, V5R6C01)", "both", _F4, _EP, _BOX),
    Format("F5", "系统状态信息上报 (V5R7C01)", "gateway", _F5, None, _BOX),
    Format("F6", "采集端设备状态信息上报 (V5R7C01)", "devices", _F6,
           Devices("sub_devices", "ep_ip", "ep_status", ("ep_id",), ep_id=True, ep_id_is_ip=False,
                   columns=("ep_ip", "ep_name", "ep_status", "ep_type", "ep_location", "ep_id")),
           ("dev_sno",)),
    Format("F7", "系统状态信息上报 (V6R1C01, V6R2C01)", "gateway", _F7, None, _BOX, code=None),
    Format("F8", "采集端设备状态信息上报 (V6R1C01, V6R2C01)", "devices", _F8,
           Devices("media_devices", "media_device_ip", "media_device_status",
                   ("media_device_id", "media_device_url"),
                   columns=("media_device_ip", "media_device_name", "media_device_status",
                            "media_device_type", "media_device_id", "media_device_url",
                            "permission_id")),
           ("mq_license_key",), code="mq_license_key"),
)}
FORMAT_NAMES: tuple[FormatName, ...] = tuple(FORMATS)
