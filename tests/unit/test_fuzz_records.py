"""Property-based tests: what the bridge admits from MQTT, whatever arrives (docs/reliability.md).

Two units, each against an independent statement of the protocol:
- `bridge.records.parse_record`, for every topic kind: arbitrary bytes and
  arbitrary JSON never raise anything but `RecordError`, and a record is
  admitted exactly when `conforms()` (written here from docs/topics.md, not from
  the parser) says it is a conforming record;
- `bridge.state.GatewayState.apply` fed arbitrary topics and payloads: only
  `RecordError`, a refused message changes nothing, the device cap holds, and a
  retained replay after a clock step of hours changes no status.

Payloads are written with the standard library's `json`, which also emits what
orjson refuses (NaN, Infinity, integers beyond 64 bits, lone surrogates).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bridge.errors import RecordError
from bridge.records import (
    DeviceState,
    GatewayHardware,
    GatewayInfo,
    GatewayMetrics,
    parse_record,
)
from bridge.report import dumps
from bridge.state import GatewayState
from bridge.topics import Kind, TopicError, Topics, parse
from tests.fakes import FakeClock

PREFIX = "se3"
SN = "SZCCKQRAIJBAH0002"
TOPICS = Topics(PREFIX, SN)
MAX_SIZE = 16_384
MONTH = 30 * 86400
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODELS: dict[Kind, type[Any]] = {
    Kind.GATEWAY_INFO: GatewayInfo,
    Kind.GATEWAY_METRICS: GatewayMetrics,
    Kind.GATEWAY_HARDWARE: GatewayHardware,
    Kind.DEVICE_STATE: DeviceState,
}
FIELDS = sorted({name for model in MODELS.values() for name in model.__pydantic_fields__})
# A RecordError's code becomes a metric label: it must come from a small, fixed set.
CODES = {*FIELDS, "json", "size", "invalid"}

# -- the contract, stated independently of the parser ----------------------

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _in(value: object, low: float, high: float) -> bool:
    return _number(value) and low <= value <= high  # type: ignore[operator]


_BREAKS = "\n\r"
_MARKS = "\u061c\u200e\u200f\u2028\u2029" + "".join(map(chr, [*range(0x202A, 0x202F),
                                                                *range(0x2066, 0x206A)]))


def _controls(value: str, lines: bool) -> bool:
    """Whether `value` holds a control character (C0, DEL, C1, bidi and separator marks)."""
    return any((ord(c) < 0x20 and not (lines and c in _BREAKS)) or 0x7F <= ord(c) <= 0x9F
               or c in _MARKS for c in value)


def _text(value: object, low: int, high: int, lines: bool = False) -> bool:
    return (isinstance(value, str) and low <= len(value) <= high
            and not _controls(value, lines))


def _address_text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 256


def _ip(value: object) -> str | None:
    """The canonical IP that `value` spells, or None."""
    if not _address_text(value):
        return None
    text = str(value).strip()
    _, percent, scope = text.partition("%")
    if percent and not re.fullmatch(r"[A-Za-z0-9_.-]{1,16}", scope):
        return None  # a scope is a short interface name
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _optional(doc: dict[str, Any], key: str, check: Any) -> bool:
    return doc.get(key) is None or bool(check(doc[key]))


def _optional_text(doc: dict[str, Any], key: str, check: Any) -> bool:
    """An optional string key: absent, null and blank ("unknown") all pass."""
    value = doc.get(key)
    return value is None or (isinstance(value, str) and not value.strip()) or bool(check(value))


def _bytes(value: object) -> bool:
    return type(value) is int and 0 <= value <= 2**60


def _object(value: object, required: dict[str, Any], optional: dict[str, Any]) -> bool:
    """A JSON object with each `required` key passing its check, each `optional` one absent,
    null or passing; other keys ignored."""
    return (isinstance(value, dict)
            and all(k in value and check(value[k]) for k, check in required.items())
            and all(_optional(value, k, check) for k, check in optional.items()))


def _fresh(doc: dict[str, Any]) -> bool:
    return (_optional(doc, "ts", lambda v: _in(v, 0, math.inf) and v > 0)
            and _optional(doc, "ttl", lambda v: _in(v, 0, MONTH) and v > 0))


def conforms(kind: Kind, doc: object, key: str = "") -> bool:
    """Whether `doc` (a decoded JSON value) is a record docs/topics.md admits on topic `kind`."""
    if kind not in MODELS or not isinstance(doc, dict):
        return False
    if not _optional(doc, "source", lambda v: _text(v, 1, 128)):
        return False
    if kind is Kind.GATEWAY_INFO:
        return (
            "gateway_ip" in doc and _ip(doc["gateway_ip"]) is not None
            and _text(doc.get("gateway_name"), 1, 256) and bool(doc["gateway_name"].strip())
            and _text(doc.get("dev_sno"), 1, 128) and bool(doc["dev_sno"].strip())
            and _text(doc.get("sw_version"), 0, 4096, lines=True)
            and _optional_text(doc, "sdk_version", lambda v: _text(v, 0, 256))
            and _optional_text(doc, "gateway_mac", lambda v: _address_text(v) and _MAC.fullmatch(
                v.strip().lower().replace("-", ":")) is not None)
        )
    if kind is Kind.GATEWAY_METRICS:
        temperature = doc.get("temperature")
        return (
            _fresh(doc)
            and _optional(doc, "cpu_usage", lambda v: _in(v, 0, 100))
            and _optional(doc, "memory_usage", lambda v: _in(v, 0, 1))
            and all(_optional(doc, k, lambda v: _in(v, 0, math.inf))
                    for k in ("memory_size", "disk_size", "disk_free_size"))
            and (temperature is None or (type(temperature) is int
                                         and -100 <= temperature <= 300))
            and _optional_text(doc, "cpu_model", lambda v: _text(v, 0, 256))
            and _optional(doc, "cpu_freq_mhz", lambda v: _in(v, 0, 100_000) and v > 0)
            and _optional(doc, "cpu_cores", lambda v: type(v) is int and 1 <= v <= 65_536)
            and all(_optional(doc, k, _bytes) for k in (
                "memory_total_bytes", "memory_free_bytes", "disk_total_bytes", "disk_free_bytes"))
            and _optional(doc, "uptime", lambda v: _in(v, 0, math.inf))
            and all(_optional(doc, k, lambda v: _in(v, -100, 300))
                    for k in ("core_temperature", "board_temperature"))
            and _optional(doc, "fan_speed", lambda v: _in(v, 0, 1_000_000))
        )
    if kind is Kind.GATEWAY_HARDWARE:
        region = {"total_bytes": _bytes, "used_bytes": _bytes}
        disk = dict.fromkeys(("nominal_bytes", "total_bytes", "free_bytes"), _bytes)
        return (
            _fresh(doc)
            and _optional(doc, "tpu_usage", lambda v: _in(v, 0, 1))
            and all(_optional_text(doc, k, lambda v: _text(v, 0, 256))
                    for k in ("tpu_description", "nnsdk_version"))
            and all(_optional(doc, k, lambda v: _object(v, region, {}))
                    for k in ("tpu_memory", "video_memory"))
            and all(_optional(doc, k, _bytes) for k in ("board_memory_bytes", "emmc_nominal_bytes"))
            and _optional(doc, "hdd", lambda v: _object(
                v, {"mounted": lambda m: isinstance(m, bool)}, disk))
        )
    ep_ip = doc.get("ep_ip")
    return (
        _fresh(doc)
        and doc.get("ep_status") in ("online", "offline")
        and doc.get("ep_type") in ("0", "1", "2", "3", "4")
        and _text(doc.get("ep_location"), 1, 256) and bool(doc["ep_location"].strip())
        and _text(doc.get("ep_name", ""), 0, 256)
        and _optional_text(doc, "ep_url", lambda v: _text(v, 0, 2048))
        and _optional(doc, "ep_ext_data", lambda v: isinstance(v, dict) and all(
            _optional_text(v, k, lambda t: _text(t, 0, 256)) for k in ("sw_version", "group_name")))
        and (ep_ip is None or (_ip(ep_ip) is not None and (not key or _ip(ep_ip) == key)))
        and _optional(doc, "media_type", lambda v: v in ("photo", "rtsp", "file", "gb28181"))
        and all(_optional_text(doc, k, lambda v: _text(v, 0, 256))
                for k in ("media_device_id", "permission_id"))
    )


# -- strategies ------------------------------------------------------------

# Text without control characters (Cc), format marks (Cf: bidi) or separators (Zl, Zp).
PRINTABLE = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))

SCALARS = (
    st.none() | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()  # NaN and ±Infinity included: json writes them, orjson refuses them
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                               max_size=4),
    max_leaves=12,
)
EDGES: st.SearchStrategy[Any] = st.sampled_from([
    "online", "offline", "Online", "up", "", " ", "0", "4", "9", "2 ", 2, 0, -1, 0.0, -0.0,
    1, 1.0, 1.5, 100, 100.5, 300, 301, -100, -101, 45.0, True, False, None, MONTH, MONTH + 1,
    1e308, 2**63, 2**64, "10.0.0.1", " 10.0.0.1 ", "10.0.0.01", "::1", "2001:DB8::1",
    "fe80::1%eth0", "1.2.3", "e0:a5:09:00:0e:6d", "E0-A5-09-00-0E-6D", "e0:a5:09:00:0e:6d\n",
    "e0:a5:09:00:0e", "x" * 128, "x" * 129, "x" * 256, "x" * 257, "x" * 2049, "x" * 4097,
    [], {}, ["online"],
])
VALUES = EDGES | SCALARS
RECORDS = st.dictionaries(st.sampled_from([*FIELDS, "ep_id", "extra"]), VALUES,
                          max_size=len(FIELDS))
KEYS = st.sampled_from(["", "10.0.0.1", "::1", "2001:db8::1"])


def encode(value: object) -> bytes:
    """JSON as any publisher might write it, NaN and lone surrogates included."""
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def outcome(kind: Kind, payload: bytes, key: str = "") -> object | RecordError:
    """The admitted record, or the RecordError; anything else raised fails the test."""
    try:
        return parse_record(kind, payload, key, MAX_SIZE)
    except RecordError as exc:
        error = exc
    assert str(error)
    assert error.code in CODES, error.code
    return error


def _finite(value: object) -> bool:
    """Whether the JSON value holds only finite floats (orjson refuses NaN and ±Infinity)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def _big(value: object) -> bool:
    """Whether the JSON value holds an integer orjson reads as a float (beyond 64 bits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**64
    if isinstance(value, list):
        return any(_big(v) for v in value)
    if isinstance(value, dict):
        return any(_big(v) for v in value.values())
    return False


class TestParseRecord:
    @PROPERTY
    @given(kind=st.sampled_from(Kind), payload=st.binary(max_size=300), key=KEYS)
    def test_arbitrary_bytes_raise_only_record_error(
        self, kind: Kind, payload: bytes, key: str
    ) -> None:
        """Any bytes on any topic kind: a record or a RecordError with a bounded code."""
        outcome(kind, payload, key)

    @PROPERTY
    @given(kind=st.sampled_from(Kind), value=JSON_VALUES, key=KEYS)
    def test_arbitrary_json_is_admitted_only_when_conforming(
        self, kind: Kind, value: object, key: str
    ) -> None:
        """Any JSON value: admitted exactly when it is a conforming record of that kind."""
        assume(not _big(value))
        result = outcome(kind, encode(value), key)
        assert (not isinstance(result, RecordError)) == (_finite(value)
                                                         and conforms(kind, value, key))

    @PROPERTY
    @given(kind=st.sampled_from(Kind), doc=RECORDS, key=KEYS)
    @example(kind=Kind.GATEWAY_INFO, key="", doc={
        "gateway_ip": "10.0.0.1", "gateway_name": "g", "dev_sno": "d", "sw_version": "",
        "gateway_mac": " ", "sdk_version": ""})
    @example(kind=Kind.DEVICE_STATE, key="", doc={
        "ep_status": "online", "ep_type": "2", "ep_location": "L", "ep_url": "\u3000"})
    def test_contract_fields_with_edge_values(
        self, kind: Kind, doc: dict[str, Any], key: str
    ) -> None:
        """Objects of the protocol's field names and edge values: admitted iff conforming."""
        assume(not _big(doc))
        result = outcome(kind, encode(doc), key)
        admitted = not isinstance(result, RecordError)
        assert admitted == (_finite(doc) and conforms(kind, doc, key)), result

    @PROPERTY
    @given(
        status=st.sampled_from(["online", "offline"]),
        ep_type=st.sampled_from(["0", "1", "2", "3", "4"]),
        location=st.text(PRINTABLE, min_size=1, max_size=256).filter(str.strip),
        ts=st.floats(min_value=1e-3, max_value=1e12),
        ttl=st.floats(min_value=1e-3, max_value=MONTH),
        source=st.text(PRINTABLE, min_size=1, max_size=128),
    )
    def test_every_conforming_device_is_admitted_as_sent(
        self, status: str, ep_type: str, location: str, ts: float, ttl: float, source: str
    ) -> None:
        """A device record inside every range is admitted, its values unchanged."""
        doc = {"ep_status": status, "ep_type": ep_type, "ep_location": location, "ts": ts,
               "ttl": ttl, "source": source}
        record = outcome(Kind.DEVICE_STATE, encode(doc))
        assert isinstance(record, DeviceState)
        assert (record.ep_status, record.ep_type, record.ep_location) == (status, ep_type,
                                                                          location)
        assert (record.ts, record.ttl, record.source) == (ts, ttl, source)

    @PROPERTY
    @given(kind=st.sampled_from(Kind), filler=st.integers(min_value=1, max_value=4096))
    def test_oversized_payload_is_refused_for_its_size(self, kind: Kind, filler: int) -> None:
        """Over max_size bytes, even a conforming record is refused with code `size`."""
        doc = {"ep_status": "online", "ep_type": "2", "ep_location": "x", "pad": "p" * MAX_SIZE}
        result = outcome(kind, encode(doc)[: MAX_SIZE + filler])
        assert isinstance(result, RecordError)
        assert kind not in MODELS or result.code == "size"

    @pytest.mark.parametrize("payload", [
        b'{"ep_status":"online","ep_type":"2","ep_location":"x","ts":1e400}',
        b'{"ep_status":"online","ep_type":"2","ep_location":"x","ttl":NaN}',
        b'{"ep_status":"online","ep_type":"2","ep_location":"\\ud800"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b"\xef\xbb\xbf{}",
        "{\"ep_status\":\"online\",\"ep_type\":\"2\",\"ep_location\":\"\udc80\"}".encode(
            "utf-8", "surrogatepass"),
    ])
    def test_json_that_breaks_decoders_is_refused(self, payload: bytes) -> None:
        """Overflowing numbers, NaN, lone surrogates, deep nesting, a BOM: RecordError."""
        assert isinstance(outcome(Kind.DEVICE_STATE, payload), RecordError)


# -- GatewayState.apply ------------------------------------------------------



WALL = 1_700_000_000.0
IPS = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", "::1", "2001:db8::1",
                       "fe80::1%eth0", "999.1.1.1", "10.0.0.01", "x", ""])
SEGMENT = st.sampled_from([
    PREFIX, SN, "OTHERSN", "devices", "gateway", "info", "metrics", "state", "collectors",
    "status", "bridge", "report", "errors", "config", "report_url", "fence", "", "+", "#",
    "10.0.0.1", "::1", "gw",
]) | st.text(max_size=10)
TOPIC = st.one_of(
    st.builds(TOPICS.device_state, IPS),
    st.sampled_from([TOPICS.gateway_info, TOPICS.gateway_metrics, TOPICS.report_url,
                     TOPICS.bridge_status, TOPICS.bridge_report, TOPICS.bridge_errors]),
    st.builds(TOPICS.collector_status, st.sampled_from(["devices", "app", "gw", ""])),
    st.lists(SEGMENT, min_size=1, max_size=6).map("/".join),
    st.text(max_size=40),
)
DEVICE_DOC = st.fixed_dictionaries(
    {"ep_status": st.sampled_from(["online", "offline", "up"]),
     "ep_type": st.sampled_from(["1", "2", "9"]),
     "ep_location": st.sampled_from(["loc", ""])},
    optional={"ts": st.floats(WALL - 7200, WALL + 7200), "ttl": st.sampled_from([1, 30, 600]),
              "source": st.sampled_from(["devices", "app"]), "ep_name": VALUES,
              "ep_ip": IPS, "ep_url": VALUES},
)
GOOD_DEVICE = st.fixed_dictionaries(
    {"ep_status": st.sampled_from(["online", "offline"]), "ep_type": st.just("2"),
     "ep_location": st.just("loc"), "ts": st.floats(WALL - 700, WALL + 700),
     "ttl": st.sampled_from([30, 600, 3600])},
    optional={"source": st.sampled_from(["devices", "app"])},
)
INFO_DOC = st.fixed_dictionaries(
    {"gateway_ip": st.sampled_from(["192.168.1.251", "1.2.3"]),
     "gateway_name": st.sampled_from(["gw", ""]), "dev_sno": st.just("ZKZ"),
     "sw_version": st.just("V1")},
    optional={"gateway_mac": EDGES, "source": VALUES},
)
METRICS_DOC = st.fixed_dictionaries(
    {}, optional={"cpu_usage": VALUES, "memory_usage": VALUES, "temperature": VALUES,
                  "ts": st.floats(WALL - 7200, WALL + 7200), "ttl": st.sampled_from([1, 30])},
)
PAYLOAD = st.one_of(
    (DEVICE_DOC | INFO_DOC | METRICS_DOC | JSON_VALUES).map(encode),
    st.sampled_from([b"", b"online", b"offline", b" offline\n", b"maybe",
                     b"http://127.0.0.1:9528/DeviceStatus", b"ftp://x", b",,",
                     b"http://127.0.0.1/a, https://127.0.0.1/b", b"\xff\xfe"]),
    st.binary(max_size=64),
)
# One step: a message, or time passing (seconds), or NTP stepping the wall clock.
STEP = st.one_of(
    st.tuples(TOPIC, PAYLOAD),
    st.tuples(st.builds(TOPICS.device_state, st.sampled_from(["10.0.0.1", "10.0.0.2", "::1"])),
              (DEVICE_DOC | GOOD_DEVICE).map(encode)),
    st.tuples(st.just(TOPICS.collector_status("devices")),
              st.sampled_from([b"online", b"offline"])),
    st.tuples(st.just("tick"), st.floats(0, 120)),
    st.tuples(st.just("ntp"), st.sampled_from([-3 * 3600.0, 3 * 3600.0, -60.0, 86400.0])),
)


def snapshot(state: GatewayState, clock: FakeClock) -> tuple[object, ...]:
    """Everything of the state that a message may change, as comparable values."""
    report = state.report(clock)
    return (
        None if report is None else dumps(report),
        frozenset(state.offline_sources),
        {ip: (slot.raw, slot.deadline) for ip, slot in state.devices.items()},
        state.current_metrics(clock),
        state.next_expiry(),
    )


def feed(state: GatewayState, clock: FakeClock, steps: list[tuple[Any, Any]],
         retained: dict[str, bytes]) -> None:
    """Apply `steps` as the bridge's main loop would; keep the broker's retained set."""
    for topic, value in steps:
        if topic == "tick":
            clock.wall_time += value
            clock.mono_time += value
            state.expire(clock)
            continue
        if topic == "ntp":
            clock.wall_time += value
            continue
        assert isinstance(value, bytes)
        if value:
            retained[topic] = value
        else:
            retained.pop(topic, None)
        try:
            ref = parse(topic, PREFIX)
        except TopicError:
            continue  # the service refuses it before the state sees it
        if ref.sn != SN:
            continue
        before = snapshot(state, clock)
        refused: RecordError | None = None
        try:
            state.apply(ref, value, clock)
        except RecordError as exc:
            refused = exc
        if refused is not None:
            assert refused.code in {*CODES, "status", "url", "limit"}, refused.code
            assert snapshot(state, clock) == before, "a refused message changed the state"
        assert len(state.devices) <= state.table.max_devices
        assert len(state.table._expiries) <= 2 * len(state.devices) + 65  # no pile-up of deadlines
        state.counts(clock)
        state.device_views(clock)


class TestGatewayStateApply:
    @PROPERTY
    @given(steps=st.lists(STEP, max_size=40), cap=st.sampled_from([1, 3, 1000]))
    def test_arbitrary_messages_raise_only_record_error_and_refusals_change_nothing(
        self, steps: list[tuple[Any, Any]], cap: int
    ) -> None:
        """Any topics, payloads, ticks and clock steps: only RecordError, state intact, cap kept."""
        state = GatewayState(SN, max_devices=cap, max_payload=MAX_SIZE)
        feed(state, FakeClock(), steps, {})

    @PROPERTY
    @given(steps=st.lists(STEP, max_size=40),
           jump=st.sampled_from([-3 * 3600.0, 3 * 3600.0, -86400.0, 10 * 86400.0]))
    def test_replay_after_clock_step_changes_no_status(
        self, steps: list[tuple[Any, Any]], jump: float
    ) -> None:
        """The broker's retained set replayed after an NTP step leaves the report as it was,
        records without `ts` included (a replay of held bytes is no refresh)."""
        state, clock = GatewayState(SN), FakeClock()
        retained = {TOPICS.gateway_info: encode({
            "gateway_ip": "192.168.1.251", "gateway_name": "gw", "dev_sno": "ZKZ",
            "sw_version": "V1"})}
        state.apply(parse(TOPICS.gateway_info, PREFIX), retained[TOPICS.gateway_info], clock)
        feed(state, clock, steps, retained)
        before = state.report(clock)
        assume(before is not None)  # the gateway/info record was deleted or replaced
        clock.wall_time += jump
        for topic, payload in retained.items():
            try:
                state.apply(parse(topic, PREFIX), payload, clock, replayed=True)
            except (TopicError, RecordError):
                continue
        assert state.report(clock) == before

    @settings(max_examples=30, deadline=None)
    @given(count=st.integers(min_value=70, max_value=300), spread=st.integers(1, 3),
           ttl=st.sampled_from([30, 600, MONTH]))
    def test_refreshes_do_not_pile_up_deadlines(self, count: int, spread: int, ttl: int) -> None:
        """Hundreds of refreshes, each with a new ts: the deadlines kept stay proportional."""
        state, clock = GatewayState(SN), FakeClock()
        ips = ["10.0.0.1", "10.0.0.2", "::1"][:spread]
        for n in range(count):
            clock.wall_time += 0.5
            clock.mono_time += 0.5
            record = {"ep_status": "online", "ep_type": "2", "ep_location": "x",
                      "ts": clock.wall_time, "ttl": ttl}
            state.apply(parse(TOPICS.device_state(ips[n % spread]), PREFIX), encode(record),
                        clock)
            assert len(state.table._expiries) <= 2 * len(state.devices) + 65
