"""The MQTT records (docs/topics.md) and the one parser that admits them.

A record is the JSON object a collector or an app publishes, retained, for one
subject. `parse_record` turns raw bytes into a validated, frozen record (a pydantic
model; a slotted pydantic dataclass for a device, held by the thousand) or raises
`RecordError` with a reason fit for a log line and a `bridge/errors` event; it
never raises anything else (pinned down by a property-based test).

Types are strict: `"ep_type": 2` is refused, not coerced, because an app that
sends numbers where the platform wants strings is a bug worth hearing about.
Keys the protocol does not name are ignored, so newer publishers keep working.

No string may hold control characters (C0, DEL, C1) or the invisible bidi and
line-separator marks: a NUL makes a platform on PostgreSQL refuse every report,
and bidi marks make a name display as something else. Only `sw_version` keeps
its line breaks.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.dataclasses import dataclass

from bridge.addresses import canonical_ip
from bridge.errors import RecordError
from bridge.fields import (
    TEMPERATURE_MAX,
    TEMPERATURE_MIN,
    ExtText,
    Location,
    Name,
    Url,
    no_control,
)
from bridge.hide import without_credentials
from bridge.rules import DevSno, GatewayName
from bridge.topics import Kind

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
Status = Literal["online", "offline"]
EpType = Literal["0", "1", "2", "3", "4"]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Bytes = Annotated[int, Field(ge=0, le=1 << 60)]
Celsius = Annotated[float, Field(ge=TEMPERATURE_MIN, le=TEMPERATURE_MAX, allow_inf_nan=False)]
MediaType = Literal["photo", "rtsp", "file", "gb28181"]
Short = Annotated[str, Field(max_length=256)]
# Checked against a strict format by their own validators (surrounding blanks allowed).
_FORMATTED = frozenset({"gateway_ip", "ep_ip", "gateway_mac"})


def _blank_is_unknown(value: object) -> object:
    """An optional key sent as "" is unknown: left out of the report, not sent empty."""
    return None if isinstance(value, str) and not value.strip() else value


Unknown = BeforeValidator(_blank_is_unknown)


# Every record: strict, unknown keys ignored (and frozen).
_STRICT = ConfigDict(strict=True, extra="ignore")
Source = Annotated[str, Field(min_length=1, max_length=128)]
# A record that may expire: `ts` (publisher's Unix time) and `ttl` (seconds).
Ts = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Ttl = Annotated[float, Field(gt=0, le=30 * 86400, allow_inf_nan=False)]


def _no_control_characters(value: object, info: ValidationInfo) -> object:
    """The check of every field of every record: no control characters in a string."""
    if info.context is _PLAIN:
        return value  # nothing to find: see _plain
    if isinstance(value, str) and info.field_name not in _FORMATTED:
        no_control(value, info.field_name or "")
    return value


class _Checked(BaseModel):
    """Strict, frozen, unknown keys ignored, and no control characters in any string."""

    model_config = ConfigDict(**_STRICT, frozen=True)
    _no_control = field_validator("*")(_no_control_characters)


class _Record(_Checked):
    source: Source | None = None


class _Fresh(_Record):
    ts: Ts | None = None
    ttl: Ttl | None = None


def _ip(value: str) -> str:
    return canonical_ip(value.strip())


class GatewayInfo(_Record):
    gateway_ip: Short
    gateway_name: GatewayName
    dev_sno: DevSno
    sw_version: Annotated[str, Field(max_length=4096)]
    sdk_version: Annotated[Short | None, Unknown] = None
    gateway_mac: Annotated[Short | None, Unknown] = None

    @field_validator("gateway_ip")
    @classmethod
    def _gateway_ip(cls, value: str) -> str:
        return _ip(value)

    @field_validator("gateway_mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if value is None:
            return None
        mac = value.strip().lower().replace("-", ":")
        if not _MAC.match(mac):
            raise ValueError("must look like aa:bb:cc:dd:ee:ff")
        return mac


class GatewayMetrics(_Fresh):
    """What any Linux host measures of itself (collectors/host.py); each key optional."""

    cpu_usage: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    memory_size: NonNegative | None = None
    memory_usage: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    disk_size: NonNegative | None = None
    disk_free_size: NonNegative | None = None
    temperature: Annotated[int, Field(ge=TEMPERATURE_MIN, le=TEMPERATURE_MAX)] | None = None
    # The nested reports of later releases (docs/topics.md, gateway/metrics).
    cpu_model: Annotated[Short | None, Unknown] = None
    cpu_freq_mhz: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)] | None = None
    cpu_cores: Annotated[int, Field(ge=1, le=65_536)] | None = None
    memory_total_bytes: Bytes | None = None
    memory_free_bytes: Bytes | None = None
    disk_total_bytes: Bytes | None = None
    disk_free_bytes: Bytes | None = None
    uptime: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None  # seconds
    core_temperature: Celsius | None = None
    board_temperature: Celsius | None = None
    fan_speed: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)] | None = None


class DiskRecord(_Checked):
    """One disk of the hardware record, in bytes; `mounted` false: present, not mounted."""

    mounted: bool
    nominal_bytes: Bytes | None = None
    total_bytes: Bytes | None = None
    free_bytes: Bytes | None = None


class MemoryRegion(_Checked):
    """One of the Sophon memory regions (tpu, video), in bytes."""

    total_bytes: Bytes
    used_bytes: Bytes


class GatewayHardware(_Fresh):
    """What only a Sophon box knows (`gateway/hardware`, docs/hardware.md); each key optional.

    Published, retained, by a local app or `se3-collector sophon`; the bridge
    reads it for the reports of releases V2R6C01 on. A key left out is unknown.
    """

    tpu_usage: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    tpu_description: Annotated[Short | None, Unknown] = None
    tpu_memory: MemoryRegion | None = None
    video_memory: MemoryRegion | None = None
    board_memory_bytes: Bytes | None = None  # the memory on the board (all regions)
    emmc_nominal_bytes: Bytes | None = None  # the board's eMMC as sold ("32.0G")
    hdd: DiskRecord | None = None  # an external disk; left out: none is known
    nnsdk_version: Annotated[Short | None, Unknown] = None


class EpExtData(_Checked):
    """A device's `ep_ext_data`: what the V2R1C01 report carries besides the v1 keys."""

    sw_version: Annotated[ExtText | None, Unknown] = None
    group_name: Annotated[ExtText | None, Unknown] = None


@dataclass(frozen=True, slots=True, config=_STRICT)
class DeviceState:
    """A sub-device's record. The same checks as every record, but a slotted dataclass,
    not a model: a bridge holds one for each of up to 20,000 devices, and a model's
    instance (its `__dict__` and the set of the fields given) is five times the size."""

    ep_status: Status
    ep_type: EpType
    ep_location: Location
    source: Source | None = None
    ts: Ts | None = None
    ttl: Ttl | None = None
    ep_ip: Short | None = None
    ep_name: Name = ""
    ep_url: Annotated[Url | None, Unknown] = None
    ep_ext_data: EpExtData | None = None
    # The sub-device reports of V5R7C01 and V6 (docs/payload.md); each optional.
    media_type: MediaType | None = None  # else from ep_type: 0, 1, 4 photo; 2, 3 rtsp
    media_device_id: Annotated[Short | None, Unknown] = None  # else derived (stable)
    permission_id: Annotated[Short | None, Unknown] = None

    _no_control = field_validator("*")(_no_control_characters)

    @field_validator("ep_ip")
    @classmethod
    def _ep_ip(cls, value: str | None) -> str | None:
        return None if value is None else _ip(value)


Record = GatewayInfo | GatewayMetrics | GatewayHardware | DeviceState

_MODELS: dict[Kind, type[Record]] = {
    Kind.GATEWAY_INFO: GatewayInfo,
    Kind.GATEWAY_METRICS: GatewayMetrics,
    Kind.GATEWAY_HARDWARE: GatewayHardware,
    Kind.DEVICE_STATE: DeviceState,
}
# Each record is validated straight from its JSON bytes (no dict in between).
_ADAPTERS: dict[type[Record], TypeAdapter[Any]] = {
    model: TypeAdapter(model) for model in _MODELS.values()
}

R = TypeVar("R", GatewayInfo, GatewayMetrics, GatewayHardware, DeviceState)


def owned(record: DeviceState, owner: str) -> DeviceState:
    """An app's record with its user as `source`; RecordError if it names another."""
    if not owner or record.source == owner:
        return record
    if record.source is not None:
        raise RecordError(f"source {record.source!r} in the space of app {owner}: an app's "
                          f"records are its own (leave source out, or say {owner!r})",
                          field="source")
    return dataclasses.replace(record, source=owner)


def fields_of(record: Record) -> dict[str, Any]:
    """A record's fields as plain values (nested records as dicts), those unset left out."""
    fields: dict[str, Any] = _ADAPTERS[type(record)].dump_python(record, exclude_none=True)
    return fields


def parse_record(kind: Kind, payload: bytes, key: str = "", max_size: int = 16_384) -> Record:
    """Validate one JSON record of the model that `kind` of topic carries."""
    model = _MODELS.get(kind)
    if model is None:
        raise RecordError(f"{kind.value} does not carry a JSON record")
    record: Record = _validated(model, payload, key, max_size)
    return record


def parse_as(model: type[R], payload: bytes, key: str = "", max_size: int = 16_384) -> R:
    """Validate one JSON record as `model`; `key` is the device IP from the topic.

    Raises RecordError, and only RecordError, for anything that is not a
    conforming record.
    """
    record: R = _validated(model, payload, key, max_size)
    return record


def _validated(model: type[Record], payload: bytes, key: str, max_size: int) -> Any:
    if len(payload) > max_size:
        raise RecordError(
            f"payload of {len(payload)} bytes is over the {max_size}-byte limit", code="size"
        )
    # What is JSON is orjson's word, as everywhere in the bridge (no NaN, no integer past
    # 64 bits); the record is then built from the bytes themselves, which keeps one copy
    # of the strings that every device repeats (its location, its status, its source).
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}", code="json") from None
    if not isinstance(data, dict):
        raise RecordError(f"not a JSON object but {_json_type(data)}", code="json")
    try:
        record = _ADAPTERS[model].validate_json(
            payload, context=_PLAIN if _plain(payload) else None)
    except ValidationError as exc:
        raise _refusal(exc) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise RecordError(f"invalid record: {exc}", code="json") from None
    if isinstance(record, DeviceState) and record.ep_ip is not None and key and record.ep_ip != key:
        raise RecordError(f"ep_ip {record.ep_ip} does not match the topic's {key}", field="ep_ip")
    return record


def _refusal(exc: ValidationError) -> RecordError:
    """Why a record was refused: its first fault, and how many more."""
    err = exc.errors(include_url=False)[0]
    if err["type"] == "json_invalid":  # read by orjson, not by pydantic (nested too deep)
        return RecordError(f"not JSON: {err['msg']}", code="json")
    field = ".".join(str(p) for p in err["loc"])
    got = "" if err["type"] == "missing" else f" (got {_brief(err.get('input'))})"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" and {exc.error_count() - 1} more" if exc.error_count() > 1 else ""
    # The code is a metric label: the top-level field, from a fixed set.
    top = str(err["loc"][0]) if err["loc"] else ""
    return RecordError(f"{msg}{got}{more}", field=field, code=top)


_PLAIN: dict[str, bool] = {"plain": True}


def _plain(payload: bytes) -> bool:
    """No string in this JSON can hold a character that `bridge.fields.no_control` refuses.

    ASCII only (no C1 controls, no marks), no DEL, and no backslash, so no
    escape (`\\n`, `\\u0007`); a raw control byte inside a string is not JSON
    (orjson refuses it). Nearly every record is like this, and then the
    per-field check, a Python call for each field of each message, is skipped.
    """
    return payload.isascii() and b"\\" not in payload and b"\x7f" not in payload


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _brief(value: object) -> str:
    """A refused value as a reason shows it: short, and without URL credentials (an
    `ep_url`'s camera password reaches no log line, event or page)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(without_credentials(value) if isinstance(value, str) else value)
    return text if len(text) <= 60 else text[:57] + "..."
