"""The golden rule: the spec's own example, fed in as MQTT, comes out as the spec's payload.

Payload version v2 (the document's V2R1C01 release) has its own golden body below.

The expected report is the `返回信息` block of `device-status-report.zh.md`,
transcribed verbatim (less the stray space after `gateway_ip`), and the
expected bytes are written out by hand in the key order of the report's tables (docs/protocol.md).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
import pytest

from bridge.releases import ReportFormat
from bridge.report import device_json, dumps, ip_sort_key
from bridge.state import GatewayState
from bridge.topics import Topics, parse
from receiver.conformance import check_report, versions_matched
from tests.fakes import FakeClock

PREFIX = "se3"
SN = "SZCCKQRAIJBAH0002"
DEV_SNO = "ZKZCPI000120190807142601"
SW_VERSION = (
    "build.date=2019年 08月 06日 星期二 17:42:49 CST\n"
    "BUILD TIME: 20190806_173257\n"
    "VERSION: V2R1C01\n"
)
LOCATION = "95274d2c-0941-4d96-b032-ab200f81362c"

# The spec's example answer, key order and all, as the spec prints it.
SPEC_PAYLOAD: dict[str, Any] = {
    "dev_sno": "ZKZCPI000120190807142601",
    "gateway_ext_data": {
        "sdk_version": "1.1.56d1e91",
        "cpu_usage": 6.5,
        "disk_free_size": 9.41,
        "sw_version": SW_VERSION,
        "memory_usage": 0.77,
        "memory_size": 1.55,
        "disk_size": 10.39,
        "gateway_mac": "e0:a5:09:00:0e:6d",
    },
    "gateway_sn": "SZCCKQRAIJBAH0002",
    "sub_devices": [
        {
            "ep_status": "online",
            "ep_location": "95274d2c-0941-4d96-b032-ab200f81362c",
            "ep_url": "rtsp://192.168.1.101:554/ch2",
            "ep_type": "2",
            "ep_name": "",
            "ep_id": "ZKZCPI000120190807142601__192.168.1.101",
            "ep_ip": "192.168.1.101",
        }
    ],
    "gateway_name": "bm1682landy93",
    "gateway_status": "online",
    "gateway_ip": "192.168.1.251",  # the spec has '192.168.1.251 ': the protocol strips it
}

# The report's three tables (docs/protocol.md), in order.
TOP_KEYS = [
    "gateway_ip", "gateway_name", "gateway_status", "gateway_sn", "dev_sno",
    "gateway_ext_data", "sub_devices",
]
EXT_KEYS = [
    "sw_version", "sdk_version", "gateway_mac", "cpu_usage", "memory_size", "memory_usage",
    "disk_size", "disk_free_size",
]
DEVICE_KEYS = ["ep_id", "ep_name", "ep_ip", "ep_status", "ep_location", "ep_type", "ep_url"]

EXPECTED_BYTES = (
    '{"gateway_ip":"192.168.1.251","gateway_name":"bm1682landy93","gateway_status":"online",'
    '"gateway_sn":"SZCCKQRAIJBAH0002","dev_sno":"ZKZCPI000120190807142601",'
    '"gateway_ext_data":{"sw_version":"build.date=2019年 08月 06日 星期二 17:42:49 CST\\n'
    'BUILD TIME: 20190806_173257\\nVERSION: V2R1C01\\n","sdk_version":"1.1.56d1e91",'
    '"gateway_mac":"e0:a5:09:00:0e:6d","cpu_usage":6.5,"memory_size":1.55,'
    '"memory_usage":0.77,"disk_size":10.39,"disk_free_size":9.41},'
    '"sub_devices":[{"ep_id":"ZKZCPI000120190807142601__192.168.1.101","ep_name":"",'
    '"ep_ip":"192.168.1.101","ep_status":"online",'
    '"ep_location":"95274d2c-0941-4d96-b032-ab200f81362c","ep_type":"2",'
    '"ep_url":"rtsp://192.168.1.101:554/ch2"}]}'
).encode()



TOPICS = Topics(PREFIX, SN)


def feed(state: GatewayState, topic: str, record: dict[str, Any], clock: FakeClock) -> None:
    """Publish `record` as JSON bytes on `topic`, through the real topic parser."""
    state.apply(parse(topic, PREFIX), orjson.dumps(record), clock)


def spec_info(**changes: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "gateway_ip": "192.168.1.251 ",
        "gateway_name": "bm1682landy93",
        "dev_sno": DEV_SNO,
        "sw_version": SW_VERSION,
        "sdk_version": "1.1.56d1e91",
        "gateway_mac": "e0:a5:09:00:0e:6d",
    }
    info.update(changes)
    return info


def spec_metrics() -> dict[str, Any]:
    return {
        "cpu_usage": 6.5,
        "memory_size": 1.55,
        "memory_usage": 0.77,
        "disk_size": 10.39,
        "disk_free_size": 9.41,
    }


def device(ip: str, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ep_status": "online",
        "ep_location": LOCATION,
        "ep_url": f"rtsp://{ip}:554/ch2",
        "ep_type": "2",
        "ep_name": "",
        "ep_id": f"{DEV_SNO}__{ip}",
        "ep_ip": ip,
    }
    record.update(changes)
    return record


def spec_state(clock: FakeClock) -> GatewayState:
    state = GatewayState(SN)
    feed(state, TOPICS.gateway_info, spec_info(), clock)
    feed(state, TOPICS.gateway_metrics, spec_metrics(), clock)
    feed(state, TOPICS.device_state("192.168.1.101"), device("192.168.1.101"), clock)
    return state


def report_of(state: GatewayState, clock: FakeClock) -> dict[str, Any]:
    report = state.report(clock)
    assert report is not None
    return report


class TestSpecExample:
    def test_payload_equals_the_spec_example(self) -> None:
        """The spec's records give exactly the spec's payload, gateway_ip stripped."""
        clock = FakeClock()

        assert report_of(spec_state(clock), clock) == SPEC_PAYLOAD

    def test_keys_come_in_contract_order(self) -> None:
        """Top level, gateway_ext_data and each sub-device follow the protocol's tables."""
        clock = FakeClock()
        report = report_of(spec_state(clock), clock)

        assert list(report) == TOP_KEYS
        assert list(report["gateway_ext_data"]) == EXT_KEYS
        assert [list(d) for d in report["sub_devices"]] == [DEVICE_KEYS]

    def test_dumps_gives_the_expected_bytes(self) -> None:
        """The POST body is compact orjson, non-ASCII unescaped, byte for byte."""
        clock = FakeClock()

        assert dumps(report_of(spec_state(clock), clock)) == EXPECTED_BYTES

    def test_body_parses_back_to_the_spec_example(self) -> None:
        """The bytes on the wire decode to the spec's example (key order aside)."""
        clock = FakeClock()
        body = dumps(report_of(spec_state(clock), clock))

        assert orjson.loads(body) == SPEC_PAYLOAD
        assert "星期二".encode() in body

    def test_two_builds_are_byte_identical(self) -> None:
        """Two reports of the same state serialise to the same bytes."""
        clock = FakeClock()
        state = spec_state(clock)

        assert dumps(report_of(state, clock)) == dumps(report_of(state, clock))

    def test_arrival_order_does_not_matter(self) -> None:
        """Two states fed the same records in different orders give the same bytes."""
        clock = FakeClock()
        ips = ["10.0.0.10", "192.168.1.101", "10.0.0.2", "2001:db8::1", "10.0.0.1"]
        first, second = GatewayState(SN), GatewayState(SN)
        for state, order in ((first, ips), (second, list(reversed(ips)))):
            feed(state, TOPICS.gateway_info, spec_info(), clock)
            for ip in order:
                feed(state, TOPICS.device_state(ip), device(ip), clock)

        assert dumps(report_of(first, clock)) == dumps(report_of(second, clock))

    def test_ep_id_is_derived_not_taken_from_the_record(self) -> None:
        """A wrong ep_id in the record is ignored; ep_id is dev_sno + '__' + ep_ip."""
        clock = FakeClock()
        state = GatewayState(SN)
        feed(state, TOPICS.gateway_info, spec_info(), clock)
        feed(state, TOPICS.device_state("192.168.1.101"),
             device("192.168.1.101", ep_id="bogus"), clock)

        assert report_of(state, clock)["sub_devices"][0]["ep_id"] == f"{DEV_SNO}__192.168.1.101"


class TestDeviceOrder:
    def test_sorted_numerically_ipv4_before_ipv6(self) -> None:
        """Devices come by numeric IP, all IPv4 before IPv6, whatever the arrival order."""
        clock = FakeClock()
        state = GatewayState(SN)
        feed(state, TOPICS.gateway_info, spec_info(), clock)
        for ip in ["::1", "10.0.0.10", "2001:db8::2", "10.0.0.2", "9.255.255.255", "10.0.0.1"]:
            feed(state, TOPICS.device_state(ip), device(ip), clock)

        ips = [d["ep_ip"] for d in report_of(state, clock)["sub_devices"]]

        assert ips == ["9.255.255.255", "10.0.0.1", "10.0.0.2", "10.0.0.10", "::1", "2001:db8::2"]

    def test_ip_sort_key_puts_10_0_0_2_before_10_0_0_10(self) -> None:
        """The sort key is numeric, not textual."""
        assert ip_sort_key("10.0.0.2") < ip_sort_key("10.0.0.10")
        assert ip_sort_key("255.255.255.255") < ip_sort_key("::")

    def test_order_follows_a_removal_and_a_new_device(self) -> None:
        """After a device is deleted and another added, the order is still numeric."""
        clock = FakeClock()
        state = GatewayState(SN)
        feed(state, TOPICS.gateway_info, spec_info(), clock)
        for ip in ["10.0.0.3", "10.0.0.1"]:
            feed(state, TOPICS.device_state(ip), device(ip), clock)
        report_of(state, clock)  # caches the order
        state.apply(parse(TOPICS.device_state("10.0.0.1"), PREFIX), b"", clock)
        feed(state, TOPICS.device_state("10.0.0.2"), device("10.0.0.2"), clock)

        ips = [d["ep_ip"] for d in report_of(state, clock)["sub_devices"]]

        assert ips == ["10.0.0.2", "10.0.0.3"]


class TestOptionalKeys:
    def test_unknown_optional_keys_are_absent_not_null(self) -> None:
        """Without sdk_version, MAC, metrics and ep_url the keys are left out, never null."""
        clock = FakeClock()
        state = GatewayState(SN)
        info = spec_info()
        del info["sdk_version"], info["gateway_mac"]
        feed(state, TOPICS.gateway_info, info, clock)
        record = device("10.0.0.1")
        del record["ep_url"], record["ep_name"]
        feed(state, TOPICS.device_state("10.0.0.1"), record, clock)

        report = report_of(state, clock)
        body = dumps(report)

        assert report["gateway_ext_data"] == {"sw_version": SW_VERSION}
        assert "ep_url" not in report["sub_devices"][0]
        assert report["sub_devices"][0]["ep_name"] == ""
        assert b"null" not in body

    def test_no_devices_is_an_empty_list(self) -> None:
        """sub_devices is [] when there are none."""
        clock = FakeClock()
        state = GatewayState(SN)
        feed(state, TOPICS.gateway_info, spec_info(), clock)

        assert report_of(state, clock)["sub_devices"] == []

    def test_only_metrics_known_are_sent(self) -> None:
        """A metrics record with some fields gives only those keys, in contract order."""
        clock = FakeClock()
        state = GatewayState(SN)
        feed(state, TOPICS.gateway_info, spec_info(), clock)
        feed(state, TOPICS.gateway_metrics, {"disk_size": 3.0, "cpu_usage": 1.0}, clock)

        ext = report_of(state, clock)["gateway_ext_data"]

        assert list(ext) == ["sw_version", "sdk_version", "gateway_mac", "cpu_usage", "disk_size"]

    def test_temperature_is_an_int_after_disk_free_size(self) -> None:
        """temperature, where known, is sent as an int, last in gateway_ext_data."""
        clock = FakeClock()
        state = GatewayState(SN)
        feed(state, TOPICS.gateway_info, spec_info(), clock)
        feed(state, TOPICS.gateway_metrics, {**spec_metrics(), "temperature": 47}, clock)

        ext = report_of(state, clock)["gateway_ext_data"]

        assert list(ext)[-2:] == ["disk_free_size", "temperature"]
        assert b'"temperature":47}' in dumps(report_of(state, clock))


class TestRounding:
    @pytest.mark.parametrize(
        ("key", "given", "sent"),
        [
            ("cpu_usage", 6.54321, 6.5),
            ("cpu_usage", 99.96, 100.0),
            ("memory_size", 1.55432, 1.55),
            ("memory_usage", 0.7691, 0.77),
            ("disk_size", 10.386, 10.39),
            ("disk_free_size", 9.4149, 9.41),
        ],
    )
    def test_floats_are_rounded(self, key: str, given: float, sent: float) -> None:
        """cpu_usage has one decimal, the other floats two."""
        clock = FakeClock()
        state = GatewayState(SN)
        feed(state, TOPICS.gateway_info, spec_info(), clock)
        feed(state, TOPICS.gateway_metrics, {key: given}, clock)

        value = report_of(state, clock)["gateway_ext_data"][key]

        assert value == sent
        assert isinstance(value, float)

    def test_integral_metrics_are_still_floats(self) -> None:
        """An integer in a float field is sent as a float (6.0), as the protocol types it."""
        clock = FakeClock()
        state = GatewayState(SN)
        feed(state, TOPICS.gateway_info, spec_info(), clock)
        feed(state, TOPICS.gateway_metrics, {"cpu_usage": 6, "disk_size": 10}, clock)

        body = dumps(report_of(state, clock))

        assert b'"cpu_usage":6.0' in body
        assert b'"disk_size":10.0' in body


# -- payload version v2 (the V2R1C01 release of the document) ------------------

# The V2R1C01 table's sub-device keys, in order (ep_url is not in it).
DEVICE_KEYS_V2 = ["ep_id", "ep_name", "ep_ip", "ep_status", "ep_location", "ep_type",
                  "ep_ext_data"]

# The spec's gateway with two devices: one carrying ep_ext_data (and an ep_url that
# v2 leaves out), one without (an empty object). Written out by hand.
EXPECTED_BYTES_V2 = (
    '{"gateway_ip":"192.168.1.251","gateway_name":"bm1682landy93","gateway_status":"online",'
    '"gateway_sn":"SZCCKQRAIJBAH0002","dev_sno":"ZKZCPI000120190807142601",'
    '"gateway_ext_data":{"sw_version":"build.date=2019年 08月 06日 星期二 17:42:49 CST\\n'
    'BUILD TIME: 20190806_173257\\nVERSION: V2R1C01\\n","sdk_version":"1.1.56d1e91",'
    '"gateway_mac":"e0:a5:09:00:0e:6d","cpu_usage":6.5,"memory_size":1.55,'
    '"memory_usage":0.77,"disk_size":10.39,"disk_free_size":9.41},'
    '"sub_devices":[{"ep_id":"ZKZCPI000120190807142601__192.168.1.101","ep_name":"",'
    '"ep_ip":"192.168.1.101","ep_status":"online",'
    '"ep_location":"95274d2c-0941-4d96-b032-ab200f81362c","ep_type":"2",'
    '"ep_ext_data":{"sw_version":"V2R1C01","group_name":"默认分组"}},'
    '{"ep_id":"ZKZCPI000120190807142601__192.168.1.102","ep_name":"门口",'
    '"ep_ip":"192.168.1.102","ep_status":"offline",'
    '"ep_location":"95274d2c-0941-4d96-b032-ab200f81362c","ep_type":"1",'
    '"ep_ext_data":{}}]}'
).encode()


# The reference platform's names of the two flat formats it checks.
Format = Literal["v1", "v2"]
FORMATS: tuple[Format, ...] = ("v1", "v2")
AS_RELEASE_FORMAT: dict[Format, ReportFormat] = {"v1": "F2", "v2": "F1-MQ"}


def v2_state(clock: FakeClock, fmt: Format = "v2") -> GatewayState:
    state = GatewayState(SN, fmt=AS_RELEASE_FORMAT[fmt])
    feed(state, TOPICS.gateway_info, spec_info(), clock)
    feed(state, TOPICS.gateway_metrics, spec_metrics(), clock)
    feed(state, TOPICS.device_state("192.168.1.102"), device(
        "192.168.1.102", ep_name="门口", ep_type="1", ep_status="offline"), clock)
    feed(state, TOPICS.device_state("192.168.1.101"), device(
        "192.168.1.101", ep_ext_data={"sw_version": "V2R1C01", "group_name": "默认分组"}), clock)
    return state


class TestFormatV2:
    def test_dumps_gives_the_expected_bytes(self) -> None:
        """format v2: ep_ext_data on every device ({} when empty), no ep_url, byte for byte."""
        clock = FakeClock()

        assert dumps(report_of(v2_state(clock), clock)) == EXPECTED_BYTES_V2

    def test_keys_come_in_the_v2_table_order(self) -> None:
        """Top level and gateway_ext_data as in v1; each device as the V2R1C01 table."""
        clock = FakeClock()
        report = report_of(v2_state(clock), clock)

        assert list(report) == TOP_KEYS
        assert list(report["gateway_ext_data"]) == EXT_KEYS
        assert [list(d) for d in report["sub_devices"]] == [DEVICE_KEYS_V2] * 2

    def test_v2_body_passes_the_receivers_v2_check(self) -> None:
        """The golden v2 body conforms to v2 (and only to v2) by the reference platform."""
        payload, violations = check_report(EXPECTED_BYTES_V2, "v2")

        assert violations == []
        assert versions_matched(payload) == ["v2"]

    def test_v1_body_passes_the_receivers_v1_check_only(self) -> None:
        """The v1 golden body conforms to v1 and not to v2 (no ep_ext_data)."""
        payload, violations = check_report(EXPECTED_BYTES, "v1")

        assert violations == []
        assert versions_matched(payload) == ["v1"]

    def test_v1_leaves_ep_ext_data_out(self) -> None:
        """The same records in format v1 give the v1 shape: ep_url kept, no ep_ext_data."""
        clock = FakeClock()
        report = report_of(v2_state(clock, "v1"), clock)

        assert [list(d) for d in report["sub_devices"]] == [DEVICE_KEYS] * 2

    def test_empty_gateway_sw_version_is_left_out(self) -> None:
        """v2 makes the gateway's sw_version optional: an empty one is left out (v1 sends it)."""
        clock = FakeClock()
        expected: dict[Format, dict[str, str]] = {"v1": {"sw_version": ""}, "v2": {}}
        for fmt in FORMATS:
            state = GatewayState(SN, fmt=AS_RELEASE_FORMAT[fmt])
            feed(state, TOPICS.gateway_info, spec_info(
                sw_version="", sdk_version="", gateway_mac=""), clock)

            assert report_of(state, clock)["gateway_ext_data"] == expected[fmt]

    def test_ep_ext_data_change_is_a_change_in_v2_only(self) -> None:
        """A new group_name changes what v2 sends (a report is due), not what v1 sends."""
        clock = FakeClock()
        changed: dict[Format, bool] = {"v1": False, "v2": True}
        for fmt in FORMATS:
            state = GatewayState(SN, fmt=AS_RELEASE_FORMAT[fmt])
            feed(state, TOPICS.gateway_info, spec_info(), clock)
            feed(state, TOPICS.device_state("10.0.0.1"), device("10.0.0.1"), clock)
            outcome = state.apply(parse(TOPICS.device_state("10.0.0.1"), PREFIX), orjson.dumps(
                device("10.0.0.1", ep_ext_data={"group_name": "g"})), clock)

            assert outcome.changed is changed[fmt]

    def test_device_json_depends_only_on_its_inputs(self) -> None:
        """A device's part of the report is one function of (dev_sno, view, format)."""
        clock = FakeClock()
        state = v2_state(clock)
        views = state.device_views(clock)
        report = report_of(state, clock)

        assert [device_json("F1-MQ", DEV_SNO, v) for v in views] == report["sub_devices"]
