"""What a Sophon box's kernel says of its TPU and memory regions: the optional source of
the `gateway/hardware` record (docs/hardware.md).

On a Sophon SoC (BM1684 and its kin, in SoC mode) the vendor's drivers publish,
and its `bm-smi` tool reads:
- `/sys/class/bm-tpu/bm-tpu0/device/npu_usage`: `usage:12 avusage:10`, the
  TPU's busy percent now and on average;
- `/sys/kernel/debug/ion/bm_npu_heap_dump/{total_mem,alloc_mem}`: the TPU's
  memory heap, size and allocated bytes; `bm_vpu_heap_dump` and
  `bm_vpp_heap_dump` the video codec's and the video processor's (together the
  reports' "video" region);
- `/proc/device-tree/memory/reg`: the board's memory banks, big-endian
  (address, size) pairs of two 32-bit cells each.

`read_hardware(root)` reads what of these exists under `root` ("/" on the box)
and returns the record's keys for it; nothing is filled in for what is absent,
so on a host without these files the record is empty and is not published.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

NPU_USAGE = "sys/class/bm-tpu/bm-tpu0/device/npu_usage"
ION = "sys/kernel/debug/ion"
TPU_HEAP = "bm_npu_heap_dump"
VIDEO_HEAPS = ("bm_vpu_heap_dump", "bm_vpp_heap_dump")
MEMORY_REG = "proc/device-tree/memory/reg"
_USAGE = re.compile(r"(?:^|\s)usage:\s*(\d+(?:\.\d+)?)")
_CELL = 4  # bytes in a device-tree cell


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip("\x00 \n")
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _text(path)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        logger.debug("%s: not a number: %r", path, text[:40])
        return None
    return value if value >= 0 else None


def tpu_usage(text: str) -> float | None:
    """The TPU's busy fraction from `npu_usage` text ("usage:12 avusage:10" -> 0.12)."""
    found = _USAGE.search(text)
    if found is None:
        return None
    percent = float(found.group(1))
    return round(percent / 100, 2) if 0 <= percent <= 100 else None


def heap(root: Path, name: str) -> tuple[int, int] | None:
    """(total, allocated) bytes of one ION heap; None when it is not there."""
    total = _int(root / ION / name / "total_mem")
    used = _int(root / ION / name / "alloc_mem")
    if total is None or used is None or used > total:
        return None
    return total, used


def memory_banks(reg: bytes) -> int | None:
    """The board's memory: the sum of the sizes in a device tree's `memory/reg`, read as
    (address, size) pairs of two cells each; None when it is not that shape."""
    if not reg or len(reg) % (4 * _CELL):
        return None
    total = 0
    for start in range(0, len(reg), 4 * _CELL):
        size = reg[start + 2 * _CELL:start + 4 * _CELL]
        total += int.from_bytes(size, "big")
    return total or None


def read_hardware(root: Path = Path("/")) -> dict[str, object]:
    """The `gateway/hardware` keys the Sophon files under `root` give; {} without any."""
    record: dict[str, object] = {}
    usage_text = _text(root / NPU_USAGE)
    usage = None if usage_text is None else tpu_usage(usage_text)
    if usage is not None:
        record["tpu_usage"] = usage
    tpu = heap(root, TPU_HEAP)
    if tpu is not None:
        record["tpu_memory"] = {"total_bytes": tpu[0], "used_bytes": tpu[1]}
    video = [found for name in VIDEO_HEAPS if (found := heap(root, name)) is not None]
    if video:
        record["video_memory"] = {"total_bytes": sum(t for t, _ in video),
                                  "used_bytes": sum(u for _, u in video)}
    try:
        board = memory_banks((root / MEMORY_REG).read_bytes())
    except OSError:
        board = None
    if board is not None:
        record["board_memory_bytes"] = board
    return record
