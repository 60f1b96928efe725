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
from bridge.report import dumps
from bridge.state import GatewayState
from bridge.topics import parse

NAME = "report build"
SIZES = (10, 1_000, 10_000)
TARGET = 3.0  # x orjson.dumps, for 10,000 devices


def _feed(state: GatewayState, topic: str, payload: bytes) -> None:
    state.apply(parse(f"{BASE}/{topic}", PREFIX), payload, SystemClock())


def _state(devices: int) -> GatewayState:
    state = GatewayState(SN, max_devices=20_000)
    for topic, payload in gateway_records().items():
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
    return rows, details
