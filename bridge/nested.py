"""The gateway's part of the nested reports: F4 and F5 (`cpu_info`, `memory_info`,
`disk_info`...) and F7 (`cur_cpu_usage`, `svt_*` memory, `emmc` / `hdd`).

Pure functions over a `Gateway`. Keys in the order of the vendor's tables
(sophonai/bm1682: "设备状态上报内容" of V2R6C01/V5R6C01, "系统状态信息上报" of
V5R7C01 and V6R1C01); where a table and its example disagree the table wins
(`cpu_freg`, as the tables spell it). Sizes are text with a unit, as the
vendor's examples write them ("11.51G", "549.0M"); rates are fractions 0-1
with two decimals. The memory regions follow the vendor's arithmetic: the
total is system + tpu + video, each region's scale is its share of that total,
and the usage is the used share of it.

What a value needs and has no source for is filled by `Gaps` (bridge.reportparts).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.records import DiskRecord, GatewayHardware, GatewayMetrics, MemoryRegion
from bridge.reportparts import Gaps, Gateway, Json

_GIB, _MIB = 2**30, 2**20


def size_text(size: int | None) -> str | None:
    """Bytes as the vendor writes them: "3.71G" from 1 GiB up, else "549.0M"."""
    if size is None:
        return None
    if size >= _GIB:
        return f"{round(size / _GIB, 2)}G"
    return f"{round(size / _MIB, 2)}M"


def _rate(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return round(min(max(part / whole, 0.0), 1.0), 2)


def uptime_words(seconds: float | None) -> str | None:
    """F5's uptime, for people: the two largest units, "1 day, 9 hours", "30 minutes"."""
    if seconds is None:
        return None
    parts = [(n, unit) for n, unit in _units(seconds) if n]
    words = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts[:2]]
    return ", ".join(words) or "0 minutes"


def uptime_compact(seconds: float | None) -> str | None:
    """F7's uptime, as its example writes it: "2hours,40minutes"."""
    if seconds is None:
        return None
    parts = [(n, unit) for n, unit in _units(seconds) if n]
    return ",".join(f"{n}{unit}s" for n, unit in parts[:2]) or "0minutes"


def _units(seconds: float) -> list[tuple[int, str]]:
    minutes = int(seconds // 60)
    return [(minutes // 1440, "day"), (minutes // 60 % 24, "hour"), (minutes % 60, "minute")]


@dataclass(frozen=True, slots=True)
class _Region:
    total: int
    used: int

    @property
    def free(self) -> int:
        return max(self.total - self.used, 0)


@dataclass(frozen=True, slots=True)
class _Memory:
    """The three regions as far as known; `whole` only when all three are."""

    system: _Region | None
    tpu: _Region | None
    video: _Region | None

    @property
    def whole(self) -> _Region | None:
        regions = (self.system, self.tpu, self.video)
        if any(r is None for r in regions):
            return None
        return _Region(sum(r.total for r in regions if r), sum(r.used for r in regions if r))


def _memory(metrics: GatewayMetrics | None, hardware: GatewayHardware | None) -> _Memory:
    system = None
    if metrics is not None and metrics.memory_total_bytes is not None \
            and metrics.memory_free_bytes is not None:
        total = metrics.memory_total_bytes
        system = _Region(total, max(total - metrics.memory_free_bytes, 0))

    def region(found: MemoryRegion | None) -> _Region | None:
        return None if found is None else _Region(found.total_bytes, found.used_bytes)

    if hardware is None:
        return _Memory(system, None, None)
    return _Memory(system, region(hardware.tpu_memory), region(hardware.video_memory))


def _region_json(gaps: Gaps, name: str, region: _Region | None, whole: _Region | None,
                 path: str) -> Json:
    out: Json = {}
    share = None if region is None or whole is None else _rate(region.total, whole.total)
    gaps.value(out, f"{name}_scale", share, f"{path}.{name}_scale")
    gaps.text(out, "total", size_text(None if region is None else region.total), f"{path}.total")
    gaps.text(out, "free", size_text(None if region is None else region.free), f"{path}.free")
    gaps.text(out, "used", size_text(None if region is None else region.used), f"{path}.used")
    return out


def _regions(gaps: Gaps, out: Json, memory: _Memory, path: str) -> None:
    whole = memory.whole
    for name, region in (("system", memory.system), ("tpu", memory.tpu),
                         ("video", memory.video)):
        out[name] = _region_json(gaps, name, region, whole, f"{path}.{name}")


def _freq(metrics: GatewayMetrics | None) -> str | None:
    mhz = None if metrics is None else metrics.cpu_freq_mhz
    return None if mhz is None else f"{round(mhz / 1000, 1)}Ghz"


def _cores(metrics: GatewayMetrics | None) -> str | None:
    cores = None if metrics is None else metrics.cpu_cores
    return None if cores is None else str(cores)


def _cpu_rate(metrics: GatewayMetrics | None) -> float | None:
    usage = None if metrics is None else metrics.cpu_usage
    return None if usage is None else round(usage / 100, 2)


def _disk(metrics: GatewayMetrics | None) -> tuple[int | None, int | None, int | None]:
    """(total, free, used) bytes of the data partition, as far as measured."""
    if metrics is None or metrics.disk_total_bytes is None or metrics.disk_free_bytes is None:
        return None, None, None
    total, free = metrics.disk_total_bytes, metrics.disk_free_bytes
    return total, free, max(total - free, 0)


# -- F4 and F5 ----------------------------------------------------------------


def cpu_info_v5(gaps: Gaps, metrics: GatewayMetrics | None, path: str) -> Json:
    out: Json = {}
    gaps.value(out, "cpu_rate", _cpu_rate(metrics), f"{path}.cpu_rate")
    info: Json = {}
    gaps.text(info, "cpu_type", (None if metrics is None else metrics.cpu_model),
              f"{path}.info.cpu_type")
    gaps.text(info, "cpu_freg", _freq(metrics), f"{path}.info.cpu_freg")
    gaps.text(info, "cpu_count", _cores(metrics), f"{path}.info.cpu_count")
    out["info"] = info
    return out


# The memory keys of each generation: (board total, whole, free, used, usage).
_MEMORY_V5 = ("hardware_total_memory", "total_memory", "total_free_memory",
              "total_used_memory", "total_memory_scale")
_MEMORY_V6 = ("total_memory", "svt_memory", "svt_free_memory", "svt_used_memory",
              "svt_memory_usage")


def _memory_info(gaps: Gaps, gateway: Gateway, keys: tuple[str, ...], path: str) -> Json:
    """`memory_info`: the board's memory, the three regions' totals, then each region."""
    memory = _memory(gateway.metrics, gateway.hardware)
    whole, hardware = memory.whole, gateway.hardware
    board, total, free, used, usage = keys
    out: Json = {}
    gaps.text(out, board, size_text(None if hardware is None else hardware.board_memory_bytes),
              f"{path}.{board}")
    gaps.text(out, total, size_text(None if whole is None else whole.total), f"{path}.{total}")
    gaps.text(out, free, size_text(None if whole is None else whole.free), f"{path}.{free}")
    gaps.text(out, used, size_text(None if whole is None else whole.used), f"{path}.{used}")
    gaps.value(out, usage, None if whole is None else _rate(whole.used, whole.total),
               f"{path}.{usage}")
    _regions(gaps, out, memory, path)
    return out


def disk_info_v5(gaps: Gaps, gateway: Gateway, path: str) -> Json:
    total, free, used = _disk(gateway.metrics)
    hardware = gateway.hardware
    out: Json = {}
    nominal = None if hardware is None else hardware.emmc_nominal_bytes
    gaps.text(out, "hardware_total_disk", size_text(nominal), f"{path}.hardware_total_disk")
    gaps.value(out, "disk_rate", _rate(used, total), f"{path}.disk_rate")
    gaps.text(out, "total_disk", size_text(total), f"{path}.total_disk")
    gaps.text(out, "free_disk", size_text(free), f"{path}.free_disk")
    gaps.text(out, "used_disk", size_text(used), f"{path}.used_disk")
    return out


def _hdd(gaps: Gaps, hardware: GatewayHardware | None, path: str) -> DiskRecord:
    """The external disk; without a record of one, the document's "no disk" (named)."""
    hdd = (None if hardware is None else hardware.hdd)
    if hdd is None:
        gaps.names.append(path)
        return DiskRecord(mounted=False)
    return hdd


def _disk_used(disk: DiskRecord) -> int | None:
    if disk.total_bytes is None or disk.free_bytes is None:
        return None
    return max(disk.total_bytes - disk.free_bytes, 0)


def external_v5(gaps: Gaps, gateway: Gateway, path: str) -> Json:
    """F5's `external_hard_drives_info`: state "1" with a mounted disk, else "0"."""
    hdd = _hdd(gaps, gateway.hardware, path)
    out: Json = {"external_hard_state": "1" if hdd.mounted else "0"}
    if not hdd.mounted:  # sizes of a disk not mounted are nobody's to know
        out.update(external_hard_total_disk="", external_hard_free_disk="",
                   external_hard_used_disk="")
        return out
    used = _disk_used(hdd)
    gaps.value(out, "external_hard_disk_rate", _rate(used, hdd.total_bytes),
               f"{path}.external_hard_disk_rate")
    gaps.text(out, "external_hard_total_disk", size_text(hdd.total_bytes),
              f"{path}.external_hard_total_disk")
    gaps.text(out, "external_hard_free_disk", size_text(hdd.free_bytes),
              f"{path}.external_hard_free_disk")
    gaps.text(out, "external_hard_used_disk", size_text(used),
              f"{path}.external_hard_used_disk")
    return out


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def _tenth(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def ext_f4(gaps: Gaps, gateway: Gateway, path: str = "gateway_ext_data") -> Json:
    """F4's `gateway_ext_data`."""
    info, metrics = gateway.info, gateway.metrics
    out: Json = {"sw_version": info.sw_version}
    gaps.text(out, "sdk_version", info.sdk_version, f"{path}.sdk_version")
    gaps.text(out, "gateway_mac", info.gateway_mac, f"{path}.gateway_mac")
    out["cpu_info"] = cpu_info_v5(gaps, metrics, f"{path}.cpu_info")
    out["memory_info"] = _memory_info(gaps, gateway, _MEMORY_V5, f"{path}.memory_info")
    out["disk_info"] = disk_info_v5(gaps, gateway, f"{path}.disk_info")
    gaps.value(out, "temperature", (None if metrics is None else metrics.temperature),
               f"{path}.temperature")
    return out


def ext_f5(gaps: Gaps, gateway: Gateway, path: str = "gateway_ext_data") -> Json:
    """F5's `gateway_ext_data`: F4's, then disks, temperatures, fan, uptime and TPU."""
    metrics, hardware = gateway.metrics, gateway.hardware
    out = ext_f4(gaps, gateway, path)
    temperature = out.pop("temperature", None)  # it moves after the external disk
    out["external_hard_drives_info"] = external_v5(
        gaps, gateway, f"{path}.external_hard_drives_info")
    if temperature is not None:
        out["temperature"] = temperature
    board = None if metrics is None else metrics.board_temperature
    gaps.value(out, "board_temperature", _int(board), f"{path}.board_temperature")
    gaps.text(out, "nnsdk_version", (None if hardware is None else hardware.nnsdk_version),
              f"{path}.nnsdk_version")
    fan = _int(None if metrics is None else metrics.fan_speed)
    gaps.absent(out, "fan_speed", None if fan is None else f"{fan}r/min", "0r/min",
                f"{path}.fan_speed")
    gaps.text(out, "uptime", uptime_words(None if metrics is None else metrics.uptime),
              f"{path}.uptime")
    tpu: Json = {}
    gaps.value(tpu, "tpu_rate", _tpu_usage(hardware), f"{path}.tpu_info.tpu_rate")
    detail: Json = {}
    gaps.text(detail, "detail", (None if hardware is None else hardware.tpu_description),
              f"{path}.tpu_info.info.detail")
    tpu["info"] = detail
    out["tpu_info"] = tpu
    return out


def _tpu_usage(hardware: GatewayHardware | None) -> float | None:
    usage = None if hardware is None else hardware.tpu_usage
    return None if usage is None else round(usage, 2)


# -- F7 -------------------------------------------------------------------------


def _disk_v6(gaps: Gaps, mounted: bool | None, nominal: int | None, total: int | None,
             free: int | None, path: str) -> Json:
    used = None if total is None or free is None else max(total - free, 0)
    out: Json = {}
    gaps.value(out, "mount_status", mounted, f"{path}.mount_status")
    gaps.text(out, "nominal_capacity", size_text(nominal), f"{path}.nominal_capacity")
    if mounted is False:  # nothing to measure on a disk that is not mounted
        out.update(total_disk="", free_disk="", used_disk="")
        return out
    gaps.value(out, "disk_usage", _rate(used, total), f"{path}.disk_usage")
    gaps.text(out, "total_disk", size_text(total), f"{path}.total_disk")
    gaps.text(out, "free_disk", size_text(free), f"{path}.free_disk")
    gaps.text(out, "used_disk", size_text(used), f"{path}.used_disk")
    return out


def ext_f7(gaps: Gaps, gateway: Gateway, path: str = "gateway_ext_data") -> Json:
    """F7's `gateway_ext_data`."""
    metrics, hardware = gateway.metrics, gateway.hardware
    out: Json = {}
    cpu: Json = {}
    gaps.value(cpu, "cur_cpu_usage", _cpu_rate(metrics), f"{path}.cpu_info.cur_cpu_usage")
    gaps.text(cpu, "cpu_arch", (None if metrics is None else metrics.cpu_model),
              f"{path}.cpu_info.cpu_arch")
    gaps.text(cpu, "cpu_freg", _freq(metrics), f"{path}.cpu_info.cpu_freg")
    gaps.text(cpu, "cpu_cores", _cores(metrics), f"{path}.cpu_info.cpu_cores")
    out["cpu_info"] = cpu
    out["memory_info"] = _memory_info(gaps, gateway, _MEMORY_V6, f"{path}.memory_info")
    total, free, _used = _disk(metrics)
    out["emmc"] = _disk_v6(gaps, None if total is None else True,
                           (None if hardware is None else hardware.emmc_nominal_bytes), total, free,
                           f"{path}.emmc")
    hdd = _hdd(gaps, hardware, f"{path}.hdd")
    out["hdd"] = _disk_v6(gaps, hdd.mounted, hdd.nominal_bytes, hdd.total_bytes,
                          hdd.free_bytes, f"{path}.hdd")
    core = None if metrics is None else metrics.core_temperature
    if core is None and metrics is not None and metrics.temperature is not None:
        core = float(metrics.temperature)  # a collector of before sent only this
    gaps.value(out, "core_temperature", _tenth(core), f"{path}.core_temperature")
    board = None if metrics is None else metrics.board_temperature
    gaps.value(out, "board_temperature", _tenth(board), f"{path}.board_temperature")
    gaps.absent(out, "fan_speed", _tenth(None if metrics is None else metrics.fan_speed), 0.0,
                f"{path}.fan_speed")
    gaps.text(out, "uptime", uptime_compact(None if metrics is None else metrics.uptime),
              f"{path}.uptime")
    tpu: Json = {}
    gaps.value(tpu, "tpu_usage", _tpu_usage(hardware), f"{path}.tpu_info.tpu_usage")
    gaps.text(tpu, "tpu_description", (None if hardware is None else hardware.tpu_description),
              f"{path}.tpu_info.tpu_description")
    out["tpu_info"] = tpu
    return out
