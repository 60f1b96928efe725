"""The Sophon files' reader (collectors/sophon.py) against recorded files of a BM1684 box.

The files are written here as the vendor's drivers write them (the TPU's
`npu_usage` line, the ION heaps' byte counts, the device tree's big-endian
memory banks), with the numbers of the vendor's own report example: a 12 GiB
board whose TPU region is 3.92G with 523.49M used.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bridge.config import parse_config
from bridge.records import GatewayHardware, parse_as
from collectors.gateway import GatewayCollector
from collectors.sophon import (
    ION,
    MEMORY_REG,
    NPU_USAGE,
    memory_banks,
    read_hardware,
    tpu_usage,
)
from tests.unit.test_collectors_host import TABLE, FakeReader

GIB, MIB = 2**30, 2**20
TPU_TOTAL, TPU_USED = round(3.92 * GIB), round(523.49 * MIB)
# Four banks, as a BM1684 SE5's device tree lists them: 4 GiB of system memory
# and the heaps' 8 GiB, at their addresses (two cells each for address and size).
BANKS = [(0x1_0000_0000, 4 * GIB), (0x2_0000_0000, 4 * GIB), (0x3_0000_0000, 2 * GIB),
         (0x3_8000_0000, 2 * GIB)]


def write(root: Path, relative: str, content: str | bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="ascii")
    else:
        path.write_bytes(content)


def sophon_box(root: Path) -> Path:
    """The recorded files of a BM1684 box in SoC mode, under `root`."""
    write(root, NPU_USAGE, "usage:15 avusage:9\n")
    write(root, f"{ION}/bm_npu_heap_dump/total_mem", f"{TPU_TOTAL}\n")
    write(root, f"{ION}/bm_npu_heap_dump/alloc_mem", f"{TPU_USED}\n")
    write(root, f"{ION}/bm_vpu_heap_dump/total_mem", f"{2 * GIB}\n")
    write(root, f"{ION}/bm_vpu_heap_dump/alloc_mem", "146801\n")
    write(root, f"{ION}/bm_vpp_heap_dump/total_mem", f"{round(1.88 * GIB)}\n")
    write(root, f"{ION}/bm_vpp_heap_dump/alloc_mem", "0\n")
    write(root, MEMORY_REG, b"".join(a.to_bytes(8, "big") + n.to_bytes(8, "big")
                                     for a, n in BANKS))
    return root


class TestReadHardware:
    def test_a_bm1684_box(self, tmp_path: Path) -> None:
        """Every file gives its key, and the whole is a valid gateway/hardware record."""
        record = read_hardware(sophon_box(tmp_path))

        assert record == {
            "tpu_usage": 0.15,
            "tpu_memory": {"total_bytes": TPU_TOTAL, "used_bytes": TPU_USED},
            "video_memory": {"total_bytes": 2 * GIB + round(1.88 * GIB), "used_bytes": 146801},
            "board_memory_bytes": 12 * GIB,
        }
        parse_as(GatewayHardware, orjson.dumps(record))

    def test_a_host_without_the_files_gives_nothing(self, tmp_path: Path) -> None:
        """Nothing is filled in for what is not there."""
        assert read_hardware(tmp_path) == {}

    def test_broken_files_are_left_out(self, tmp_path: Path) -> None:
        """A heap whose allocation passes its size, or text where a number goes, is no
        reading; the other files still count."""
        sophon_box(tmp_path)
        write(tmp_path, f"{ION}/bm_npu_heap_dump/alloc_mem", f"{TPU_TOTAL + 1}\n")
        write(tmp_path, NPU_USAGE, "busy\n")
        write(tmp_path, MEMORY_REG, b"\x00\x01\x02")
        record = read_hardware(tmp_path)
        assert set(record) == {"video_memory"}


class TestParts:
    @pytest.mark.parametrize(("text", "usage"), [
        ("usage:0 avusage:0", 0.0), ("usage:100 avusage:87", 1.0), ("usage: 7 avusage: 3", 0.07),
        ("avusage:5", None), ("usage:140 avusage:0", None), ("", None)])
    def test_tpu_usage(self, text: str, usage: float | None) -> None:
        """The current `usage` field, as a fraction; `avusage` alone is not it."""
        assert tpu_usage(text) == usage

    def test_memory_banks(self) -> None:
        reg = b"".join(a.to_bytes(8, "big") + n.to_bytes(8, "big") for a, n in BANKS)
        assert memory_banks(reg) == 12 * GIB
        assert memory_banks(b"") is None
        assert memory_banks(reg[:-4]) is None


class TestCollector:
    def test_published_with_the_metrics_when_asked(self, tmp_path: Path) -> None:
        """With collectors.sophon_root the gateway collector's hardware record carries the
        files' readings, ts, ttl and source; without it there is none."""
        sw = tmp_path / "buildinfo"
        sw.write_text("VERSION: V5R7C01\n", encoding="utf-8")
        routes = tmp_path / "route"
        routes.write_text("Iface\tDestination\n", encoding="ascii")

        def collector(root: str) -> GatewayCollector:
            config = parse_config({
                "gateway": {"sn": "SN1", "dev_sno": "DEV1", "sw_version_file": str(sw)},
                "collectors": {"metrics_interval": 10, "sophon_root": root},
            })
            return GatewayCollector(config, reader=FakeReader(), interfaces=lambda: TABLE,
                                    route_file=routes, clock=lambda: 1_700_000_000.0)

        payload = collector(str(sophon_box(tmp_path / "box"))).hardware_payload()
        assert payload is not None
        record = parse_as(GatewayHardware, payload)
        assert (record.tpu_usage, record.ts, record.ttl, record.source) == (
            0.15, 1_700_000_000.0, 30.0, "gateway")
        assert collector("").hardware_payload() is None
        assert collector(str(tmp_path / "nothing")).hardware_payload() is None
