"""Tests for bridge.records: what the bridge admits from MQTT, what it refuses (docs/topics.md)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import RecordError, Se3Error
from bridge.records import (
    DeviceState,
    GatewayHardware,
    GatewayInfo,
    GatewayMetrics,
    fields_of,
    parse_as,
    parse_record,
)
from bridge.topics import Kind

SW_VERSION = "build.date=2019年 08月 06日 星期二 17:42:49 CST\nVERSION: V2R1C01\n"


def info(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "gateway_ip": "192.168.1.251",
        "gateway_name": "bm1682landy93",
        "dev_sno": "ZKZCPI000120190807142601",
        "sw_version": SW_VERSION,
    }
    record.update(changes)
    return record


def device(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ep_status": "online",
        "ep_type": "2",
        "ep_location": "95274d2c-0941-4d96-b032-ab200f81362c",
    }
    record.update(changes)
    return record


def js(value: Any) -> bytes:
    """JSON bytes; the stdlib encoder, as orjson refuses integers beyond 64 bits."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def refused(kind: Kind, payload: bytes, key: str = "", max_size: int = 16_384) -> RecordError:
    """The RecordError that parse_record raises for `payload`."""
    with pytest.raises(RecordError) as info_:
        parse_record(kind, payload, key, max_size)
    return info_.value


class TestAccepted:
    def test_spec_gateway_info(self) -> None:
        """The spec's gateway info parses; the stray space after the IP is stripped."""
        record = parse_record(
            Kind.GATEWAY_INFO,
            js(info(gateway_ip="192.168.1.251 ", sdk_version="1.1.56d1e91",
                    gateway_mac="e0:a5:09:00:0e:6d")),
        )

        assert isinstance(record, GatewayInfo)
        assert record.gateway_ip == "192.168.1.251"
        assert record.sw_version == SW_VERSION
        assert record.sdk_version == "1.1.56d1e91"

    def test_spec_metrics(self) -> None:
        """The spec's metrics parse as floats, with ts and ttl."""
        record = parse_record(
            Kind.GATEWAY_METRICS,
            js({"cpu_usage": 6.5, "memory_size": 1.55, "memory_usage": 0.77, "disk_size": 10.39,
                "disk_free_size": 9.41, "temperature": 45, "ts": 1_700_000_000, "ttl": 30}),
        )

        assert isinstance(record, GatewayMetrics)
        assert (record.cpu_usage, record.memory_usage, record.temperature) == (6.5, 0.77, 45)
        assert (record.ts, record.ttl) == (1_700_000_000, 30)

    def test_device_with_everything(self) -> None:
        """A full device record parses, ep_ip canonical."""
        record = parse_record(
            Kind.DEVICE_STATE,
            js(device(ep_ip="2001:DB8::1", ep_name="aaa", ep_url="rtsp://x/ch2", source="probe",
                      ts=1_700_000_000.5, ttl=90)),
            key="2001:db8::1",
        )

        assert isinstance(record, DeviceState)
        assert record.ep_ip == "2001:db8::1"
        assert (record.ep_name, record.ep_url, record.source) == ("aaa", "rtsp://x/ch2", "probe")

    def test_device_ep_ip_defaults_to_none(self) -> None:
        """ep_ip may be left out: the topic's IP is the device's."""
        record = parse_as(DeviceState, js(device()), "10.0.0.1")

        assert record.ep_ip is None
        assert record.ep_name == ""

    @pytest.mark.parametrize(
        ("given", "stored"),
        [
            ("E0:A5:09:00:0E:6D", "e0:a5:09:00:0e:6d"),
            ("e0-a5-09-00-0e-6d", "e0:a5:09:00:0e:6d"),
            (" e0:a5:09:00:0e:6d ", "e0:a5:09:00:0e:6d"),
        ],
    )
    def test_mac_is_normalised_to_lower_case(self, given: str, stored: str) -> None:
        """gateway_mac is stored lower case, colon-separated."""
        record = parse_as(GatewayInfo, js(info(gateway_mac=given)))

        assert record.gateway_mac == stored

    def test_ep_id_is_ignored(self) -> None:
        """A device record's ep_id, right or wrong, is dropped: the bridge derives it."""
        record = parse_as(DeviceState, js(device(ep_id="anything at all", ep_ip="10.0.0.1")))

        assert "ep_id" not in fields_of(record)

    def test_unknown_keys_are_ignored(self) -> None:
        """Keys the protocol does not name are ignored, so newer publishers keep working."""
        record = parse_as(DeviceState, js(device(vendor="acme", extra={"a": [1, 2]})))

        assert set(fields_of(record)) <= {f.name for f in dataclasses.fields(DeviceState)}
        assert not hasattr(record, "vendor")
        assert not hasattr(record, "extra")

    def test_integers_are_accepted_as_floats(self) -> None:
        """A whole number in a float field is admitted and held as a float."""
        record = parse_as(GatewayMetrics, js({"cpu_usage": 7, "disk_size": 10}))

        assert isinstance(record.cpu_usage, float)
        assert isinstance(record.disk_size, float)

    def test_payload_at_the_limit_is_accepted(self) -> None:
        """A payload of exactly max_size bytes is not refused for its size."""
        payload = js(device())
        parse_record(Kind.DEVICE_STATE, payload, max_size=len(payload))

    def test_ep_ip_equal_to_the_topic_after_canonicalisation(self) -> None:
        """ep_ip matching the topic's IP in another spelling is accepted."""
        record = parse_as(DeviceState, js(device(ep_ip="2001:0DB8::0001")), "2001:db8::1")

        assert record.ep_ip == "2001:db8::1"

    @pytest.mark.parametrize("blank", ["", "  "])
    def test_blank_optional_strings_are_unknown(self, blank: str) -> None:
        """ep_url, sdk_version and gateway_mac sent as "" are left out, not sent empty."""
        record = parse_as(DeviceState, js(device(ep_url=blank)))
        gateway = parse_as(GatewayInfo, js(info(sdk_version=blank, gateway_mac=blank)))

        assert record.ep_url is None
        assert (gateway.sdk_version, gateway.gateway_mac) == (None, None)

    def test_a_device_record_keeps_no_more_than_its_fields(self) -> None:
        """Held for each of thousands of devices: its fields in slots, no `__dict__` and no
        set of the fields given (a model's instance is five times the size)."""
        record = parse_as(DeviceState, js(device(ep_name="cam")))

        assert not hasattr(record, "__dict__")
        assert not hasattr(record, "__pydantic_fields_set__")
        assert record.ep_name == "cam"

    def test_records_are_frozen(self) -> None:
        """A parsed record cannot be changed afterwards."""
        record = parse_as(DeviceState, js(device()))
        gateway = parse_as(GatewayInfo, js(info()))

        with pytest.raises(dataclasses.FrozenInstanceError):
            record.ep_status = "offline"  # type: ignore[misc]
        with pytest.raises(ValueError, match="frozen"):
            gateway.gateway_name = "other"


class TestRefused:
    """Every kind of bad input (docs/reliability.md) is a RecordError naming the field."""

    @pytest.mark.parametrize("payload", [b"nope", b"{", b"{'a': 1}", b"", b"\xff\xfe", b"{}x"])
    def test_non_json(self, payload: bytes) -> None:
        """Bytes that are not JSON are refused with code json."""
        error = refused(Kind.DEVICE_STATE, payload)

        assert error.code == "json"
        assert "not JSON" in error.reason

    @pytest.mark.parametrize(
        ("payload", "what"),
        [(b"[]", "an array"), (b'"online"', "a string"), (b"null", "null"),
         (b"true", "a boolean"), (b"1.5", "a number")],
    )
    def test_json_non_object(self, payload: bytes, what: str) -> None:
        """JSON that is not an object is refused, saying what it was."""
        error = refused(Kind.GATEWAY_INFO, payload)

        assert error.code == "json"
        assert error.reason == f"not a JSON object but {what}"

    @pytest.mark.parametrize(
        ("kind", "record", "field"),
        [
            (Kind.DEVICE_STATE, device(ep_type=2), "ep_type"),
            (Kind.DEVICE_STATE, device(ep_status=True), "ep_status"),
            (Kind.DEVICE_STATE, device(ep_location=123), "ep_location"),
            (Kind.DEVICE_STATE, device(ep_name=None), "ep_name"),
            (Kind.DEVICE_STATE, device(ttl="30"), "ttl"),
            (Kind.DEVICE_STATE, device(ts=[1]), "ts"),
            (Kind.DEVICE_STATE, device(source=7), "source"),
            (Kind.GATEWAY_METRICS, {"cpu_usage": "6.5"}, "cpu_usage"),
            (Kind.GATEWAY_METRICS, {"cpu_usage": True}, "cpu_usage"),
            (Kind.GATEWAY_METRICS, {"temperature": 45.5}, "temperature"),
            (Kind.GATEWAY_INFO, info(gateway_name=1), "gateway_name"),
            (Kind.GATEWAY_INFO, info(sw_version=None), "sw_version"),
        ],
    )
    def test_wrong_type(self, kind: Kind, record: dict[str, Any], field: str) -> None:
        """A value of the wrong JSON type is refused, not coerced; the reason names the field."""
        error = refused(kind, js(record))

        assert error.field == field
        assert str(error).startswith(f"{field}: ")

    def test_ep_type_number_is_refused_with_what_was_got(self) -> None:
        """`"ep_type": 2` is refused and the reason shows the number it got."""
        error = refused(Kind.DEVICE_STATE, js(device(ep_type=2)))

        assert error.field == "ep_type"
        assert "(got 2)" in error.reason

    @pytest.mark.parametrize(
        ("record", "field"),
        [
            (device(ep_status="up"), "ep_status"),
            (device(ep_status="Online"), "ep_status"),
            (device(ep_type="9"), "ep_type"),
            (device(ep_type="5"), "ep_type"),
            (device(ep_type=""), "ep_type"),
        ],
    )
    def test_out_of_set(self, record: dict[str, Any], field: str) -> None:
        """A status or type outside its set is refused, naming the field."""
        error = refused(Kind.DEVICE_STATE, js(record))

        assert error.field == field
        assert error.code == field

    @pytest.mark.parametrize(
        ("record", "field"),
        [
            ({"memory_usage": 1.5}, "memory_usage"),
            ({"memory_usage": -0.01}, "memory_usage"),
            ({"cpu_usage": 101}, "cpu_usage"),
            ({"cpu_usage": 100.01}, "cpu_usage"),
            ({"cpu_usage": -1}, "cpu_usage"),
            ({"memory_size": -1}, "memory_size"),
            ({"disk_size": -0.5}, "disk_size"),
            ({"disk_free_size": -2}, "disk_free_size"),
            ({"temperature": 301}, "temperature"),
            ({"temperature": -101}, "temperature"),
            ({"ttl": 0}, "ttl"),
            ({"ttl": -5}, "ttl"),
            ({"ttl": 30 * 86400 + 1}, "ttl"),
            ({"ts": 0}, "ts"),
            ({"ts": -1}, "ts"),
        ],
    )
    def test_out_of_range(self, record: dict[str, Any], field: str) -> None:
        """A number outside its range is refused, naming the field."""
        error = refused(Kind.GATEWAY_METRICS, js(record))

        assert error.field == field

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            (b'{"cpu_usage": 1e300}', "cpu_usage"),
            (b'{"memory_usage": 1e308}', "memory_usage"),
            (b'{"temperature": 100000000000000000000000000000}', "temperature"),
            (b'{"temperature": 18446744073709551615}', "temperature"),
            (b'{"ttl": 1e300}', "ttl"),
        ],
    )
    def test_huge_finite_numbers_are_out_of_range(self, payload: bytes, field: str) -> None:
        """Huge numbers that JSON can carry are refused by range, naming the field."""
        assert refused(Kind.GATEWAY_METRICS, payload).field == field

    @pytest.mark.parametrize(
        "payload",
        [b'{"cpu_usage": 1e400}', b'{"disk_size": -1e999}', b'{"cpu_usage": NaN}',
         b'{"cpu_usage": Infinity}'],
    )
    def test_infinite_numbers_are_not_json(self, payload: bytes) -> None:
        """Numbers that would be NaN or infinite are refused as not JSON."""
        assert refused(Kind.GATEWAY_METRICS, payload).code == "json"

    def test_huge_sizes_that_fit_are_kept_as_sent(self) -> None:
        """Sizes have no upper bound: a huge but finite disk is admitted."""
        assert parse_as(GatewayMetrics, b'{"disk_size": 1e300}').disk_size == 1e300

    @pytest.mark.parametrize("bad", ["192.168.1.300", "x", "", "10.0.0", "10.0.0.1/24"])
    def test_bad_ep_ip(self, bad: str) -> None:
        """A device record whose ep_ip is not an IP address is refused on ep_ip."""
        error = refused(Kind.DEVICE_STATE, js(device(ep_ip=bad)))

        assert error.field == "ep_ip"

    @pytest.mark.parametrize("bad", ["192.168.1.300", "gateway.local", ""])
    def test_bad_gateway_ip(self, bad: str) -> None:
        """A gateway info whose gateway_ip is not an IP address is refused on gateway_ip."""
        error = refused(Kind.GATEWAY_INFO, js(info(gateway_ip=bad)))

        assert error.field == "gateway_ip"

    @pytest.mark.parametrize("bad", ["e0:a5:09:00:0e", "zz:a5:09:00:0e:6d", "e0a509000e6d"])
    def test_bad_mac(self, bad: str) -> None:
        """A gateway_mac that is not six hex pairs is refused on gateway_mac."""
        assert refused(Kind.GATEWAY_INFO, js(info(gateway_mac=bad))).field == "gateway_mac"

    @pytest.mark.parametrize("field", ["ep_status", "ep_type", "ep_location"])
    def test_missing_required_device_field(self, field: str) -> None:
        """A device record without a required field is refused, naming it."""
        record = device()
        del record[field]

        error = refused(Kind.DEVICE_STATE, js(record))

        assert error.field == field
        assert "required" in error.reason.lower()
        assert "(got" not in error.reason

    @pytest.mark.parametrize("field", ["gateway_ip", "gateway_name", "dev_sno", "sw_version"])
    def test_missing_required_info_field(self, field: str) -> None:
        """A gateway info without a required field is refused, naming it."""
        record = info()
        del record[field]

        assert refused(Kind.GATEWAY_INFO, js(record)).field == field

    @pytest.mark.parametrize("field", ["gateway_name", "dev_sno"])
    def test_empty_identity_is_refused(self, field: str) -> None:
        """An empty gateway_name or dev_sno is refused: the platform needs them."""
        assert refused(Kind.GATEWAY_INFO, js(info(**{field: ""}))).field == field

    def test_empty_location_is_refused(self) -> None:
        """ep_location is required and must not be empty."""
        assert refused(Kind.DEVICE_STATE, js(device(ep_location=""))).field == "ep_location"

    @pytest.mark.parametrize("field", ["gateway_name", "dev_sno"])
    def test_whitespace_only_identity_is_refused(self, field: str) -> None:
        """A gateway_name or dev_sno of whitespace alone is refused, as the platform would."""
        assert refused(Kind.GATEWAY_INFO, js(info(**{field: "  "}))).field == field

    @pytest.mark.parametrize("blank", [" ", "   ", "\t\n", "\u3000"])
    def test_whitespace_only_location_is_refused(self, blank: str) -> None:
        """An ep_location of whitespace alone identifies nothing: refused, naming the field."""
        error = refused(Kind.DEVICE_STATE, js(device(ep_location=blank)))

        assert error.field == "ep_location"
        assert "blank" in error.reason

    def test_several_errors_are_counted(self) -> None:
        """With several bad fields the reason names the first and counts the rest."""
        error = refused(Kind.DEVICE_STATE, js({"ep_status": "up"}))

        assert error.field == "ep_status"
        assert error.reason.endswith("and 2 more")

    def test_oversized_payload(self) -> None:
        """A payload over max_size bytes is refused with code size, before parsing."""
        payload = js(device(ep_name="x" * 100))

        error = refused(Kind.DEVICE_STATE, payload, max_size=len(payload) - 1)

        assert error.code == "size"
        assert f"{len(payload)} bytes" in error.reason

    def test_oversized_non_json_is_refused_for_size(self) -> None:
        """Size is checked before JSON: a huge garbage payload costs no parsing."""
        assert refused(Kind.DEVICE_STATE, b"\x00" * 20_000).code == "size"

    def test_over_long_strings_are_refused(self) -> None:
        """A string over its length limit is refused, naming the field."""
        assert refused(Kind.DEVICE_STATE, js(device(ep_name="n" * 257))).field == "ep_name"
        assert refused(Kind.GATEWAY_INFO, js(info(sw_version="v" * 4097))).field == "sw_version"

    def test_ep_ip_not_matching_the_topic(self) -> None:
        """A device record whose ep_ip differs from the topic's IP is refused on ep_ip."""
        error = refused(Kind.DEVICE_STATE, js(device(ep_ip="10.0.0.2")), key="10.0.0.1")

        assert error.field == "ep_ip"
        assert "10.0.0.2" in error.reason
        assert "10.0.0.1" in error.reason

    def test_reason_quotes_long_input_briefly(self) -> None:
        """A long bad value is shortened in the reason, so log lines stay short."""
        error = refused(Kind.DEVICE_STATE, js(device(ep_status="u" * 200)))

        assert len(error.reason) < 200
        assert "..." in error.reason

    @pytest.mark.parametrize(
        "kind", [Kind.COLLECTOR_STATUS, Kind.BRIDGE_STATUS, Kind.REPORT_URL, Kind.BRIDGE_ERRORS]
    )
    def test_kinds_without_a_record(self, kind: Kind) -> None:
        """Topics that carry no JSON record refuse parse_record with a RecordError."""
        refused(kind, js(device()))

    def test_record_error_is_a_se3_error(self) -> None:
        """RecordError belongs to the project's exception family."""
        assert issubclass(RecordError, Se3Error)


# -- property tests ---------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
FIELDS = sorted(
    set(GatewayInfo.model_fields) | set(GatewayMetrics.model_fields)
    | {f.name for f in dataclasses.fields(DeviceState)} | {"ep_id"}
)
# Values near the edges of the protocol's sets and ranges, plus anything at all.
INTERESTING = (
    st.sampled_from(["online", "offline", "up", "0", "4", "9", "", " ", "10.0.0.1", "::1",
                     "2001:DB8::1", "e0:A5:09:00:0e:6d", "1.2.3.400", "x" * 300])
    | st.floats(min_value=-2, max_value=2e9, allow_nan=False)
    | st.integers(min_value=-400, max_value=400)
    | JSON_VALUES
)
RECORDS = st.dictionaries(st.sampled_from(FIELDS), INTERESTING, max_size=6)
BASES = {
    Kind.GATEWAY_INFO: info(sdk_version="1.1", gateway_mac="e0:a5:09:00:0e:6d"),
    Kind.GATEWAY_METRICS: {"cpu_usage": 6.5, "memory_size": 1.55, "memory_usage": 0.77,
                           "disk_size": 10.39, "disk_free_size": 9.41, "temperature": 40,
                           "ts": 1_700_000_000, "ttl": 30},
    Kind.DEVICE_STATE: device(ep_ip="10.0.0.1", ep_name="a", ep_url="rtsp://x", ts=1.0, ttl=9),
}
KEYS = st.sampled_from(["", "10.0.0.1", "2001:db8::1"])

PROPERTY = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
SMALLER = settings(PROPERTY, max_examples=150)
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def check_contract(record: object) -> None:
    """Whatever parse_record admits obeys the protocol's sets and ranges."""
    if isinstance(record, DeviceState):
        assert record.ep_status in ("online", "offline")
        assert record.ep_type in ("0", "1", "2", "3", "4")
        assert record.ep_location
        assert record.ep_url is None or record.ep_url.strip()
        if record.ep_ip is not None:
            assert str(ipaddress.ip_address(record.ep_ip)) == record.ep_ip
    elif isinstance(record, GatewayMetrics):
        ranges = {"cpu_usage": (0, 100), "memory_usage": (0, 1), "memory_size": (0, math.inf),
                  "disk_size": (0, math.inf), "disk_free_size": (0, math.inf)}
        for key, (low, high) in ranges.items():
            value = getattr(record, key)
            if value is not None:
                assert isinstance(value, float)
                assert math.isfinite(value)
                assert low <= value <= high
        if record.temperature is not None:
            assert type(record.temperature) is int
            assert -100 <= record.temperature <= 300
    elif isinstance(record, GatewayHardware):
        assert record.tpu_usage is None or 0 <= record.tpu_usage <= 1
        for region in (record.tpu_memory, record.video_memory):
            assert region is None or min(region.total_bytes, region.used_bytes) >= 0
    elif isinstance(record, GatewayInfo):
        assert str(ipaddress.ip_address(record.gateway_ip)) == record.gateway_ip
        assert record.gateway_name
        assert record.dev_sno
        if record.gateway_mac is not None:
            assert MAC.match(record.gateway_mac)
        assert record.sdk_version is None or record.sdk_version.strip()
    else:
        raise AssertionError(f"unexpected record {record!r}")
    if isinstance(record, GatewayMetrics | GatewayHardware | DeviceState):
        if record.ts is not None:
            assert math.isfinite(record.ts)
            assert record.ts > 0
        if record.ttl is not None:
            assert 0 < record.ttl <= 30 * 86400


def parse_or_refuse(kind: Kind, payload: bytes, key: str = "") -> None:
    """parse_record either admits a conforming record or raises RecordError, nothing else."""
    refusal: RecordError | None = None
    try:
        record = parse_record(kind, payload, key)
    except RecordError as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.reason  # every refusal says why, for the log line and the event
        assert refusal.code
        return
    check_contract(record)
    if key and isinstance(record, DeviceState) and record.ep_ip is not None:
        assert record.ep_ip == key


class TestProperties:
    @PROPERTY
    @given(kind=st.sampled_from(Kind), payload=st.binary(max_size=200))
    def test_arbitrary_bytes(self, kind: Kind, payload: bytes) -> None:
        """Arbitrary bytes never raise anything but RecordError."""
        parse_or_refuse(kind, payload)

    @PROPERTY
    @given(kind=st.sampled_from(Kind), value=JSON_VALUES, key=KEYS)
    def test_arbitrary_json(self, kind: Kind, value: object, key: str) -> None:
        """Arbitrary JSON values never raise anything but RecordError."""
        parse_or_refuse(kind, js(value), key)

    @PROPERTY
    @given(kind=st.sampled_from(Kind), record=RECORDS, key=KEYS)
    def test_real_field_names_arbitrary_values(
        self, kind: Kind, record: dict[str, Any], key: str
    ) -> None:
        """Objects of the protocol's field names with arbitrary values: admitted ones conform."""
        parse_or_refuse(kind, js(record), key)

    @PROPERTY
    @given(
        kind=st.sampled_from(sorted(BASES, key=lambda k: k.value)),
        changes=st.dictionaries(st.sampled_from(FIELDS), INTERESTING, max_size=3),
        dropped=st.sets(st.sampled_from(FIELDS), max_size=2),
        key=KEYS,
    )
    def test_valid_records_with_arbitrary_changes(
        self, kind: Kind, changes: dict[str, Any], dropped: set[str], key: str
    ) -> None:
        """A valid record with a few fields changed or dropped: admitted only if it conforms."""
        record = {k: v for k, v in {**BASES[kind], **changes}.items() if k not in dropped}

        parse_or_refuse(kind, js(record), key)

    @SMALLER
    @given(
        status=st.sampled_from(["online", "offline"]),
        ep_type=st.sampled_from(["0", "1", "2", "3", "4"]),
        # no control characters (Cc), bidi marks (Cf) or line separators (Zl, Zp)
        location=st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp")),
                         min_size=1, max_size=256).filter(str.strip),
        extra=st.dictionaries(st.text(max_size=8).filter(lambda k: k not in FIELDS),
                              JSON_SCALARS, max_size=3),
    )
    def test_every_valid_device_is_admitted(
        self, status: str, ep_type: str, location: str, extra: dict[str, Any]
    ) -> None:
        """Every device record within the protocol is admitted as sent, whatever extra keys."""
        record = parse_as(DeviceState, js(
            {**extra, "ep_status": status, "ep_type": ep_type, "ep_location": location}))

        assert (record.ep_status, record.ep_type, record.ep_location) == (status, ep_type, location)

    @SMALLER
    @given(
        cpu=st.floats(min_value=0, max_value=100),
        usage=st.floats(min_value=0, max_value=1),
        size=st.floats(min_value=0, max_value=1e12),
    )
    def test_every_valid_metric_is_admitted(self, cpu: float, usage: float, size: float) -> None:
        """Metrics within their ranges are admitted unchanged."""
        record = parse_as(GatewayMetrics, js(
            {"cpu_usage": cpu, "memory_usage": usage, "disk_size": size}))

        assert (record.cpu_usage, record.memory_usage, record.disk_size) == (cpu, usage, size)


class TestEpExtData:
    """A device's optional `ep_ext_data`: sw_version and group_name, strings, each optional."""

    def test_absent_is_none(self) -> None:
        """A record without ep_ext_data has none (older publishers keep working)."""
        assert parse_as(DeviceState, js(device())).ep_ext_data is None

    def test_both_keys_are_kept(self) -> None:
        """sw_version and group_name come through as given; other keys are ignored."""
        record = parse_as(DeviceState, js(device(
            ep_ext_data={"sw_version": "V1.2.3", "group_name": "入口", "other": 1})))

        assert record.ep_ext_data is not None
        assert (record.ep_ext_data.sw_version, record.ep_ext_data.group_name) == (
            "V1.2.3", "入口")

    def test_blank_values_are_unknown(self) -> None:
        """A blank sw_version or group_name is unknown (left out), not an error."""
        record = parse_as(DeviceState, js(device(ep_ext_data={"sw_version": " ",
                                                              "group_name": ""})))

        assert record.ep_ext_data is not None
        assert (record.ep_ext_data.sw_version, record.ep_ext_data.group_name) == (None, None)

    @pytest.mark.parametrize(
        ("value", "field"),
        [
            ("V1", "ep_ext_data"),
            (["V1"], "ep_ext_data"),
            ({"sw_version": 1}, "ep_ext_data.sw_version"),
            ({"group_name": 2.5}, "ep_ext_data.group_name"),
            ({"group_name": "g" * 257}, "ep_ext_data.group_name"),
            ({"group_name": "a\x00b"}, "ep_ext_data.group_name"),
            ({"sw_version": "V1\u202e2"}, "ep_ext_data.sw_version"),
        ],
    )
    def test_bad_values_are_refused(self, value: object, field: str) -> None:
        """Not an object, a non-string value, an overlong one or one with a control character
        (as anywhere in a record) is refused, naming the key."""
        assert refused(Kind.DEVICE_STATE, js(device(ep_ext_data=value))).field == field


class TestPlainPayloads:
    """The per-field control-character check is skipped only where it cannot find one."""

    @pytest.mark.parametrize(("payload", "plain"), [
        (b'{"ep_name":"cam 1"}', True),
        (b'{"ep_name":"cam\\u0007"}', False),
        (b'{"ep_name":"a\\nb"}', False),
        (b'{"ep_name":"a\x7fb"}', False),
        ('{"ep_name":"a\u202eb"}'.encode(), False),
        ('{"ep_name":"摄像头"}'.encode(), False),
    ])
    def test_plain_means_ascii_without_escapes_or_del(self, payload: bytes, plain: bool) -> None:
        from bridge.records import _plain

        assert _plain(payload) is plain

    def test_a_control_character_is_still_refused_and_a_plain_record_taken(self) -> None:
        from bridge.errors import RecordError
        from bridge.records import DeviceState, parse_as

        base = b'{"ep_status":"online","ep_type":"2","ep_location":"x","ep_name":"%s"}'
        assert parse_as(DeviceState, base % b"cam").ep_name == "cam"
        for bad in (b"\\u0007", b"\x7f", "\u202e".encode()):
            with pytest.raises(RecordError, match="control character"):
                parse_as(DeviceState, base % bad)
