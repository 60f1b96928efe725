"""The conformance check of a status report, in either payload version.

`check_report` is pure: bytes in, the parsed JSON and a list of violations out,
each naming its path (`sub_devices[1].ep_type: '9' is not one of "0".."4"`);
`check_headers` does the same for the POST's Content-Type and X-Report-Id;
`versions_matched` says which payload versions a body conforms to.
The reference platform shows these on its page and, in strict mode, refuses
the report with them.

Versions (docs/payload.md): "v1" is the seed release of the vendor's
"设备状态上报内容" document; "v2" its V2R1C01 release (sophonai/bm1682), where
each device carries an `ep_ext_data` object, `ep_location`, `dev_sno` and the
gateway's `sw_version` are optional, and `ep_url` is not in the table.

Judgement calls where the documents are terse: a JSON integer is accepted where
a float is asked for (`6` for `6.0`: JSON does not tell them apart), never the
other way round; a value is JSON only if it parses without `NaN`/`Infinity`;
a key given twice in one object is a violation, because platforms disagree on
which copy wins; names and serials that identify something must not be empty
or whitespace alone; the Content-Type names its charset, as the bridge sends it.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

from bridge.fields import TEMPERATURE_MAX, TEMPERATURE_MIN
from bridge.report import FORMATS, Format

Rule = Callable[[object], str | None]

_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_EP_TYPES = ("0", "1", "2", "3", "4")


class _Object(dict[str, object]):
    """A parsed JSON object that remembers the keys it was given twice."""

    duplicates: list[str]


def _pairs(pairs: list[tuple[str, object]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        # Valid JSON syntax, but no double holds it and echoing it back would not be JSON.
        raise ValueError(f"number {text} does not fit in a double")
    return number


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _describe(value: object) -> str:
    if isinstance(value, bool | int | float | str):
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
        return f"{_type_name(value)} ({shown[:40]})"
    return _type_name(value)


def _decimals(number: float) -> int:
    exponent = Decimal(repr(number)).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


# -- value rules: each returns the complaint (without the path) or None --


def _one_of(*allowed: str) -> Rule:
    shown = '"0".."4"' if allowed == _EP_TYPES else ", ".join(allowed)
    return lambda v: None if v in allowed else f"{v!r} is not one of {shown}"


def _non_empty(value: object) -> str | None:
    if value == "":
        return "must not be empty"
    if isinstance(value, str) and not value.strip():
        return f"{value!r} is blank (whitespace only)"
    return None


def _ip(value: object) -> str | None:
    if not isinstance(value, str):
        return None  # the type check has complained already
    if value != value.strip():
        return f"{value!r} has surrounding whitespace"
    return None if _ip_key(value) is not None else f"{value!r} is not an IPv4 or IPv6 address"


def _mac(value: object) -> str | None:
    if isinstance(value, str) and _MAC.fullmatch(value):
        return None
    return f"{value!r} is not a lower-case MAC like aa:bb:cc:dd:ee:ff"


def _number(low: float, high: float | None, places: int) -> Rule:
    def rule(value: object) -> str | None:
        if not isinstance(value, int | float):
            return None  # the type check has complained already
        if value < low or (high is not None and value > high):
            bounds = f"{low:g}..{high:g}" if high is not None else f">= {low:g}"
            return f"{value!r} is out of range {bounds}"
        if isinstance(value, float) and _decimals(value) > places:
            return f"{value!r} has more than {places} decimal{'s' if places > 1 else ''}"
        return None

    return rule


@dataclass(frozen=True)
class _Key:
    name: str
    required: bool
    kind: str  # "string" | "float" | "int" | "object" | "array"
    rule: Rule | None = None


_STATUS = _one_of("online", "offline")
_GB = _number(0, None, 2)

_TOP = (
    _Key("gateway_ip", True, "string", _ip),
    _Key("gateway_name", True, "string", _non_empty),
    _Key("gateway_status", True, "string", _STATUS),
    _Key("gateway_sn", True, "string", _non_empty),
    _Key("dev_sno", True, "string", _non_empty),
    _Key("gateway_ext_data", True, "object"),
    _Key("sub_devices", True, "array"),
)
_EXT = (
    _Key("sw_version", True, "string"),
    _Key("sdk_version", False, "string"),
    _Key("gateway_mac", False, "string", _mac),
    _Key("cpu_usage", False, "float", _number(0, 100, 1)),
    _Key("memory_size", False, "float", _GB),
    _Key("memory_usage", False, "float", _number(0, 1, 2)),
    _Key("disk_size", False, "float", _GB),
    _Key("disk_free_size", False, "float", _GB),
    _Key("temperature", False, "int", _number(TEMPERATURE_MIN, TEMPERATURE_MAX, 0)),
)
_DEVICE = (
    _Key("ep_id", True, "string"),
    _Key("ep_name", False, "string"),
    _Key("ep_ip", True, "string", _ip),
    _Key("ep_status", True, "string", _STATUS),
    _Key("ep_location", True, "string", _non_empty),
    _Key("ep_type", True, "string", _one_of(*_EP_TYPES)),
    _Key("ep_url", False, "string"),
)


def _optional(keys: tuple[_Key, ...], *names: str) -> tuple[_Key, ...]:
    return tuple(_Key(k.name, False, k.kind, k.rule) if k.name in names else k for k in keys)


@dataclass(frozen=True)
class _Schema:
    top: tuple[_Key, ...]
    ext: tuple[_Key, ...]
    device: tuple[_Key, ...]
    device_ext: tuple[_Key, ...] = ()  # the keys of each device's ep_ext_data, if it has one


_SCHEMAS: dict[Format, _Schema] = {
    "v1": _Schema(_TOP, _EXT, _DEVICE),
    # The V2R1C01 table: ep_location is deprecated, ep_url gone, ep_ext_data new.
    "v2": _Schema(
        _optional(_TOP, "dev_sno"),
        _optional(_EXT, "sw_version"),
        (*_optional(tuple(k for k in _DEVICE if k.name != "ep_url"), "ep_location"),
         _Key("ep_ext_data", True, "object")),
        (_Key("sw_version", False, "string"), _Key("group_name", False, "string")),
    ),
}

_KINDS: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
_KIND_NAMES = {
    "string": "a string",
    "float": "a number",
    "int": "an integer",
    "object": "an object",
    "array": "an array",
}


def _check_object(path: str, obj: dict[str, object], keys: tuple[_Key, ...]) -> list[str]:
    where = f"{path}." if path else ""
    out = [f"{where}{k}: key given more than once" for k in getattr(obj, "duplicates", [])]
    order = {key.name: i for i, key in enumerate(keys)}
    for key in keys:
        if key.name not in obj:
            if key.required:
                out.append(f"{where}{key.name}: required key is missing")
            continue
        value = obj[key.name]
        if value is None and not key.required:
            out.append(f"{where}{key.name}: null is not allowed (leave the key out)")
        elif not _KINDS[key.kind](value):
            expected = _KIND_NAMES[key.kind]
            out.append(f"{where}{key.name}: expected {expected}, got {_describe(value)}")
        elif key.rule is not None and (problem := key.rule(value)) is not None:
            out.append(f"{where}{key.name}: {problem}")
    out += [f"{where}{name}: unknown key" for name in obj if name not in order]
    known = [name for name in obj if name in order]
    for first, second in pairwise(known):
        if order[first] > order[second]:
            out.append(
                f"{path or 'body'}: key {first!r} comes before {second!r}, "
                "against the contract's key order"
            )
            break
    return out


def _ip_key(text: str) -> tuple[int, int] | None:
    """(version, value) of an IP address, for sorting; None if `text` is not one."""
    return _parse_ip(text) if len(text) <= _IP_MAX else None


_IP_MAX = 64  # longer than any address with a scope worth keeping in the cache


# The same devices come in every report, and parsing addresses was the check's
# largest cost: remember the answers (a few MB at most).
@functools.lru_cache(maxsize=1 << 16)
def _parse_ip(text: str) -> tuple[int, int] | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.version, int(address)


def _check_devices(report: dict[str, object], schema: _Schema) -> list[str]:
    devices = report.get("sub_devices")
    if not isinstance(devices, list):
        return []
    out: list[str] = []
    dev_sno = report.get("dev_sno")
    sortable: list[tuple[tuple[int, int], int, str]] = []
    for i, device in enumerate(devices):
        path = f"sub_devices[{i}]"
        if not isinstance(device, dict):
            out.append(f"{path}: expected an object, got {_type_name(device)}")
            continue
        out += _check_object(path, device, schema.device)
        extra = device.get("ep_ext_data")
        if schema.device_ext and isinstance(extra, dict):
            out += _check_object(f"{path}.ep_ext_data", extra, schema.device_ext)
        ep_ip, ep_id = device.get("ep_ip"), device.get("ep_id")
        if not isinstance(ep_ip, str) or ep_ip != ep_ip.strip():
            continue  # a violation already
        key = _ip_key(ep_ip)
        if key is not None:
            sortable.append((key, i, ep_ip))
            if isinstance(dev_sno, str) and isinstance(ep_id, str):
                expected = f"{dev_sno}__{ep_ip}"
                if ep_id != expected:
                    out.append(
                        f"{path}.ep_id: {ep_id!r} is not dev_sno + '__' + ep_ip ({expected!r})"
                    )
    seen: dict[tuple[int, int], int] = {}
    for key, i, ep_ip in sortable:
        if key in seen:
            out.append(f"sub_devices[{i}].ep_ip: {ep_ip!r} repeats sub_devices[{seen[key]}]")
        seen.setdefault(key, i)
    for (key_a, i, ip_a), (key_b, j, ip_b) in pairwise(sortable):
        if key_a > key_b:
            out.append(
                f"sub_devices: not sorted by ep_ip ([{i}] {ip_a!r} comes before [{j}] {ip_b!r})"
            )
            break
    return out


def check_report(body: bytes, fmt: Format = "v1") -> tuple[object | None, list[str]]:
    """Parse one report body; return (the JSON value or None, its violations of `fmt`).

    The value is None only when the body is not UTF-8 JSON at all.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"body: not UTF-8 ({exc.reason} at byte {exc.start})"]
    try:
        data: object = json.loads(
            text, object_pairs_hook=_pairs, parse_constant=_no_constant, parse_float=_finite
        )
    except (ValueError, RecursionError) as exc:
        return None, [f"body: not JSON ({exc})"]
    return data, check_payload(data, fmt)


def check_payload(data: object, fmt: Format = "v1") -> list[str]:
    """The violations of payload version `fmt` in a body already parsed by `check_report`."""
    if not isinstance(data, dict):
        return [f"body: expected a JSON object, got {_type_name(data)}"]
    schema = _SCHEMAS[fmt]
    violations = _check_object("", data, schema.top)
    ext = data.get("gateway_ext_data")
    if isinstance(ext, dict):
        violations += _check_object("gateway_ext_data", ext, schema.ext)
    return violations + _check_devices(data, schema)


def versions_matched(
    data: object, known: tuple[Format, list[str]] | None = None
) -> list[Format]:
    """The payload versions that a parsed body conforms to, oldest first; [] for none.

    `known`: a version already checked and its violations, not checked again
    (a report of 10,000 devices takes about half a second per version).
    """
    if data is None:
        return []
    found = dict([known]) if known is not None else {}
    return [fmt for fmt in FORMATS
            if not (found[fmt] if fmt in found else check_payload(data, fmt))]


def check_headers(content_type: str | None, report_id: str | None, payload: object) -> list[str]:
    """Violations of the POST's headers: JSON in UTF-8, `X-Report-Id: {sn}-{boot}-{seq}`."""
    out: list[str] = []
    media, _, params = (content_type or "").partition(";")
    # No default charset: the bridge always names it, and a platform that
    # decodes by the header alone must not have to guess.
    charset = params.strip().lower().removeprefix("charset=").strip('"') if params else ""
    if media.strip().lower() != "application/json" or charset not in ("utf-8", "utf8"):
        out.append(f"header Content-Type: {content_type!r} is not application/json; charset=utf-8")
    if report_id is None:
        return [*out, "header X-Report-Id: missing"]
    sn = payload.get("gateway_sn") if isinstance(payload, dict) else None
    pattern = rf"{re.escape(sn)}-[^\s]+-[0-9]+" if isinstance(sn, str) and sn else None
    if pattern is not None and not re.fullmatch(pattern, report_id):
        out.append(f"header X-Report-Id: {report_id!r} is not {{gateway_sn}}-{{boot}}-{{seq}}")
    return out
