"""`python -m bench`: run every benchmark, print the table, write bench/results.json.

    python -m bench                   everything (about four minutes on 2 cores)
    python -m bench --only ingest     one or more benchmarks by name
    python -m bench --out FILE        results elsewhere (default bench/results.json)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench import coldstart, footprint, ingest, latency, reportbuild, soak
from bench.stack import Row
from demo.broker import find_mosquitto

Bench = Callable[[Path], tuple[list[Row], dict[str, Any]]]
BENCHES: dict[str, Bench] = {
    "reportbuild": reportbuild.run,
    "coldstart": coldstart.run,
    "ingest": ingest.run,
    "latency": latency.run,
    "footprint": footprint.run,
    "soak": soak.run,
}
RESULTS = Path(__file__).resolve().with_name("results.json")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mosquitto = subprocess.run([find_mosquitto(), "-h"], capture_output=True, text=True,
                                   check=False, timeout=5).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        mosquitto = "unknown"
    versions = {}
    for dist in ("paho-mqtt", "pydantic", "orjson", "requests"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mosquitto": mosquitto,
        "packages": versions,
    }


def _number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "msg/s":
        return f"{value:,.0f} {unit}"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.3g} {unit}"


def table(rows: list[Row]) -> str:
    head = ("benchmark", "measure", "bridge", "baseline", "baseline value", "ratio", "target",
            "met")
    lines = [head]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "NO")
        ratio = "n/a" if math.isnan(row.ratio) else f"{row.ratio:.2f}x"
        lines.append((row.bench, row.measure, _number(row.value, row.unit), row.baseline,
                      _number(row.baseline_value, row.unit), ratio, row.target, met))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                   + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


@contextlib.contextmanager
def bytecode_cache() -> Iterator[None]:
    """Every process the benchmarks start runs from bytecode, as an installed bridge does
    (pip compiles the package when it installs it), whatever PYTHONDONTWRITEBYTECODE
    says here: a start that compiles the project's modules from source measures the
    compiler. The cache is the run's own, outside the checkout; each benchmark's
    unmeasured warm-up round fills it."""
    saved = {name: os.environ.get(name) for name in ("PYTHONDONTWRITEBYTECODE",
                                                      "PYTHONPYCACHEPREFIX")}
    with tempfile.TemporaryDirectory(prefix="se3-bench-bytecode-") as cache:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = cache
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), default=[])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("werkzeug", "receiver"):  # one line per POST otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    chosen = args.only or list(BENCHES)
    rows: list[Row] = []
    details: dict[str, Any] = {}
    failed: list[str] = []
    began = time.monotonic()
    with bytecode_cache():
        for name in chosen:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                with tempfile.TemporaryDirectory(prefix=f"se3-bench-{name}-") as tmp:
                    got, detail = BENCHES[name](Path(tmp))
            except Exception as exc:  # one broken benchmark must not hide the others' results
                traceback.print_exc()
                failed.append(name)
                details[name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            detail["seconds_taken"] = round(time.monotonic() - started, 1)
            rows += got
            details[name] = detail
            print(f"bench: {name} done in {detail['seconds_taken']} s", file=sys.stderr,
                  flush=True)
    total = time.monotonic() - began
    print(table(rows))
    print(f"\n{len(rows)} results in {total:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    result = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "seconds": round(total, 1),
        "results": [row.as_json() for row in rows],
        "details": details,
    }
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
