"""What the box says about itself: its address and MAC, CPU (rate, model, frequency, cores),
memory, disk, uptime, temperatures and fans.

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

    def cpu_info(self) -> Cpu:
        """The CPU's model, maximum frequency and logical cores, as far as the host says."""
        ...

    def uptime(self) -> float | None:
        """Seconds since boot; None where the host does not say."""
        ...

    def fans(self) -> Mapping[str, Sequence[float]]:
        """Current fan speeds in r/min per chip; empty where there are none."""
        ...


@dataclass(frozen=True, slots=True)
class Cpu:
    """What the host says of its CPU; None where it says nothing."""

    model: str | None = None
    max_mhz: float | None = None
    cores: int | None = None


# The cores Arm designs, by the `CPU part` of /proc/cpuinfo (implementer 0x41): the
# vendor's reports name the CPU this way ("A53"), where the kernel names the SoC.
_ARM_PARTS = {
    0xD03: "A53", 0xD04: "A35", 0xD05: "A55", 0xD07: "A57", 0xD08: "A72", 0xD09: "A73",
    0xD0A: "A75", 0xD0B: "A76", 0xD0C: "N1", 0xD0D: "A77", 0xD41: "A78",
}


def cpu_model(cpuinfo: str) -> str | None:
    """The CPU's model from /proc/cpuinfo text: an Arm core by its part ("A53"), else the
    first `model name`, else None."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    try:
        arm = int(fields.get("CPU implementer", ""), 16) == 0x41
        part = _ARM_PARTS.get(int(fields.get("CPU part", ""), 16)) if arm else None
    except ValueError:
        part = None
    return part or fields.get("model name") or None


CPUINFO_FILE = "/proc/cpuinfo"


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

    def cpu_info(self) -> Cpu:
        try:
            with open(CPUINFO_FILE, encoding="utf-8", errors="replace") as fh:
                model = cpu_model(fh.read())
        except OSError:
            model = None
        try:
            freq = psutil.cpu_freq()
        except (OSError, NotImplementedError):  # no cpufreq in this kernel or container
            freq = None
        mhz = None if freq is None else (freq.max or freq.current or None)
        return Cpu(model, mhz, psutil.cpu_count() or None)

    def uptime(self) -> float | None:
        try:
            return max(time.time() - psutil.boot_time(), 0.0)
        except OSError:
            return None

    def fans(self) -> Mapping[str, Sequence[float]]:
        sensors = getattr(psutil, "sensors_fans", None)
        if sensors is None:
            return {}
        try:
            chips = sensors()
        except OSError as exc:
            logger.debug("cannot read fans: %s", exc)
            return {}
        return {chip: [float(fan.current) for fan in rows] for chip, rows in chips.items()}


def measure(reader: HostReader, data_path: str) -> dict[str, float | int | str]:
    """The gateway's metrics (docs/topics.md), rounded as the platform wants them.

    CPU usage is left out when there is no settled interval yet (the first
    call), disk sizes when `data_path` is missing, the temperature when the
    host has no usable sensor.
    """
    total, available = reader.memory()
    values: dict[str, float | int | str] = {}
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
    chips = reader.temperatures()
    temperature = board_temperature(chips)
    if temperature is not None:
        values["temperature"] = temperature
    values.update(_nested(reader, total, available, data_path, chips))
    return values


def _nested(reader: HostReader, total: int, available: int, data_path: str,
            chips: Mapping[str, Sequence[float]]) -> dict[str, float | int | str]:
    """The keys the nested reports of later releases are built from (docs/topics.md)."""
    values: dict[str, float | int | str] = {}
    cpu = reader.cpu_info()
    if cpu.model:
        values["cpu_model"] = cpu.model[:256]
    if cpu.max_mhz is not None and 0 < cpu.max_mhz <= 100_000:
        values["cpu_freq_mhz"] = round(cpu.max_mhz, 1)
    if cpu.cores is not None and cpu.cores >= 1:
        values["cpu_cores"] = cpu.cores
    if total > 0:
        values["memory_total_bytes"] = total
        values["memory_free_bytes"] = min(max(available, 0), total)
    try:
        disk_total, disk_free = reader.disk(data_path)
    except OSError:
        pass
    else:
        values["disk_total_bytes"] = disk_total
        values["disk_free_bytes"] = disk_free
    uptime = reader.uptime()
    if uptime is not None and math.isfinite(uptime) and uptime >= 0:
        values["uptime"] = round(uptime)
    core = _hottest(_preferred(chips))
    if core is not None:
        values["core_temperature"] = round(core, 1)
    board = _hottest([t for name, rows in chips.items() if "board" in name.lower()
                      for t in rows])
    if board is not None:
        values["board_temperature"] = round(board, 1)
    fan = next((rpm for rows in reader.fans().values() for rpm in rows
                if math.isfinite(rpm) and 0 <= rpm <= 1_000_000), None)
    if fan is not None:
        values["fan_speed"] = float(fan)
    return values


def _preferred(chips: Mapping[str, Sequence[float]]) -> Sequence[float]:
    """The SoC/CPU chip's readings, else every reading."""
    preferred = next((chips[name] for name in _PREFERRED_CHIPS if chips.get(name)), None)
    return preferred if preferred is not None else [t for row in chips.values() for t in row]


def _hottest(rows: Sequence[float]) -> float | None:
    sane = [t for t in rows if math.isfinite(t) and TEMPERATURE_MIN <= t <= TEMPERATURE_MAX]
    return max(sane) if sane else None


def board_temperature(chips: Mapping[str, Sequence[float]]) -> int | None:
    """The SoC/CPU chip's hottest reading, else the hottest of all; None without any."""
    hottest = _hottest(_preferred(chips))
    return None if hottest is None else round(hottest)
