"""Tests of receiver.conformance: each rule of the status report (docs/protocol.md), by group."""

from __future__ import annotations

import ast
import copy
import json
from typing import Any

import pytest

from receiver.conformance import (
    check_headers,
    check_payload,
    check_query,
    check_report,
    versions_matched,
)

# The 返回信息 block of device-status-report.zh.md, verbatim (a Python literal, not JSON).
SPEC_BLOCK = r"""
{
  'dev_sno': 'ZKZCPI000120190807142601',
  'gateway_ext_data': {'sdk_version': '1.1.56d1e91',
                       'cpu_usage': 6.5,
                       'disk_free_size': 9.41,
                       'sw_version': 'build.date=2019年 08月 06日 星期二 17:42:49 CST\nBUILD TIME: 20190806_173257\nVERSION: V2R1C01\n',
                       'memory_usage': 0.77,
                       'memory_size': 1.55,
                       'disk_size': 10.39,
                       'gateway_mac': 'e0:a5:09:00:0e:6d'},
	'gateway_sn': 'SZCCKQRAIJBAH0002',
	'sub_devices': [{'ep_status': 'online',
                   'ep_location': '95274d2c-0941-4d96-b032-ab200f81362c',
                   'ep_url': 'rtsp://192.168.1.101:554/ch2',
                   'ep_type': '2',
                   'ep_name': '',
                   'ep_id': 'ZKZCPI000120190807142601__192.168.1.101',
                   'ep_ip': '192.168.1.101'}],
  'gateway_name': 'bm1682landy93',
  'gateway_status': 'online',
  'gateway_ip': '192.168.1.251 '
}
"""  # noqa: E501 -- kept exactly as the spec prints it

TOP_ORDER = [
    "gateway_ip",
    "gateway_name",
    "gateway_status",
    "gateway_sn",
    "dev_sno",
    "gateway_ext_data",
    "sub_devices",
]
EXT_ORDER = [
    "sw_version",
    "sdk_version",
    "gateway_mac",
    "cpu_usage",
    "memory_size",
    "memory_usage",
    "disk_size",
    "disk_free_size",
    "temperature",
]
DEVICE_ORDER = ["ep_id", "ep_name", "ep_ip", "ep_status", "ep_location", "ep_type", "ep_url"]


def _ordered(obj: dict[str, Any], order: list[str]) -> dict[str, Any]:
    return {key: obj[key] for key in order if key in obj}


def spec_example() -> dict[str, Any]:
    """The spec's example as the contract wants it: JSON types, no stray space, table order."""
    raw = ast.literal_eval(SPEC_BLOCK)
    raw["gateway_ip"] = raw["gateway_ip"].strip()
    report = _ordered(raw, TOP_ORDER)
    report["gateway_ext_data"] = _ordered(raw["gateway_ext_data"], EXT_ORDER)
    report["sub_devices"] = [_ordered(d, DEVICE_ORDER) for d in raw["sub_devices"]]
    return report


def device(ip: str, sno: str = "ZKZCPI000120190807142601", **changes: Any) -> dict[str, Any]:
    """A conforming sub-device at `ip`, with `changes` applied (None deletes a key)."""
    dev: dict[str, Any] = {
        "ep_id": f"{sno}__{ip}",
        "ep_name": "cam",
        "ep_ip": ip,
        "ep_status": "online",
        "ep_location": "95274d2c-0941-4d96-b032-ab200f81362c",
        "ep_type": "1",
    }
    dev.update(changes)
    return {k: v for k, v in dev.items() if v is not None}


def encode(report: object) -> bytes:
    return json.dumps(report, ensure_ascii=False).encode()


def violations_of(report: object) -> list[str]:
    return check_report(encode(report))[1]


@pytest.fixture
def report() -> dict[str, Any]:
    return copy.deepcopy(spec_example())


class TestSpecExample:
    def test_converted_example_is_clean(self) -> None:
        """The spec's own example, converted to contract form, has no violation."""
        payload, violations = check_report(encode(spec_example()))
        assert violations == []
        assert payload == spec_example()

    def test_verbatim_example_shows_its_flaws(self) -> None:
        """The example as printed fails only on the stray space and on key order."""
        violations = violations_of(ast.literal_eval(SPEC_BLOCK))
        assert "gateway_ip: '192.168.1.251 ' has surrounding whitespace" in violations
        order = "docs/protocol.md's key order"
        assert all(v == violations[0] or order in v for v in violations[1:])
        assert len(violations) == 4  # whitespace + top, ext and device order

    def test_non_ascii_arrives_unchanged(self) -> None:
        """The Chinese date in sw_version survives the parse byte for byte."""
        payload, _ = check_report(encode(spec_example()))
        assert isinstance(payload, dict)
        assert "2019年 08月 06日 星期二" in payload["gateway_ext_data"]["sw_version"]


class TestBody:
    def test_not_utf8(self) -> None:
        """A body that is not UTF-8 is one violation and no payload."""
        assert check_report(b'{"gateway_sn": "\xff"}') == (
            None,
            ["body: not UTF-8 (invalid start byte at byte 16)"],
        )

    def test_not_json(self) -> None:
        """A body that does not parse is one violation and no payload."""
        payload, violations = check_report(b'{"gateway_ip": ')
        assert payload is None
        assert len(violations) == 1
        assert violations[0].startswith("body: not JSON")

    @pytest.mark.parametrize("body", [b"NaN", b'{"a": Infinity}', b'{"a": 1e400}'])
    def test_non_finite_numbers_are_not_json(self, body: bytes) -> None:
        """NaN, Infinity and numbers no double holds are refused as not JSON."""
        payload, violations = check_report(body)
        assert payload is None
        assert violations[0].startswith("body: not JSON")

    @pytest.mark.parametrize(
        ("body", "kind"), [(b"[]", "an array"), (b'"x"', "a string"), (b"null", "null")]
    )
    def test_not_an_object(self, body: bytes, kind: str) -> None:
        """A JSON value that is not an object is returned, with one violation."""
        payload, violations = check_report(body)
        assert payload == json.loads(body)
        assert violations == [f"body: expected a JSON object, got {kind}"]

    def test_duplicate_key(self) -> None:
        """A key given twice in one object is named with its path."""
        body = encode(spec_example()).replace(
            b'"cpu_usage": 6.5', b'"cpu_usage": 6.5, "cpu_usage": 7.0'
        )
        assert violations_of(json.loads(body)) == []  # the dict has lost the duplicate
        assert check_report(body)[1] == ["gateway_ext_data.cpu_usage: key given more than once"]


class TestRequiredKeysAndTypes:
    @pytest.mark.parametrize("key", TOP_ORDER)
    def test_missing_top_level_key(self, report: dict[str, Any], key: str) -> None:
        """Every top-level key is required."""
        del report[key]
        assert f"{key}: required key is missing" in violations_of(report)

    def test_missing_sw_version(self, report: dict[str, Any]) -> None:
        """sw_version is the one required key of gateway_ext_data."""
        del report["gateway_ext_data"]["sw_version"]
        assert violations_of(report) == ["gateway_ext_data.sw_version: required key is missing"]

    @pytest.mark.parametrize("key", ["ep_id", "ep_ip", "ep_status", "ep_location", "ep_type"])
    def test_missing_device_key(self, report: dict[str, Any], key: str) -> None:
        """The required sub-device keys are reported with the device's index."""
        del report["sub_devices"][0][key]
        assert f"sub_devices[0].{key}: required key is missing" in violations_of(report)

    def test_optional_keys_may_be_left_out(self, report: dict[str, Any]) -> None:
        """Leaving out every optional key is conforming."""
        report["gateway_ext_data"] = {"sw_version": ""}
        for key in ("ep_name", "ep_url"):
            del report["sub_devices"][0][key]
        assert violations_of(report) == []

    def test_empty_sub_devices(self, report: dict[str, Any]) -> None:
        """A gateway without sub-devices sends an empty list."""
        report["sub_devices"] = []
        assert violations_of(report) == []

    @pytest.mark.parametrize(
        ("path", "value", "message"),
        [
            ("gateway_sn", 17, "gateway_sn: expected a string, got a number (17)"),
            ("gateway_ext_data", [], "gateway_ext_data: expected an object, got an array"),
            ("sub_devices", {}, "sub_devices: expected an array, got an object"),
            (
                "cpu_usage",
                "6.5",
                "gateway_ext_data.cpu_usage: expected a number, got a string ('6.5')",
            ),
            (
                "cpu_usage",
                True,
                "gateway_ext_data.cpu_usage: expected a number, got a boolean (true)",
            ),
            ("ep_type", 2, "sub_devices[0].ep_type: expected a string, got a number (2)"),
            ("gateway_name", None, "gateway_name: expected a string, got null"),
        ],
    )
    def test_wrong_type(
        self, report: dict[str, Any], path: str, value: object, message: str
    ) -> None:
        """A value of the wrong JSON type is named with what it was."""
        for target in (report, report["gateway_ext_data"], report["sub_devices"][0]):
            if path in target:
                target[path] = value
        assert message in violations_of(report)

    def test_integer_where_float_is_asked(self, report: dict[str, Any]) -> None:
        """JSON does not tell 6 from 6.0, so an integer is accepted for a float."""
        report["gateway_ext_data"]["cpu_usage"] = 6
        assert violations_of(report) == []

    def test_device_not_an_object(self, report: dict[str, Any]) -> None:
        """A sub-device that is not an object is named by its index."""
        report["sub_devices"].append("camera")
        assert violations_of(report) == ["sub_devices[1]: expected an object, got a string"]

    @pytest.mark.parametrize("key", ["gateway_name", "gateway_sn", "dev_sno"])
    def test_identifying_strings_not_empty(self, report: dict[str, Any], key: str) -> None:
        """Names and serials that identify the gateway must not be empty."""
        report[key] = ""
        assert f"{key}: must not be empty" in violations_of(report)


class TestUnknownAndNull:
    @pytest.mark.parametrize(
        ("where", "prefix"),
        [("top", ""), ("ext", "gateway_ext_data."), ("device", "sub_devices[0].")],
    )
    def test_unknown_key(self, report: dict[str, Any], where: str, prefix: str) -> None:
        """A key the contract does not name is a violation at any level."""
        target = {
            "top": report,
            "ext": report["gateway_ext_data"],
            "device": report["sub_devices"][0],
        }
        target[where]["extra"] = 1
        assert violations_of(report) == [f"{prefix}extra: unknown key"]

    @pytest.mark.parametrize("key", ["sdk_version", "gateway_mac", "cpu_usage", "temperature"])
    def test_optional_ext_key_null(self, report: dict[str, Any], key: str) -> None:
        """An unknown optional value is left out, never sent as null."""
        report["gateway_ext_data"][key] = None  # temperature lands last, as in the table
        assert violations_of(report) == [
            f"gateway_ext_data.{key}: null is not allowed (leave the key out)"
        ]

    @pytest.mark.parametrize("key", ["ep_name", "ep_url"])
    def test_optional_device_key_null(self, report: dict[str, Any], key: str) -> None:
        """Optional sub-device keys are never null either."""
        report["sub_devices"][0][key] = None
        assert violations_of(report) == [
            f"sub_devices[0].{key}: null is not allowed (leave the key out)"
        ]


class TestEnumerations:
    @pytest.mark.parametrize("status", ["up", "ONLINE", ""])
    def test_gateway_status(self, report: dict[str, Any], status: str) -> None:
        """gateway_status is online or offline, exactly."""
        report["gateway_status"] = status
        assert violations_of(report) == [
            f"gateway_status: {status!r} is not one of online, offline"
        ]

    def test_ep_status(self, report: dict[str, Any]) -> None:
        """ep_status is online or offline, exactly."""
        report["sub_devices"][0]["ep_status"] = "down"
        assert violations_of(report) == [
            "sub_devices[0].ep_status: 'down' is not one of online, offline"
        ]

    @pytest.mark.parametrize("ep_type", ["0", "1", "2", "3", "4"])
    def test_ep_type_valid(self, report: dict[str, Any], ep_type: str) -> None:
        """Each of the five device types is accepted."""
        report["sub_devices"][0]["ep_type"] = ep_type
        assert violations_of(report) == []

    def test_ep_type_out_of_set(self, report: dict[str, Any]) -> None:
        """An ep_type outside "0".."4" is named with its device index."""
        report["sub_devices"].append(device("192.168.1.102", ep_type="9"))
        assert violations_of(report) == ['sub_devices[1].ep_type: \'9\' is not one of "0".."4"']


class TestAddresses:
    @pytest.mark.parametrize("ip", ["10.0.0.1", "::1", "fe80::1"])
    def test_valid_gateway_ip(self, report: dict[str, Any], ip: str) -> None:
        """IPv4 and IPv6 gateway addresses are accepted."""
        report["gateway_ip"] = ip
        assert violations_of(report) == []

    @pytest.mark.parametrize("ip", ["192.168.1.256", "host", "", "192.168.01.1"])
    def test_invalid_gateway_ip(self, report: dict[str, Any], ip: str) -> None:
        """Something that is not an IP address is refused."""
        report["gateway_ip"] = ip
        assert violations_of(report) == [f"gateway_ip: {ip!r} is not an IPv4 or IPv6 address"]

    @pytest.mark.parametrize("ip", [" 10.0.0.1", "10.0.0.1\n", "10.0.0.1\t"])
    def test_gateway_ip_whitespace(self, report: dict[str, Any], ip: str) -> None:
        """Surrounding whitespace, as in the spec's example, is a violation."""
        report["gateway_ip"] = ip
        assert violations_of(report) == [f"gateway_ip: {ip!r} has surrounding whitespace"]

    def test_invalid_ep_ip(self, report: dict[str, Any]) -> None:
        """A sub-device's ep_ip must be an IP address too."""
        report["sub_devices"] = [device("camera-1")]
        assert violations_of(report) == [
            "sub_devices[0].ep_ip: 'camera-1' is not an IPv4 or IPv6 address"
        ]

    def test_ep_id_must_be_derived(self, report: dict[str, Any]) -> None:
        """ep_id is dev_sno + '__' + ep_ip and nothing else."""
        report["sub_devices"][0]["ep_id"] = "camera-1"
        assert violations_of(report) == [
            "sub_devices[0].ep_id: 'camera-1' is not dev_sno + '__' + ep_ip "
            "('ZKZCPI000120190807142601__192.168.1.101')"
        ]

    def test_ep_id_with_ipv6(self, report: dict[str, Any]) -> None:
        """The derivation holds for IPv6 sub-devices as well."""
        report["sub_devices"] = [device("fd00::5")]
        assert violations_of(report) == []

    @pytest.mark.parametrize("mac", ["E0:A5:09:00:0E:6D", "e0-a5-09-00-0e-6d", "e0a509000e6d", ""])
    def test_gateway_mac(self, report: dict[str, Any], mac: str) -> None:
        """gateway_mac is lower-case, colon-separated hex pairs."""
        report["gateway_ext_data"]["gateway_mac"] = mac
        assert violations_of(report) == [
            f"gateway_ext_data.gateway_mac: {mac!r} is not a lower-case MAC like aa:bb:cc:dd:ee:ff"
        ]


class TestMetrics:
    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("cpu_usage", 0),
            ("cpu_usage", 100.0),
            ("memory_usage", 1.0),
            ("memory_usage", 0.0),
            ("memory_size", 0.0),
            ("disk_size", 1234.56),
            ("disk_free_size", 0.01),
            ("temperature", 45),
            ("temperature", -5),
            ("temperature", -100),
            ("temperature", 300),
        ],
    )
    def test_in_range(self, report: dict[str, Any], key: str, value: float) -> None:
        """Values at the edges of their ranges are accepted."""
        report["gateway_ext_data"][key] = value
        report["gateway_ext_data"] = _ordered(report["gateway_ext_data"], EXT_ORDER)
        assert violations_of(report) == []

    @pytest.mark.parametrize(
        ("key", "value", "complaint"),
        [
            ("cpu_usage", 100.1, "100.1 is out of range 0..100"),
            ("cpu_usage", -0.5, "-0.5 is out of range 0..100"),
            ("memory_usage", 1.5, "1.5 is out of range 0..1"),
            ("memory_usage", 77, "77 is out of range 0..1"),
            ("memory_size", -1.0, "-1.0 is out of range >= 0"),
            ("disk_size", -0.01, "-0.01 is out of range >= 0"),
            ("disk_free_size", -3, "-3 is out of range >= 0"),
            ("temperature", -500, "-500 is out of range -100..300"),
            ("temperature", 1000, "1000 is out of range -100..300"),
        ],
    )
    def test_out_of_range(
        self, report: dict[str, Any], key: str, value: float, complaint: str
    ) -> None:
        """Values outside their range are named with the range."""
        report["gateway_ext_data"][key] = value
        assert violations_of(report) == [f"gateway_ext_data.{key}: {complaint}"]

    @pytest.mark.parametrize(
        ("key", "value", "places"),
        [
            ("cpu_usage", 6.55, "1 decimal"),
            ("memory_usage", 0.775, "2 decimals"),
            ("memory_size", 1.555, "2 decimals"),
            ("disk_size", 10.391, "2 decimals"),
            ("disk_free_size", 0.001, "2 decimals"),
            ("disk_size", 1e-05, "2 decimals"),
        ],
    )
    def test_too_many_decimals(
        self, report: dict[str, Any], key: str, value: float, places: str
    ) -> None:
        """Metrics carry at most the decimals the contract gives them."""
        report["gateway_ext_data"][key] = value
        assert violations_of(report) == [
            f"gateway_ext_data.{key}: {value!r} has more than {places}"
        ]

    @pytest.mark.parametrize(
        ("value", "got"), [(45.0, "a number (45.0)"), ("45", "a string ('45')")]
    )
    def test_temperature_is_an_integer(
        self, report: dict[str, Any], value: object, got: str
    ) -> None:
        """temperature is a whole number of degrees."""
        report["gateway_ext_data"]["temperature"] = value
        assert violations_of(report) == [
            f"gateway_ext_data.temperature: expected an integer, got {got}"
        ]


class TestKeyOrder:
    def test_top_level_order(self, report: dict[str, Any]) -> None:
        """Top-level keys go in the order of the protocol's table."""
        reordered = {"gateway_name": report.pop("gateway_name"), **report}
        assert violations_of(reordered) == [
            "body: key 'gateway_name' comes before 'gateway_ip', "
            "against docs/protocol.md's key order"
        ]

    def test_ext_order(self, report: dict[str, Any]) -> None:
        """gateway_ext_data keys go in table order."""
        ext = report["gateway_ext_data"]
        report["gateway_ext_data"] = {"cpu_usage": ext.pop("cpu_usage"), **ext}
        assert violations_of(report) == [
            "gateway_ext_data: key 'cpu_usage' comes before 'sw_version', "
            "against docs/protocol.md's key order"
        ]

    def test_device_order(self, report: dict[str, Any]) -> None:
        """Sub-device keys go in table order; the index names the device."""
        dev = report["sub_devices"][0]
        report["sub_devices"][0] = {"ep_ip": dev.pop("ep_ip"), **dev}
        assert violations_of(report) == [
            "sub_devices[0]: key 'ep_ip' comes before 'ep_id', against docs/protocol.md's key order"
        ]

    def test_unknown_keys_do_not_count_for_order(self, report: dict[str, Any]) -> None:
        """An unknown key is reported once, wherever it sits."""
        report = {"zzz": 1, **report}
        assert violations_of(report) == ["zzz: unknown key"]


class TestDeviceSorting:
    def test_sorted_numerically(self, report: dict[str, Any]) -> None:
        """10.0.0.9 comes before 10.0.0.10: the order is numeric, not textual."""
        report["sub_devices"] = [device("10.0.0.9"), device("10.0.0.10"), device("192.168.1.1")]
        assert violations_of(report) == []

    def test_textual_order_is_wrong(self, report: dict[str, Any]) -> None:
        """Sorting IPs as text is reported with the first pair out of order."""
        report["sub_devices"] = [device("10.0.0.10"), device("10.0.0.9")]
        assert violations_of(report) == [
            "sub_devices: not sorted by ep_ip ([0] '10.0.0.10' comes before [1] '10.0.0.9')"
        ]

    def test_ipv4_before_ipv6(self, report: dict[str, Any]) -> None:
        """IPv4 devices come before IPv6 ones, however large the IPv4 address."""
        report["sub_devices"] = [device("255.255.255.255"), device("::1"), device("fd00::1")]
        assert violations_of(report) == []
        report["sub_devices"].reverse()
        assert violations_of(report) == [
            "sub_devices: not sorted by ep_ip ([0] 'fd00::1' comes before [1] '::1')"
        ]

    def test_scoped_addresses_are_two_devices_in_one_order(self, report: dict[str, Any]) -> None:
        """fe80::1 on eth0 and on eth1 are two devices, sorted by scope after the value."""
        report["sub_devices"] = [device("fe80::1"), device("fe80::1%eth0"),
                                 device("fe80::1%eth1"), device("fe80::2")]
        assert violations_of(report) == []
        report["sub_devices"][1:3] = reversed(report["sub_devices"][1:3])
        assert violations_of(report) == ["sub_devices: not sorted by ep_ip "
                                         "([1] 'fe80::1%eth1' comes before [2] 'fe80::1%eth0')"]

    def test_repeated_ip(self, report: dict[str, Any]) -> None:
        """Two sub-devices with one address are reported, since their ep_id would clash."""
        report["sub_devices"] = [device("10.0.0.1"), device("10.0.0.1")]
        assert violations_of(report) == ["sub_devices[1].ep_ip: '10.0.0.1' repeats sub_devices[0]"]


JSON_UTF8 = "application/json; charset=utf-8"


class TestHeaders:
    SN = "SZCCKQRAIJBAH0002"

    def test_conforming(self) -> None:
        """JSON in UTF-8 and an id of gateway_sn, boot and sequence number pass."""
        payload = {"gateway_sn": self.SN}
        content_type = "application/json; charset=utf-8"
        assert check_headers(content_type, f"{self.SN}-a1b2-17", payload) == []

    @pytest.mark.parametrize("content_type", ["application/json;charset=UTF-8",
                                              'application/json; charset="utf8"'])
    def test_charset_spellings(self, content_type: str) -> None:
        """The charset may be spelt in any case, quoted, with or without the hyphen."""
        assert check_headers(content_type, f"{self.SN}-1-1", {"gateway_sn": self.SN}) == []

    @pytest.mark.parametrize(
        "content_type",
        [None, "text/plain", "application/json; charset=latin-1", "application/json",
         "application/json;", "application/json; boundary=x"],
    )
    def test_wrong_content_type(self, content_type: str | None) -> None:
        """Anything other than JSON with charset utf-8 is a violation, a missing charset too."""
        assert check_headers(content_type, f"{self.SN}-1-1", {"gateway_sn": self.SN}) == [
            f"header Content-Type: {content_type!r} is not application/json; charset=utf-8"
        ]

    def test_missing_report_id(self) -> None:
        """Every POST carries X-Report-Id."""
        assert check_headers(JSON_UTF8, None, {"gateway_sn": self.SN}) == [
            "header X-Report-Id: missing"
        ]

    @pytest.mark.parametrize("report_id", ["OTHER-1-1", f"{SN}-1", f"{SN}-boot-x", f"{SN}--1"])
    def test_malformed_report_id(self, report_id: str) -> None:
        """X-Report-Id is {gateway_sn}-{boot}-{seq} with a numeric seq."""
        assert check_headers(JSON_UTF8, report_id, {"gateway_sn": self.SN}) == [
            f"header X-Report-Id: {report_id!r} is not {{gateway_sn}}-{{boot}}-{{seq}}"
        ]


class TestBlankValues:
    @pytest.mark.parametrize("blank", [" ", "  \t", "\u3000"])
    def test_whitespace_only_location(self, report: dict[str, Any], blank: str) -> None:
        """An ep_location of whitespace alone identifies nothing: a violation."""
        report["sub_devices"][0]["ep_location"] = blank
        assert violations_of(report) == [
            f"sub_devices[0].ep_location: {blank!r} is blank (whitespace only)"
        ]

    @pytest.mark.parametrize(("where", "key", "value"), [
        ("gateway_ext_data", "sdk_version", ""), ("gateway_ext_data", "sdk_version", "  "),
        ("sub_devices", "ep_url", ""), ("sub_devices", "ep_url", " \t")])
    def test_blank_optional_values(
        self, report: dict[str, Any], where: str, key: str, value: str
    ) -> None:
        """An optional value that is not known is left out, never sent blank."""
        holder = report[where][0] if where == "sub_devices" else report[where]
        holder[key] = value
        path = f"{where}[0]" if where == "sub_devices" else where
        assert violations_of(report) == [
            f"{path}.{key}: {value!r} is blank: an optional value that is not known is "
            "left out, not sent empty"]

    def test_an_empty_ep_name_is_a_value(self, report: dict[str, Any]) -> None:
        """ep_name is "" when the device has none: the table says so."""
        report["sub_devices"][0]["ep_name"] = ""
        assert violations_of(report) == []

    def test_the_query_names_the_bodys_dev_sno(self, report: dict[str, Any]) -> None:
        assert check_query(report["dev_sno"], report) == []
        assert check_query(None, report) == []
        assert check_query("NEWCODE", report) == [
            f"query dev_sno: 'NEWCODE' is not the body's dev_sno {report['dev_sno']!r}"]

    @pytest.mark.parametrize("key", ["gateway_name", "gateway_sn", "dev_sno"])
    def test_whitespace_only_identity(self, report: dict[str, Any], key: str) -> None:
        """Names and serials of whitespace alone are as empty as ""."""
        report[key] = "  "
        assert any(v.startswith(f"{key}: ") for v in violations_of(report))


def v2_device(ip: str, **changes: Any) -> dict[str, Any]:
    """A conforming v2 sub-device: no ep_url, an ep_ext_data object last."""
    dev = device(ip, **changes)
    dev.setdefault("ep_ext_data", {})
    return dev


def v2_report() -> dict[str, Any]:
    report = spec_example()
    report["sub_devices"] = [v2_device("192.168.1.101", ep_ext_data={
        "sw_version": "V2R1C01", "group_name": "默认分组"})]
    return report


def v2_violations(report: object) -> list[str]:
    return check_report(encode(report), "v2")[1]


class TestVersions:
    def test_v2_report_conforms_to_v2_only(self) -> None:
        """A report with ep_ext_data and without ep_url is v2, and not v1."""
        report = v2_report()

        assert v2_violations(report) == []
        assert violations_of(report) == ["sub_devices[0].ep_ext_data: unknown key"]
        assert versions_matched(report) == ["v2"]

    def test_v1_report_conforms_to_v1_only(self, report: dict[str, Any]) -> None:
        """The spec's example is v1; under v2 its device lacks ep_ext_data and has ep_url."""
        assert versions_matched(report) == ["v1"]
        assert v2_violations(report) == [
            "sub_devices[0].ep_ext_data: required key is missing",
            "sub_devices[0].ep_url: unknown key",
        ]

    def test_a_body_can_match_both(self, report: dict[str, Any]) -> None:
        """With no devices, a report is both v1 and v2."""
        report["sub_devices"] = []
        assert versions_matched(report) == ["v1", "v2"]

    def test_a_known_verdict_is_not_checked_again(self, report: dict[str, Any]) -> None:
        """A version already checked is taken as given: its violations decide."""
        assert versions_matched(report, known=("v1", [])) == ["v1"]
        assert versions_matched(report, known=("v1", ["x: made up"])) == []
        assert versions_matched(v2_report(), known=("v1", ["x: made up"])) == ["v2"]

    def test_not_json_matches_nothing(self) -> None:
        """A body that is not a JSON object matches no version."""
        assert versions_matched(None) == []
        assert versions_matched([1]) == []

    def test_v2_optional_keys(self) -> None:
        """v2 may leave out dev_sno, the gateway's sw_version and ep_location."""
        report = v2_report()
        del report["dev_sno"], report["gateway_ext_data"]["sw_version"]
        del report["sub_devices"][0]["ep_location"]

        assert v2_violations(report) == []
        assert check_payload(report, "v1") == [
            "dev_sno: required key is missing",
            "gateway_ext_data.sw_version: required key is missing",
            "sub_devices[0].ep_location: required key is missing",
            "sub_devices[0].ep_ext_data: unknown key",
        ]

    @pytest.mark.parametrize(
        ("extra", "complaint"),
        [
            ("V1", "sub_devices[0].ep_ext_data: expected an object, got a string ('V1')"),
            (None, "sub_devices[0].ep_ext_data: expected an object, got null"),
            ({"sw_version": 2}, "sub_devices[0].ep_ext_data.sw_version: expected a string, "
                                "got a number (2)"),
            ({"group_name": None}, "sub_devices[0].ep_ext_data.group_name: null is not allowed "
                                   "(leave the key out)"),
            ({"color": "red"}, "sub_devices[0].ep_ext_data.color: unknown key"),
            ({"group_name": "g", "sw_version": "1"}, "sub_devices[0].ep_ext_data: key "
             "'group_name' comes before 'sw_version', against docs/protocol.md's key order"),
        ],
    )
    def test_bad_ep_ext_data(self, extra: object, complaint: str) -> None:
        """ep_ext_data is an object of optional strings, in table order, nothing else."""
        report = v2_report()
        report["sub_devices"][0]["ep_ext_data"] = extra

        assert v2_violations(report) == [complaint]

    def test_v2_device_key_order(self) -> None:
        """v2 keys follow the V2R1C01 table: ep_ext_data after ep_type."""
        report = v2_report()
        dev = report["sub_devices"][0]
        report["sub_devices"][0] = {"ep_ext_data": dev.pop("ep_ext_data"), **dev}

        assert v2_violations(report) == [
            "sub_devices[0]: key 'ep_ext_data' comes before 'ep_id', "
            "against docs/protocol.md's key order"
        ]

    def test_v2_still_refuses_a_blank_location(self) -> None:
        """Optional in v2, ep_location is still not whitespace alone when sent."""
        report = v2_report()
        report["sub_devices"][0]["ep_location"] = " "

        assert v2_violations(report) == [
            "sub_devices[0].ep_location: ' ' is blank (whitespace only)"
        ]
