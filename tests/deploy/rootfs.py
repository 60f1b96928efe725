"""The Debian root the deployment test boots: made once by debootstrap, cached under var/.

`cached_root()` returns a complete root for `SUITE` with `PACKAGES` and a CPU
architecture (`amd64`, or `arm64` run under qemu-user-static: `binfmt_problem()`),
building it with debootstrap (about 1.5 min native, from the mirror apt already
uses) only when there is no good one. A root counts as good when its stamp names the same
recipe and its key files are there; anything else under `var/deploy/`
of the same architecture (a debootstrap cut short, a root of an older recipe) is deleted first, so a
broken cache costs one rebuild and never a failed run. The cached root itself
is never booted: `writable_view()` gives a run its own changes on top.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUITE = "bookworm"
# Everything deploy/README.md has the user install with apt, and what systemd
# needs to boot, so that no step in the container needs a network.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "mosquitto",
    "mosquitto-clients", "iproute2", "sudo",
)
# Files without which the root is not usable (a half-made cache).
KEY_FILES = ("usr/bin/python3", "lib/systemd/systemd", "usr/sbin/mosquitto", "usr/bin/sudo")
STAMP = ".se3-deploy-root"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def recipe_key(arch: str) -> str:
    text = f"{SUITE} {arch} minbase {' '.join(sorted(PACKAGES))} v1"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def apt_mirror(etc: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses here (its sources list), for debootstrap."""
    texts = []
    for path in [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*"))]:
        if path.suffix in (".list", ".sources") and path.is_file():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    for text in texts:
        # deb822: a stanza with URIs and a Suites line naming the release itself.
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1).rstrip("/")
        # one-line format: deb [options] URI SUITE components
        for line in text.splitlines():
            match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if match and match.group(2) == SUITE:
                return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


def _good(root: Path, key: str) -> bool:
    stamp = root / STAMP
    if not stamp.is_file() or stamp.read_text(encoding="utf-8").strip() != key:
        return False
    return all((root / name).exists() for name in KEY_FILES)


def host_arch() -> str:
    """This machine's Debian architecture (amd64, arm64, ...)."""
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


def cached_root(var: Path, arch: str) -> Path:
    """A complete `arch` root under `var` (made now if missing or broken).

    Logs to var/debootstrap-ARCH.log. A foreign `arch` needs its binfmt handler
    (`binfmt_problem()` says whether there is one).
    """
    key = recipe_key(arch)
    root = var / f"root-{arch}-{SUITE}-{key}"
    if _good(root, key):
        return root
    var.mkdir(parents=True, exist_ok=True)
    for stale in var.glob(f"root-{arch}-*"):
        shutil.rmtree(stale)
    building = var / f"building-{arch}"
    shutil.rmtree(building, ignore_errors=True)
    log = var / f"debootstrap-{arch}.log"
    with log.open("wb") as out:
        done = subprocess.run(
            ["debootstrap", f"--arch={arch}", "--variant=minbase",
             f"--include={','.join(PACKAGES)}", SUITE, str(building), apt_mirror()],
            stdout=out, stderr=subprocess.STDOUT, check=False, timeout=1800,
        )
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
        raise RuntimeError(f"debootstrap failed ({done.returncode}); see {log}: {tail}")
    (building / STAMP).write_text(key + "\n", encoding="utf-8")
    if not _good(building, key):
        raise RuntimeError(f"debootstrap made a root without {KEY_FILES}; see {log}")
    building.rename(root)
    return root


def _unmount(path: Path) -> None:
    if path.is_mount():
        subprocess.run(["umount", "--lazy", str(path)], check=True)


@contextmanager
def writable_view(root: Path, run: Path) -> Iterator[Path]:
    """`root` as a tree one test run may change, at run/root; the changes go at exit.

    An overlay (lower: the cached root, upper: run/upper) costs nothing to make;
    where overlayfs cannot be mounted, a copy of the root takes a few seconds.
    What a run cut short left behind is cleared first.
    """
    view = run / "root"
    _unmount(view)
    shutil.rmtree(run, ignore_errors=True)
    for part in ("root", "upper", "work"):
        (run / part).mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={root},upperdir={run / 'upper'},workdir={run / 'work'}", str(view)],
        capture_output=True, check=False).returncode == 0
    if not mounted:
        view.rmdir()
        subprocess.run(["cp", "-a", "--reflink=auto", str(root), str(view)], check=True)
    try:
        yield view
    finally:
        _unmount(view)
