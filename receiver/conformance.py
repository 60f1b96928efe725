"""The conformance check of a status report, against the table of its format.

`check_report` is pure: bytes in, the parsed JSON and a list of violations out,
each naming its path (`sub_devices[1].ep_type: '9' is not one of "0".."4"`);
`inspect` also lists the measured values the body leaves out (a box that cannot
measure them says so by leaving them out; see `receiver.tables`);
`check_headers` does the same for the POST's Content-Type and X-Report-Id;
`versions_matched` says which of some formats a body conforms to.
The reference platform shows these on its page and, in strict mode, refuses
the report with them.

The formats are data (`receiver.tables.FORMATS`): this module walks a table
(types, required keys, key order, value rules, nested objects and lists) and
applies the checks across a list of devices its `Devices` entry asks for.

Judgement calls where the documents are terse: a JSON integer is accepted where
a float is asked for (`6` for `6.0`: JSON does not tell them apart), never the
other way round; a value is JSON only if it parses without `NaN`/`Infinity`;
a key given twice in one object is a violation, because platforms disagree on
which copy wins; names and serials that identify something must not be empty
or whitespace alone; the Content-Type names its charset, as the bridge sends it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise

from receiver.rules import describe, ip_key, type_name
from receiver.tables import FORMAT_NAMES, FORMATS, Devices, Format, FormatName, Key

__all__ = ["FORMAT_NAMES", "Verdict", "check_headers", "check_payload", "check_query",
           "check_report",
           "inspect", "parse_report", "versions_matched"]


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


_KINDS: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
_KIND_NAMES = {
    "string": "a string",
    "float": "a number",
    "int": "an integer",
    "bool": "a boolean",
    "object": "an object",
    "array": "an array",
}


@dataclass
class Verdict:
    """What the check of one body found: violations of the table, and the measured values
    it leaves out (allowed: a box sends only what it measures)."""

    violations: list[str] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)


def _present(obj: dict[str, object], key: Key) -> str | None:
    """The name `key` has in `obj`: its own, else the first alias given; None if absent."""
    if key.name in obj:
        return key.name
    return next((alias for alias in key.aliases if alias in obj), None)


# The rank of each name (aliases included) in a table, by the table: the same tables
# are walked for every device of every report, so each is ranked once.
_RANKS: dict[int, tuple[tuple[Key, ...], dict[str, int]]] = {}


def _ranks(keys: tuple[Key, ...]) -> dict[str, int]:
    found = _RANKS.get(id(keys))
    if found is None or found[0] is not keys:
        rank = {name: i for i, key in enumerate(keys) for name in (key.name, *key.aliases)}
        found = _RANKS[id(keys)] = (keys, rank)  # holds `keys`, so its id stays its own
    return found[1]


class _Walk:
    """One walk of a body through a format's table."""

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt
        self.out = Verdict()

    def walk_object(self, path: str, obj: dict[str, object], keys: tuple[Key, ...]) -> None:
        where = f"{path}." if path else ""
        violations = self.out.violations
        violations += [f"{where}{k}: key given more than once"
                       for k in getattr(obj, "duplicates", [])]
        order = _ranks(keys)
        inner: list[tuple[str, Key, object]] = []
        for key in keys:
            name = key.name if key.name in obj else _present(obj, key) if key.aliases else None
            if name is None:
                if key.measured:
                    self.out.unmeasured.append(f"{where}{key.name}")
                elif key.required:
                    violations.append(f"{where}{key.name}: required key is missing")
                continue
            if key.aliases:
                violations += [f"{where}{other}: given beside {name!r}, another name of one "
                               "key" for other in (key.name, *key.aliases)
                               if other != name and other in obj]
            value = obj[name]
            if value is None and not key.required:
                violations.append(f"{where}{name}: null is not allowed (leave the key out)")
            elif not _KINDS[key.kind](value):
                expected = _KIND_NAMES[key.kind]
                violations.append(f"{where}{name}: expected {expected}, got {describe(value)}")
            elif key.measured and value == "":
                self.out.unmeasured.append(f"{where}{name}")
            elif key.rule is not None and (problem := key.rule(value)) is not None:
                violations.append(f"{where}{name}: {problem}")
            elif (not key.required and not key.empty_ok and isinstance(value, str)
                  and not value.strip()):
                violations.append(f"{where}{name}: {value!r} is blank: an optional value "
                                  "that is not known is left out, not sent empty")
            elif key.keys:
                inner.append((f"{where}{name}", key, value))
        violations += [f"{where}{name}: unknown key" for name in obj if name not in order]
        known = [name for name in obj if name in order]
        for first, second in pairwise(known):
            if order[first] > order[second]:
                violations.append(
                    f"{path or 'body'}: key {first!r} comes before {second!r}, "
                    f"against {self.fmt.order_of} key order"
                )
                break
        for inner_path, key, value in inner:
            if isinstance(value, dict):
                self.walk_object(inner_path, value, key.keys)
            elif isinstance(value, list):
                self.walk_array(inner_path, value, key.keys, obj)

    def walk_array(self, path: str, items: list[object], keys: tuple[Key, ...],
              parent: dict[str, object]) -> None:
        devices = self.fmt.devices
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                self.out.violations.append(f"{path}[{i}]: expected an object, got "
                                           f"{type_name(item)}")
                continue
            self.walk_object(f"{path}[{i}]", item, keys)
            if devices is not None and devices.ep_id:
                self._ep_id(f"{path}[{i}]", item, devices, parent.get("dev_sno"))
        if devices is not None:
            self._across(path, items, devices)

    def _ep_id(self, path: str, device: dict[str, object], devices: Devices,
               dev_sno: object) -> None:
        ep_id, ep_ip = device.get("ep_id"), device.get(devices.ip)
        if not isinstance(dev_sno, str) or not isinstance(ep_id, str):
            return
        if not devices.ep_id_is_ip:
            if not ep_id.startswith(f"{dev_sno}__") or ep_id == f"{dev_sno}__":
                self.out.violations.append(
                    f"{path}.ep_id: {ep_id!r} is not dev_sno + '__' + an address or stream URL")
            return
        if not isinstance(ep_ip, str) or ep_ip != ep_ip.strip() or ip_key(ep_ip) is None:
            return  # a violation already
        expected = f"{dev_sno}__{ep_ip}"
        if ep_id != expected:
            self.out.violations.append(
                f"{path}.ep_id: {ep_id!r} is not dev_sno + '__' + ep_ip ({expected!r})")

    def _across(self, path: str, items: list[object], devices: Devices) -> None:
        for unique in devices.unique:
            seen: dict[object, int] = {}
            for i, item in enumerate(items):
                value = item.get(unique) if isinstance(item, dict) else None
                if not isinstance(value, str):
                    continue
                key = ip_key(value) if unique == devices.ip else value
                if key is None:
                    continue
                if key in seen:
                    self.out.violations.append(
                        f"{path}[{i}].{unique}: {value!r} repeats {path}[{seen[key]}]")
                seen.setdefault(key, i)
        if devices.sorted_by_ip:
            self._sorted(path, items, devices.ip)

    def _sorted(self, path: str, items: Iterable[object], ip: str) -> None:
        sortable = []
        for i, item in enumerate(items):
            value = item.get(ip) if isinstance(item, dict) else None
            key = ip_key(value) if isinstance(value, str) and value == value.strip() else None
            if key is not None and isinstance(value, str):
                sortable.append((key, i, value))
        for (key_a, i, ip_a), (key_b, j, ip_b) in pairwise(sortable):
            if key_a > key_b:
                self.out.violations.append(
                    f"{path}: not sorted by {ip} ([{i}] {ip_a!r} comes before [{j}] {ip_b!r})")
                break


def parse_report(body: bytes) -> tuple[object | None, list[str]]:
    """The JSON value of a report body and [], or None and why it is not UTF-8 JSON."""
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
    return data, []


def check_report(body: bytes, fmt: FormatName = "v1") -> tuple[object | None, list[str]]:
    """Parse one report body; return (the JSON value or None, its violations of `fmt`).

    The value is None only when the body is not UTF-8 JSON at all.
    """
    data, problems = parse_report(body)
    return data, problems or check_payload(data, fmt)


def inspect(data: object, fmt: FormatName = "v1") -> Verdict:
    """The violations of format `fmt` in a parsed body, and the measured values it leaves
    out."""
    walk = _Walk(FORMATS[fmt])
    if not isinstance(data, dict):
        walk.out.violations.append(f"body: expected a JSON object, got {type_name(data)}")
    else:
        walk.walk_object("", data, walk.fmt.keys)
    return walk.out


def check_payload(data: object, fmt: FormatName = "v1") -> list[str]:
    """The violations of format `fmt` in a body already parsed by `parse_report`."""
    return inspect(data, fmt).violations


def versions_matched(
    data: object,
    known: tuple[FormatName, list[str]] | None = None,
    candidates: Iterable[FormatName] = ("v1", "v2"),
) -> list[FormatName]:
    """Which of `candidates` a parsed body conforms to, in their order; [] for none.

    `known`: a format already checked and its violations, not checked again
    (a report of 10,000 devices takes about half a second per format).
    """
    if data is None:
        return []
    found = dict([known]) if known is not None else {}
    return [fmt for fmt in candidates
            if not (found[fmt] if fmt in found else check_payload(data, fmt))]


def check_query(dev_sno: str | None, payload: object, fmt: FormatName = "v1") -> list[str]:
    """The query's `dev_sno` (a login-issued address's) names the body's authorisation code
    (`dev_sno`; F8's `mq_license_key`): one report, one authorisation code."""
    key = FORMATS[fmt].code
    body = payload.get(key) if key is not None and isinstance(payload, dict) else None
    if dev_sno is None or not isinstance(body, str) or dev_sno == body:
        return []
    return [f"query dev_sno: {dev_sno[:40]!r} is not the body's {key} {body[:40]!r}"]


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
