"""Running a foreign-architecture root (arm64 on an amd64 host) under qemu-user-static.

The kernel hands a foreign binary to its binfmt_misc handler; with the handler's
`F` flag the interpreter is opened when the handler is registered, so it runs
inside a container root that has no qemu of its own. `emulation_problem(arch)`
makes sure that is so (mounting binfmt_misc and enabling Debian's qemu handler
when they are missing) and says why not where it cannot.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Debian architecture -> the qemu-user-static handler's name in binfmt_misc.
HANDLERS = {"arm64": "qemu-aarch64"}


def emulation_problem(arch: str, host: str) -> str:
    """'' when `arch` binaries run here (natively, or under qemu with flag F), else why not."""
    if arch == host:
        return ""
    handler_name = HANDLERS.get(arch)
    if handler_name is None:
        return f"no qemu handler known for {arch}"
    if not (BINFMT / "status").exists():
        mounted = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)],
                                 capture_output=True, text=True, check=False)
        if mounted.returncode != 0:
            return f"binfmt_misc is not mounted and mounting it was refused: {mounted.stderr}"
    handler = BINFMT / handler_name
    if not handler.exists():
        if shutil.which("update-binfmts") is None:
            return (f"no {handler_name} binfmt handler and no update-binfmts"
                    " (apt-get install qemu-user-static binfmt-support)")
        enabled = subprocess.run(["update-binfmts", "--enable", handler_name],
                                 capture_output=True, text=True, check=False)
        if enabled.returncode != 0 or not handler.exists():
            return (f"no {handler_name} binfmt handler (apt-get install qemu-user-static"
                    f" binfmt-support): {enabled.stderr.strip()}")
    lines = handler.read_text(encoding="utf-8").splitlines()
    if "enabled" not in lines:
        return f"{handler} is disabled"
    flags = next((line.split(":", 1)[1] for line in lines if line.startswith("flags:")), "")
    if "F" not in flags:
        return f"{handler} lacks flag F: its interpreter would have to be inside the container"
    return ""
