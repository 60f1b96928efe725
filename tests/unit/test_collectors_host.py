"""The host readings: default route, interface choice and metric arithmetic, without the host."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson
import psutil
import pytest

from bridge.records import GatewayMetrics, parse_record
from bridge.topics import Kind
from collectors.host import (
    GB,
    Address,
    Cpu,
    PsutilReader,
    board_temperature,
    choose_address,
    cpu_model,
    default_route_interface,
    measure,
)

LINK = psutil.AF_LINK

ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""


@dataclass(frozen=True)
class Row:
    family: int
    address: str


def interfaces(**table: tuple[str | None, str | None]) -> dict[str, list[Row]]:
    """{name: (ipv4 or None, mac or None)} as psutil.net_if_addrs() would give it."""
    out: dict[str, list[Row]] = {}
    for name, (ip, mac) in table.items():
        rows = []
        if ip:
            rows.append(Row(socket.AF_INET, ip))
        rows.append(Row(socket.AF_INET6, "fe80::1"))
        if mac:
            rows.append(Row(LINK, mac))
        out[name] = rows
    return out


TABLE = interfaces(
    lo=("127.0.0.1", "00:00:00:00:00:00"),
    eth0=("10.0.0.5", "E0:A5:09:00:0E:6D"),
    wlan0=("192.168.1.20", "aa:bb:cc:dd:ee:ff"),
    eth1=(None, "02:00:00:00:00:01"),
)


class TestDefaultRoute:
    def test_lowest_metric_default_route_wins(self) -> None:
        """Of two default routes, the one with the lower metric is the default."""
        assert default_route_interface(ROUTES) == "eth0"

    def test_no_default_route(self) -> None:
        """Only network routes: no default interface."""
        text = ROUTES.splitlines()[0] + "\n" + "\n".join(ROUTES.splitlines()[3:])
        assert default_route_interface(text) is None

    def test_routes_that_are_down_do_not_count(self) -> None:
        """A default route without the UP flag is ignored."""
        text = ROUTES.replace("eth0\t00000000\t0100000A\t0003", "eth0\t00000000\t0100000A\t0002")
        assert default_route_interface(text) == "wlan0"

    @pytest.mark.parametrize("text", ["", "garbage", "Iface\n\nx y z\neth0 zz 0 3 0 0 1 00000000"])
    def test_garbage_gives_none(self, text: str) -> None:
        """Empty, short or unparsable lines are skipped, never an exception."""
        assert default_route_interface(text) is None


class TestChooseAddress:
    def test_configured_interface(self) -> None:
        """A configured interface with an IPv4 address is used as it is; MAC lower-cased."""
        assert choose_address("wlan0", ROUTES, TABLE) == Address(
            "wlan0", "192.168.1.20", "aa:bb:cc:dd:ee:ff"
        )
        assert choose_address("eth0", "", TABLE).mac == "e0:a5:09:00:0e:6d"

    def test_default_route_interface(self) -> None:
        """Without configuration, the default route's interface."""
        assert choose_address("", ROUTES, TABLE) == Address(
            "eth0", "10.0.0.5", "e0:a5:09:00:0e:6d"
        )

    def test_missing_configured_interface_falls_back(self) -> None:
        """A configured interface that is absent or has no IPv4 gives way to the route."""
        assert choose_address("eth7", ROUTES, TABLE).interface == "eth0"
        assert choose_address("eth1", ROUTES, TABLE).interface == "eth0"

    def test_first_non_loopback_without_route(self) -> None:
        """No default route: the first interface that has an IPv4 and is not loopback."""
        assert choose_address("", "", TABLE).interface == "eth0"

    def test_loopback_last(self) -> None:
        """Only loopback: its address, and no MAC (00:00:... is not one)."""
        only_lo = {"lo": TABLE["lo"], "eth1": TABLE["eth1"]}
        assert choose_address("", ROUTES, only_lo) == Address("lo", "127.0.0.1", None)

    def test_nothing_at_all(self) -> None:
        """No interface table: 127.0.0.1 on lo rather than no identity."""
        assert choose_address("", ROUTES, {}) == Address("lo", "127.0.0.1", None)

    def test_real_host(self) -> None:
        """On this machine the choice has an IPv4 address that parses."""
        with open("/proc/net/route", encoding="ascii") as fh:
            chosen = choose_address("", fh.read(), psutil.net_if_addrs())
        socket.inet_aton(chosen.ip)


@dataclass
class FakeReader:
    cpu: float | None = 6.54
    total: int = int(1.55 * GB)
    available: int = int(1.55 * GB * 0.23)
    disks: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: {"/data": (int(10.39 * GB), int(9.41 * GB))}
    )
    chips: Mapping[str, Sequence[float]] = field(default_factory=dict)
    cpu_said: Cpu = field(default_factory=Cpu)
    up: float | None = None
    fan_chips: Mapping[str, Sequence[float]] = field(default_factory=dict)

    def cpu_percent(self) -> float | None:
        return self.cpu

    def cpu_info(self) -> Cpu:
        return self.cpu_said

    def uptime(self) -> float | None:
        return self.up

    def fans(self) -> Mapping[str, Sequence[float]]:
        return self.fan_chips

    def memory(self) -> tuple[int, int]:
        return self.total, self.available

    def disk(self, path: str) -> tuple[int, int]:
        if path not in self.disks:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.disks[path]

    def temperatures(self) -> Mapping[str, Sequence[float]]:
        return self.chips


def as_metrics(values: Mapping[str, object]) -> GatewayMetrics:
    record = parse_record(Kind.GATEWAY_METRICS, orjson.dumps(values))
    assert isinstance(record, GatewayMetrics)
    return record


class TestMeasure:
    def test_spec_example_numbers(self) -> None:
        """The spec's example host gives the spec's example values, rounded as it wants."""
        values = measure(FakeReader(chips={"soc_thermal": [48.6]}), "/data")
        flat = ["cpu_usage", "memory_size", "memory_usage", "disk_size", "disk_free_size",
                "temperature"]
        assert {k: values[k] for k in flat} == {
            "cpu_usage": 6.5, "memory_size": 1.55, "memory_usage": 0.77,
            "disk_size": 10.39, "disk_free_size": 9.41, "temperature": 49,
        }
        assert list(values)[:6] == flat
        as_metrics(values)

    def test_missing_data_path_leaves_disk_out(self) -> None:
        """Without the data partition there are no disk keys, and no error."""
        values = measure(FakeReader(), "/nowhere")
        assert "disk_size" not in values
        assert "disk_free_size" not in values
        as_metrics(values)

    def test_no_sensors_leaves_temperature_out(self) -> None:
        """A host without temperature sensors reports none."""
        assert "temperature" not in measure(FakeReader(), "/data")

    @pytest.mark.parametrize("cpu", [-3.0, 0.0, 100.0, 130.7])
    def test_values_stay_in_range(self, cpu: float) -> None:
        """Readings out of range are clamped, so the record is always valid."""
        reader = FakeReader(cpu=cpu, available=FakeReader().total * 2)
        values = measure(reader, "/data")
        usage = values["cpu_usage"]
        assert isinstance(usage, float)
        assert 0.0 <= usage <= 100.0
        assert values["memory_usage"] == 0.0
        as_metrics(values)

    def test_zero_memory_total_has_no_usage(self) -> None:
        """A reader reporting no memory gives a size of 0 and no usage, not a division error."""
        values = measure(FakeReader(total=0, available=0), "/data")
        assert values["memory_size"] == 0.0
        assert "memory_usage" not in values


class TestNested:
    """The keys of the nested reports: what any Linux host measures, in bytes and seconds."""

    def test_a_sophon_like_host(self) -> None:
        reader = FakeReader(
            chips={"soc_thermal": [45.04], "board_thermal": [47.26], "nvme": [60.0]},
            cpu_said=Cpu("A53", 2300.0, 8), up=9600.4, fan_chips={"pwmfan": [4400.0]})
        values = measure(reader, "/data")
        assert {k: values[k] for k in (
            "cpu_model", "cpu_freq_mhz", "cpu_cores", "memory_total_bytes", "memory_free_bytes",
            "disk_total_bytes", "disk_free_bytes", "uptime", "core_temperature",
            "board_temperature", "fan_speed")} == {
            "cpu_model": "A53", "cpu_freq_mhz": 2300.0, "cpu_cores": 8,
            "memory_total_bytes": reader.total, "memory_free_bytes": reader.available,
            "disk_total_bytes": int(10.39 * GB), "disk_free_bytes": int(9.41 * GB),
            "uptime": 9600, "core_temperature": 45.0, "board_temperature": 47.3,
            "fan_speed": 4400.0}
        as_metrics(values)

    def test_what_the_host_does_not_say_is_left_out(self) -> None:
        """No cpufreq, no uptime, no board sensor, no fan: those keys are absent, not 0."""
        values = measure(FakeReader(chips={"cpu_thermal": [50.0]}), "/nowhere")
        for key in ("cpu_model", "cpu_freq_mhz", "cpu_cores", "disk_total_bytes", "uptime",
                    "board_temperature", "fan_speed"):
            assert key not in values
        assert values["core_temperature"] == 50.0
        as_metrics(values)


class TestCpuModel:
    CORTEX_A53 = ("processor\t: 0\nBogoMIPS\t: 100.00\nCPU implementer\t: 0x41\n"
                  "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd03\n"
                  "model name\t: bm1684\n\nprocessor\t: 1\nCPU part\t: 0xd03\n")
    XEON = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU\n"

    def test_an_arm_core_by_its_part(self) -> None:
        """A Cortex-A53 is "A53", as the vendor's reports name it, whatever the SoC's name."""
        assert cpu_model(self.CORTEX_A53) == "A53"

    def test_model_name(self) -> None:
        assert cpu_model(self.XEON) == "Intel(R) Xeon(R) CPU"

    def test_nothing_known(self) -> None:
        assert cpu_model("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xfff\n") is None
        assert cpu_model("") is None


class TestBoardTemperature:
    def test_preferred_chip_over_hotter_others(self) -> None:
        """The SoC/CPU chip stands for the board even when a disk is hotter."""
        assert board_temperature({"nvme": [70.0], "cpu_thermal": [41.4, 45.5]}) == 46

    def test_hottest_when_no_known_chip(self) -> None:
        """Unknown chips only: the hottest reading."""
        assert board_temperature({"a": [30.0], "b": [55.2, 20.0]}) == 55

    def test_insane_readings_are_ignored(self) -> None:
        """-273 °C or NaN from a broken sensor is no reading."""
        assert board_temperature({"x": [-273.0, float("nan"), 400.0]}) is None
        assert board_temperature({}) is None


class TestPsutilReader:
    def test_reads_this_host(self) -> None:
        """The real reader gives numbers measure() turns into a valid record."""
        values = measure(PsutilReader(), "/")
        assert isinstance(values["memory_size"], float)
        assert values["memory_size"] > 0
        assert values["disk_total_bytes"] == PsutilReader().disk("/")[0]
        assert PsutilReader().cpu_info().cores == psutil.cpu_count()
        as_metrics(values)

    def test_missing_path_is_an_oserror(self) -> None:
        """A missing data path surfaces as OSError, which measure() expects."""
        with pytest.raises(OSError, match="nowhere"):
            PsutilReader().disk("/nowhere/at/all")


class TestFirstCpuSample:
    def test_first_call_only_starts_the_interval(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The first cpu_percent is None (the start's own burst is not a measurement); the
        next one measures the whole settled interval since, without blocking."""
        calls: list[float | None] = []

        def cpu_percent(interval: float | None = None) -> float:
            calls.append(interval)
            return 100.0 if len(calls) == 1 else 7.25

        now = [1000.0]
        monkeypatch.setattr(psutil, "cpu_percent", cpu_percent)
        reader = PsutilReader(clock=lambda: now[0])
        assert reader.cpu_percent() is None
        now[0] += 10.0
        assert reader.cpu_percent() == 7.25
        assert calls == [None, None]  # never a short blocking sample

    def test_first_metrics_leave_cpu_out(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """measure() on a fresh reader publishes no cpu_usage; the next one does."""
        monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 100.0)
        now = [1000.0]
        reader = PsutilReader(clock=lambda: now[0])
        assert "cpu_usage" not in measure(reader, "/")
        now[0] += 10.0
        assert measure(reader, "/")["cpu_usage"] == 100.0

    def test_a_call_too_soon_samples_briefly(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Less than 0.2 s after the previous call, a 0.2 s sample is taken (shorter is noise)."""
        calls: list[float | None] = []

        def cpu_percent(interval: float | None = None) -> float:
            calls.append(interval)
            return 5.0

        monkeypatch.setattr(psutil, "cpu_percent", cpu_percent)
        reader = PsutilReader(clock=lambda: 1000.0)
        reader.cpu_percent()
        assert reader.cpu_percent() == 5.0
        assert calls == [None, 0.2]
