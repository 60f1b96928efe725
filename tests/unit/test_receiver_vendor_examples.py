"""The vendor's own examples against the vendor's own tables (F1-F8).

Each file in vendor_examples/ is the example body of one format's document, as
printed (sophonai/bm1682; the header names the file). The documents print them
as Python dicts or as JSON with `//` comments, trailing commas and no-break
spaces; `load` reads them as printed, keeping their key order.

Where an example agrees with its table it passes; where it does not, the
table wins, and EXAMPLE_VS_TABLE lists every disagreement the check reports.
`FIXES` then repairs exactly those, and the repaired example (in table order)
has no violation left: the check finds the disagreements and nothing else.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receiver.conformance import inspect
from receiver.tables import FORMATS, FormatName, Key

_DIR = Path(__file__).with_name("vendor_examples")
ORDER = "against the vendor table's key order"


def load(name: str) -> dict[str, Any]:
    """The example of format `name` as printed, read as the documents write it."""
    text = (_DIR / f"{name}.txt").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    body = body.replace("\xa0", " ")  # F8's example indents with no-break spaces
    body = re.sub(r"\s//[^\n]*", "", body)  # F8's comment on media_device_id
    for json_name, python in (("null", "None"), ("true", "True"), ("false", "False")):
        body = re.sub(rf"\b{json_name}\b", python, body)
    value = ast.literal_eval(body)  # Python dicts, trailing commas and all
    assert isinstance(value, dict)
    return value


def in_table_order(keys: tuple[Key, ...], value: Any) -> Any:
    """`value` with every object's keys in the order of `keys` (aliases in their place)."""
    if isinstance(value, list):
        return [in_table_order(keys, item) for item in value]
    if not isinstance(value, dict):
        return value
    rank = {name: i for i, key in enumerate(keys) for name in (key.name, *key.aliases)}
    inner = {name: key.keys for key in keys for name in (key.name, *key.aliases)}
    ordered = sorted(value, key=lambda name: rank.get(name, len(rank)))
    return {name: in_table_order(inner.get(name, ()), value[name]) for name in ordered}


def _order(path: str, first: str, second: str) -> str:
    return f"{path}: key {first!r} comes before {second!r}, {ORDER}"


_SEED_FLAWS = [
    "gateway_ip: '192.168.1.251 ' has surrounding whitespace",
    _order("body", "gateway_ext_data", "gateway_sn"),
    _order("gateway_ext_data", "disk_free_size", "sw_version"),
]
_F2_FLAWS = [*_SEED_FLAWS, "sub_devices[0].ep_type: '2' is not one of 0, 1, 3, 4",
             _order("sub_devices[0]", "ep_url", "ep_type")]
_NESTED_FLAWS = [
    "gateway_ext_data.box_usage: unknown key",  # undocumented, and null
    _order("gateway_ext_data", "cpu_info", "sdk_version"),
    _order("gateway_ext_data.cpu_info", "info", "cpu_rate"),
    "gateway_ext_data.cpu_info.info.cpu_freq: unknown key",  # the table says cpu_freg
    _order("gateway_ext_data.memory_info", "video", "total_memory"),
    _order("gateway_ext_data.memory_info.system", "used", "total"),
    _order("gateway_ext_data.memory_info.tpu", "used", "tpu_scale"),
    _order("gateway_ext_data.memory_info.video", "used", "total"),
    _order("gateway_ext_data.disk_info", "used_disk", "free_disk"),
]

# format -> (the violations of its example as printed, the measured values it leaves out)
EXAMPLE_VS_TABLE: dict[FormatName, tuple[list[str], list[str]]] = {
    "F1": ([*_SEED_FLAWS, _order("sub_devices[0]", "ep_url", "ep_type")], []),
    # F2 dropped ep_type "2" and added temperature; its example kept the one, lacks the other.
    "F2": (_F2_FLAWS, ["gateway_ext_data.temperature"]),
    "F3": (_F2_FLAWS, ["gateway_ext_data.temperature"]),
    "F4": ([
        _order("body", "sub_devices", "gateway_name"),
        *_NESTED_FLAWS,
        "sub_devices[0].ep_type: '2' is not one of 0, 1, 3, 4",
        _order("sub_devices[0]", "ep_url", "ep_type"),
        # The device is F2's example's, of another box: its ep_id is of another dev_sno.
        "sub_devices[0].ep_id: 'ZKZCPI000120190807142601__192.168.1.101' is not dev_sno + "
        "'__' + ep_ip ('AAAZKE5xxJFJH0047__192.168.1.101')",
    ], ["gateway_ext_data.cpu_info.info.cpu_freg"]),
    "F5": ([
        _order("body", "gateway_port", "gateway_name"),
        *_NESTED_FLAWS,
        _order("gateway_ext_data.tpu_info", "info", "tpu_rate"),
    ], ["gateway_ext_data.cpu_info.info.cpu_freg"]),
    "F6": ([
        _order("sub_devices[0]", "ep_name", "ep_id"),
        "sub_devices[0].ep_id: 'ZKZCPI000120190807142601__192.168.1.101' is not dev_sno + "
        "'__' + an address or stream URL",
    ], []),
    "F7": ([
        "gateway_port: unknown key",  # in the example, not in the table
        _order("body", "gateway_status", "gateway_name"),
        _order("gateway_ext_data", "fan_speed", "core_temperature"),
        "gateway_ext_data.cpu_info.cpu_freq: unknown key",
        _order("gateway_ext_data.cpu_info", "cpu_arch", "cur_cpu_usage"),
        _order("gateway_ext_data.memory_info", "video", "svt_free_memory"),
        _order("gateway_ext_data.memory_info.system", "used", "total"),
        _order("gateway_ext_data.memory_info.tpu", "used", "total"),
        _order("gateway_ext_data.memory_info.video", "used", "total"),
        _order("gateway_ext_data.emmc", "total_disk", "nominal_capacity"),
        _order("gateway_ext_data.hdd", "total_disk", "nominal_capacity"),
    ], ["gateway_ext_data.cpu_info.cpu_freg"]),
    # The list is `sub_devices` in both documents' examples, `media_devices` in their tables:
    # both are taken. Its items are in neither table's order.
    "F8": ([_order("sub_devices[0]", "media_device_ip", "media_device_name")], []),
}


def _rename(obj: dict[str, Any], old: str, new: str) -> None:
    obj[new] = obj.pop(old)


def _fix_nested(report: dict[str, Any]) -> None:
    ext = report["gateway_ext_data"]
    ext.pop("box_usage", None)
    cpu = ext["cpu_info"]
    _rename(cpu.get("info", cpu), "cpu_freq", "cpu_freg")


def _fix_seed(report: dict[str, Any]) -> None:
    report["gateway_ip"] = report["gateway_ip"].strip()


def _fix_f2(report: dict[str, Any]) -> None:
    _fix_seed(report)
    report["sub_devices"][0]["ep_type"] = "3"
    report["gateway_ext_data"]["temperature"] = 37  # the table's example value


def _fix_f4(report: dict[str, Any]) -> None:
    _fix_nested(report)
    device = report["sub_devices"][0]
    device["ep_type"] = "3"
    device["ep_id"] = f"{report['dev_sno']}__{device['ep_ip']}"


def _fix_f6(report: dict[str, Any]) -> None:
    device = report["sub_devices"][0]
    device["ep_id"] = f"{report['dev_sno']}__{device['ep_ip']}"


def _fix_f7(report: dict[str, Any]) -> None:
    del report["gateway_port"]
    _fix_nested(report)


FIXES: dict[FormatName, Callable[[dict[str, Any]], None]] = {
    "F1": _fix_seed, "F2": _fix_f2, "F3": _fix_f2, "F4": _fix_f4, "F5": _fix_nested,
    "F6": _fix_f6, "F7": _fix_f7, "F8": lambda _report: None,
}


@pytest.mark.parametrize("name", list(EXAMPLE_VS_TABLE))
def test_example_as_printed_shows_where_it_disagrees_with_its_table(name: FormatName) -> None:
    """The check of each example reports exactly its disagreements with its own table."""
    verdict = inspect(load(name), name)
    violations, unmeasured = EXAMPLE_VS_TABLE[name]
    assert verdict.violations == violations
    assert verdict.unmeasured == unmeasured


@pytest.mark.parametrize("name", list(EXAMPLE_VS_TABLE))
def test_example_repaired_to_its_table_passes(name: FormatName) -> None:
    """With those disagreements repaired, and its keys in table order, each example passes,
    every measured value present."""
    report = copy.deepcopy(load(name))
    FIXES[name](report)
    fixed = in_table_order(FORMATS[name].keys, report)
    assert inspect(fixed, name).violations == []
    assert inspect(fixed, name).unmeasured == []
    # and survives the trip through JSON that a real POST takes
    assert json.loads(json.dumps(fixed, ensure_ascii=False)) == fixed


def test_every_format_of_a_vendor_document_has_its_example() -> None:
    """F1-F8 each have an example file; v1/v2 are the project's own (other tests)."""
    assert sorted(p.stem for p in _DIR.glob("*.txt")) == [f"F{i}" for i in range(1, 9)]
    assert set(EXAMPLE_VS_TABLE) == {name for name in FORMATS if name.startswith("F")}


def test_f8_table_name_for_the_list_is_taken_too() -> None:
    """F8 sent with its table's `media_devices` passes as its examples' `sub_devices` does."""
    report = in_table_order(FORMATS["F8"].keys, load("F8"))
    renamed = {"mq_license_key": report["mq_license_key"],
               "media_devices": report["sub_devices"]}
    assert inspect(renamed, "F8").violations == []
    both = {**renamed, "sub_devices": report["sub_devices"]}
    assert inspect(both, "F8").violations == [
        "sub_devices: given beside 'media_devices', another name of one key"]
