"""Report build: the report for 10 / 1,000 / 10,000 devices, built and serialised.

In this process, no I/O. A `GatewayState` is fed the gateway's records and N
device records; then, timed:
- build + serialise: `GatewayState.report_body`, what the service sends
  (device order known, each device's serialised entry kept from the report
  before: the state between two changes);
- first build: the same just after a membership change, which sorts the
  devices by IP again and serialises the new device's entry (taken once per
  size, not repeated);
- baseline: `orjson.dumps` of the finished report dict alone, the least that
  turning this state into a body can cost.
The same for the later releases' formats at the largest size: F4 (V2R6C01,
nested metrics, one report with the devices) and F7 + F8 (V6: the box's
report and the media devices' report, both built, against `orjson.dumps` of
both), with the box's nested metrics and hardware record in the state.
Each is the best of several repeats of a loop long enough to time.
"""

from __future__ import annotations

import functools
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.stack import BASE, PREFIX, SN, Row, device_ip, device_payload, gateway_records
from bridge.freshness import SystemClock
from bridge.releases import ReportFormat
from bridge.report import dumps
from bridge.state import GatewayState
from bridge.topics import parse

NAME = "report build"
SIZES = (10, 1_000, 10_000)
TARGET = 3.0  # x orjson.dumps, for 10,000 devices


def _feed(state: GatewayState, topic: str, payload: bytes) -> None:
    state.apply(parse(f"{BASE}/{topic}", PREFIX), payload, SystemClock())


GIB = 2**30
# What a Sophon box's gateway collector adds for the nested reports, and its hardware record.
NESTED_METRICS = {
    "cpu_model": "A53", "cpu_freq_mhz": 2300.0, "cpu_cores": 8,
    "memory_total_bytes": 4 * GIB, "memory_free_bytes": 3 * GIB,
    "disk_total_bytes": 30 * GIB, "disk_free_bytes": 13 * GIB, "uptime": 9600,
    "core_temperature": 45.0, "board_temperature": 47.0, "fan_speed": 0.0, "temperature": 45,
}
HARDWARE = {
    "tpu_usage": 0.15, "tpu_description": "INT8 17.6TOP;FP32 2.2TFLOPS",
    "tpu_memory": {"total_bytes": 4 * GIB, "used_bytes": GIB // 2},
    "video_memory": {"total_bytes": 4 * GIB, "used_bytes": GIB // 8},
    "board_memory_bytes": 12 * GIB, "emmc_nominal_bytes": 32 * GIB,
    "hdd": {"mounted": True, "nominal_bytes": 500 * GIB, "total_bytes": 480 * GIB,
            "free_bytes": 200 * GIB},
    "nnsdk_version": "2.0.3_20200512_175058",
}
# (measure, gateway report format, separate devices report format) at the largest size.
RELEASES: tuple[tuple[str, ReportFormat, ReportFormat | None], ...] = (
    ("F4 (V2R6C01)", "F4", None),
    ("F7 + F8 (V6R1C01)", "F7", "F8"),
)


def _state(devices: int, fmt: ReportFormat = "F2",
           devices_fmt: ReportFormat | None = None) -> GatewayState:
    state = GatewayState(SN, max_devices=20_000, fmt=fmt, devices_fmt=devices_fmt)
    state.port = 80
    records = gateway_records()
    if fmt != "F2":
        metrics = {**orjson.loads(records["gateway/metrics"]), **NESTED_METRICS}
        records = {**records, "gateway/metrics": orjson.dumps(metrics),
                   "gateway/hardware": orjson.dumps(HARDWARE)}
    for topic, payload in records.items():
        _feed(state, topic, payload)
    now = time.time()
    for i in range(devices):
        _feed(state, f"devices/{device_ip(i)}/state", device_payload(i, ts=now, ttl=86400))
    return state


def _best(func: Callable[[], object], budget: float = 0.2, repeat: int = 5) -> float:
    """Seconds per call: the best of `repeat` loops of about `budget` seconds each."""
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    number = max(1, int(number * budget / 0.2))
    return min(timer.repeat(repeat, number)) / number


def run(_workdir: Path, sizes: tuple[int, ...] = SIZES) -> tuple[list[Row], dict[str, Any]]:
    clock = SystemClock()
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for n in sizes:
        state = _state(n)
        # A membership change (one device gone and back): the next report sorts again.
        _feed(state, f"devices/{device_ip(0)}/state", b"")
        _feed(state, f"devices/{device_ip(0)}/state", device_payload(0, ts=time.time(), ttl=86400))
        t0 = time.perf_counter()
        first = state.report_body(clock)
        first_build = time.perf_counter() - t0
        report = state.report(clock)
        assert report is not None
        assert first is not None
        assert len(report["sub_devices"]) == n
        build = _best(functools.partial(state.report_body, clock))
        baseline = _best(functools.partial(orjson.dumps, report))
        body = state.report_body(clock)
        assert body is not None
        assert body[0] == dumps(report)
        size = f"{n:,} devices"
        target = n == max(sizes)
        rows.append(Row(NAME, f"build + serialise, {size}", build * 1e6, "µs",
                        "orjson.dumps alone", baseline * 1e6,
                        f"≤ {TARGET:g}x" if target else "",
                        build <= TARGET * baseline if target else None))
        rows.append(Row(NAME, f"first build after a change, {size}", first_build * 1e6, "µs",
                        "orjson.dumps alone", baseline * 1e6))
        details[str(n)] = {"build_s": build, "orjson_s": baseline,
                           "first_build_s": first_build, "body_bytes": len(body[0])}
    for measure, fmt, devices_fmt in RELEASES:
        row, detail = _release(max(sizes), measure, fmt, devices_fmt)
        rows.append(row)
        details[f"{fmt}{'+' + devices_fmt if devices_fmt else ''}"] = detail
    return rows, details


def _release(n: int, measure: str, fmt: ReportFormat,
             devices_fmt: ReportFormat | None) -> tuple[Row, dict[str, Any]]:
    """Both reports of a release (one, or the box's and the devices'), built and serialised
    between two changes, against orjson.dumps of the finished reports."""
    clock = SystemClock()
    state = _state(n, fmt, devices_fmt)
    reports = [state.report(clock)]
    if devices_fmt is not None:
        reports.append(state.devices_report(clock))

    def build() -> int:
        size = 0
        gateway = state.report_body(clock)
        assert gateway is not None
        size += len(gateway[0])
        if devices_fmt is not None:
            devices = state.devices_body(clock)
            assert devices is not None
            size += len(devices[0])
        return size

    def baseline() -> None:
        for report in reports:
            orjson.dumps(report)

    bodies = [state.report_body(clock), state.devices_body(clock)]
    made = [body[0] for body in bodies if body is not None]
    assert made == [dumps(report) for report in reports if report is not None]
    body_bytes = build()
    built, plain = _best(build), _best(baseline)
    row = Row(NAME, f"{measure} build + serialise, {n:,} devices", built * 1e6, "µs",
              "orjson.dumps alone", plain * 1e6, f"≤ {TARGET:g}x", built <= TARGET * plain)
    return row, {"build_s": built, "orjson_s": plain, "body_bytes": body_bytes}
