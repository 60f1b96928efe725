"""What the box says about itself: its address and MAC, CPU, memory, disk, temperature.

The arithmetic is pure: `choose_address` takes the text of /proc/net/route and
the interface table, `measure` takes a `HostReader`. `PsutilReader` is the one
place that asks the real host, so tests hand in a fake reader and sample
route tables instead.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import psutil

from bridge.fields import TEMPERATURE_MAX, TEMPERATURE_MIN

logger = logging.getLogger(__name__)

GB = 2**30
_RTF_UP = 0x1
# Chips that carry the SoC / CPU temperature, in order of preference; when none
# is present, the hottest sensor stands for the board.
_PREFERRED_CHIPS = ("soc_thermal", "cpu_thermal", "cpu-thermal", "coretemp", "k10temp", "acpitz")
# psutil's non-blocking cpu_percent measures since its last call; over less
# than this the number is noise, so sample for this long.
_MIN_CPU_SAMPLE = 0.2


class AddrLike(Protocol):
    """One row of psutil.net_if_addrs(): an address of some family."""

    @property
    def family(self) -> int: ...

    @property
    def address(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Address:
    """The gateway's interface, IPv4 address and MAC (None when it has none)."""

    interface: str
    ip: str
    mac: str | None


def default_route_interface(route_text: str) -> str | None:
    """The interface of the default route with the lowest metric in /proc/net/route text."""
    best: tuple[int, str] | None = None
    for line in route_text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, destination, _gw, flags, _ref, _use, metric, mask = fields[:8]
        try:
            up = int(flags, 16) & _RTF_UP
            is_default = int(destination, 16) == 0 and int(mask, 16) == 0
            rank = int(metric)
        except ValueError:
            continue
        if up and is_default and (best is None or rank < best[0]):
            best = (rank, iface)
    return None if best is None else best[1]


def choose_address(
    configured: str,
    route_text: str,
    addrs: Mapping[str, Sequence[AddrLike]],
    link_family: int = psutil.AF_LINK,
) -> Address:
    """The configured interface, else the default route's, else the first one that is
    not loopback, else loopback: the first of these that has an IPv4 address."""
    ipv4 = {name: _ipv4(rows) for name, rows in addrs.items()}
    candidates = [configured, default_route_interface(route_text) or ""]
    candidates += [name for name, ip in ipv4.items() if ip and not _loopback(ip)]
    candidates += [name for name, ip in ipv4.items() if ip and _loopback(ip)]
    for name in candidates:
        ip = ipv4.get(name)
        if name and ip:
            return Address(name, ip, _mac(addrs[name], link_family))
    return Address("lo", "127.0.0.1", None)


def _ipv4(rows: Sequence[AddrLike]) -> str | None:
    return next((row.address for row in rows if row.family == socket.AF_INET), None)


def _loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


def _mac(rows: Sequence[AddrLike], link_family: int) -> str | None:
    for row in rows:
        if row.family == link_family:
            mac = row.address.lower().replace("-", ":")
            return None if mac.strip("0:") == "" else mac
    return None


class HostReader(Protocol):
    """The host's raw numbers, in bytes and percent."""

    def cpu_percent(self) -> float | None:
        """Percent busy since the previous call; None when there is no settled interval yet."""
        ...

    def memory(self) -> tuple[int, int]:
        """(total, available) bytes."""
        ...

    def disk(self, path: str) -> tuple[int, int]:
        """(total, free) bytes of the file system holding `path`; OSError if missing."""
        ...

    def temperatures(self) -> Mapping[str, Sequence[float]]:
        """Current readings in °C per sensor chip; empty where there are none."""
        ...


class PsutilReader:
    """HostReader over psutil; call it from one thread (cpu_percent is per thread)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_cpu: float | None = None

    def cpu_percent(self) -> float | None:
        """Percent busy since the previous call; None at the first call, which only starts
        the interval.

        A first number would measure the program's own start, and usually the
        box's or the whole stack's (the demo's first sample read 100 %): the
        first value published measures the interval up to the next call (one
        metrics interval), a settled one. A call sooner than 0.2 s after the
        previous one samples for 0.2 s, as shorter is noise.
        """
        now = self._clock()
        if self._last_cpu is None:
            psutil.cpu_percent(interval=None)  # starts psutil's interval
            self._last_cpu = now
            return None
        too_soon = now - self._last_cpu < _MIN_CPU_SAMPLE
        value = psutil.cpu_percent(interval=_MIN_CPU_SAMPLE if too_soon else None)
        self._last_cpu = self._clock()
        return value

    def memory(self) -> tuple[int, int]:
        mem = psutil.virtual_memory()
        return mem.total, mem.available

    def disk(self, path: str) -> tuple[int, int]:
        usage = psutil.disk_usage(path)
        return usage.total, usage.free

    def temperatures(self) -> Mapping[str, Sequence[float]]:
        sensors = getattr(psutil, "sensors_temperatures", None)
        if sensors is None:
            return {}
        try:
            chips = sensors()
        except OSError as exc:
            logger.debug("cannot read temperatures: %s", exc)
            return {}
        return {chip: [reading.current for reading in rows] for chip, rows in chips.items()}


def measure(reader: HostReader, data_path: str) -> dict[str, float | int]:
    """The gateway's metrics (docs/topics.md), rounded as the platform wants them.

    CPU usage is left out when there is no settled interval yet (the first
    call), disk sizes when `data_path` is missing, the temperature when the
    host has no usable sensor.
    """
    total, available = reader.memory()
    values: dict[str, float | int] = {}
    cpu = reader.cpu_percent()
    if cpu is not None:
        values["cpu_usage"] = round(min(max(cpu, 0.0), 100.0), 1)
    values["memory_size"] = round(total / GB, 2)
    if total > 0:
        values["memory_usage"] = round(min(max((total - available) / total, 0.0), 1.0), 2)
    try:
        disk_total, disk_free = reader.disk(data_path)
    except OSError:
        pass
    else:
        values["disk_size"] = round(disk_total / GB, 2)
        values["disk_free_size"] = round(disk_free / GB, 2)
    temperature = board_temperature(reader.temperatures())
    if temperature is not None:
        values["temperature"] = temperature
    return values


def board_temperature(chips: Mapping[str, Sequence[float]]) -> int | None:
    """The SoC/CPU chip's hottest reading, else the hottest of all; None without any."""
    preferred = next((chips[name] for name in _PREFERRED_CHIPS if chips.get(name)), None)
    rows = preferred if preferred is not None else [t for row in chips.values() for t in row]
    sane = [t for t in rows if math.isfinite(t) and TEMPERATURE_MIN <= t <= TEMPERATURE_MAX]
    return round(max(sane)) if sane else None
