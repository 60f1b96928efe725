"""The Debian packages of `make dist`, installed in a booted container of their architecture.

For each architecture (amd64 natively; arm64 under qemu-user-static, skipped with
the reason where binfmt_misc cannot run it) a fresh Debian bookworm root
(debootstrap, cached under var/deploy) boots with systemd-nspawn on the private
veth link of `tests.deploy.container`, with no route to any package index. The
package installs with `apt-get install ./se3-bridge_..._ARCH.deb` (its Python
dependencies come from the wheels it carries), then, in order: the services
run, the first report with the demo devices reaches the platform on the host,
the console answers, a reboot brings the retained records back, an upgrade to a
newer build keeps the edited config, the passwords and the records, `apt-get
remove` stops the services, and `apt-get purge` leaves nothing the package made.

Under emulation one thing differs: qemu-user cannot run systemd's credential
set-up (`EMULATION_DROP_IN` says why and what stands in for it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from receiver.app import create_app
from receiver.server import ReceiverServer
from receiver.store import Report
from tests.deploy.conftest import TIMINGS
from tests.deploy.container import HOST_IP, Container, PrivateLink, nspawn_problem
from tests.deploy.emulation import emulation_problem
from tests.deploy.rootfs import cached_root, host_arch, writable_view
from tests.deploy.test_systemd_deploy import (
    CAMERA_UNIT,
    CAMERAS,
    MONITOR_URL,
    ONE_SHOT,
    Box,
    boot_of,
    gateway_config,
    gateway_status,
    open_lock,
    publish_device,
    statuses,
)

REPO = Path(__file__).resolve().parents[2]
VAR = REPO / "var" / "deploy"
DIST = REPO / "dist"
NEXT = VAR / "next"
ARCHES = ("amd64", "arm64")
DEBS = "/root/debs"
UNITS = ("se3-mosquitto", "se3-collector-gateway", "se3-collector-devices", "se3-bridge",
         "se3-console")
APT = ("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y")
# What a purge is checked on: every path of the root but the kernel's, the logs, the
# caches, the package manager's own records (with /var/backups, where Debian's daily
# dpkg-db-backup.timer copies them whenever it comes due, as it may during a test) and
# Debian's mosquitto's database (its broker saves it when the package stops it, and
# again when it comes back).
SNAPSHOT = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run"
            " -o -path /tmp -o -path /var/tmp -o -path /var/log -o -path /var/cache"
            " -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/systemd"
            " -o -path /var/backups"
            " -o -path /var/lib/mosquitto -o -path /root \\) -prune -o -print;"
            " getent passwd; getent group")


# Under qemu-user, systemd cannot hand a service its credentials: it sets them up in a
# child forked with clone(CLONE_NEWNS), which qemu refuses (EINVAL, exit 243/CREDENTIALS).
# In the emulated container only, the services that get their broker password as a
# credential read it straight from the broker's directory, as the broker's user.
EMULATION_DROP_IN = """[Service]
# Test only (tests/deploy/test_package.py): qemu-user cannot run LoadCredential=.
LoadCredential=
DynamicUser=no
User=se3-mqtt
Group=se3-mqtt
Environment=SE3_MQTT_PASSWORD_FILE=/var/lib/se3/mqtt/{role}.pass
"""
CREDENTIAL_ROLES = {"se3-bridge": "bridge", "se3-collector-gateway": "collector-gateway",
                    "se3-collector-devices": "collector-devices", "se3-console": "console"}


def package(directory: Path, arch: str) -> Path:
    found = sorted(directory.glob(f"se3-bridge_*_{arch}.deb"))
    if len(found) != 1:
        raise AssertionError(f"want one {arch} package in {directory}, found {found}: make dist")
    return found[0]


def version_of(deb: Path) -> str:
    return deb.name.split("_")[1]


@pytest.fixture(scope="module")
def newer_build() -> Path:
    """The same tree built again as a later version (an upgrade's package), in var/deploy/next."""
    version = version_of(package(DIST, ARCHES[0])) + ".1"
    started = time.monotonic()
    shutil.rmtree(NEXT, ignore_errors=True)
    subprocess.run([str(REPO / "deploy/debian/build.sh"), "--python", sys.executable,
                    "--out", str(NEXT), "--version", version, *ARCHES],
                   check=True, capture_output=True, timeout=900)
    TIMINGS["newer build (both packages)"] = time.monotonic() - started
    return NEXT


@dataclass
class PackageBox(Box):
    arch: str
    slow: float  # how many times native speed things take here
    before_install: set[str] = field(default_factory=set)

    def snapshot(self) -> set[str]:
        """Every path outside the kernel's, the logs and dpkg's own; every user and group."""
        return set(self.container.sh(SNAPSHOT, timeout=120 * self.slow).stdout.splitlines())

    def apt(self, *args: str) -> float:
        """`apt-get ARGS` inside (no index reachable); the seconds it took."""
        started = time.monotonic()
        self.container.run(*APT, *args, timeout=600 * self.slow)
        return time.monotonic() - started

    def report(self, predicate: Callable[[Report], bool], after: float, timeout: float) -> Report:
        """As Box.report; when none comes, the bridge's journal says why."""
        try:
            return super().report(predicate, after, timeout)
        except AssertionError as error:
            journal = self.container.run("journalctl", "--no-pager", "-n", "30", "-u", "se3-*",
                                         check=False).stdout
            raise AssertionError(f"{error}\njournal:\n{journal}") from None

    def active(self) -> dict[str, str]:
        return {unit: self.show(unit, "ActiveState") for unit in UNITS}

    def sha256(self, *paths: str) -> dict[str, str]:
        out = self.container.sh(f"sha256sum {' '.join(paths)}").stdout
        return {line.split()[1]: line.split()[0] for line in out.splitlines()}


@pytest.fixture(scope="module", params=ARCHES)
def pbox(request: pytest.FixtureRequest, newer_build: Path) -> Iterator[PackageBox]:
    arch: str = request.param
    if os.geteuid() != 0:
        pytest.skip("deployment test: systemd-nspawn needs root")
    why = nspawn_problem(VAR / "probe") or emulation_problem(arch, host_arch())
    if why:
        pytest.skip(f"package test on {arch}: cannot run a container: {why}")
    lock = open_lock(Path("/run/lock/se3-test-deploy.lock"))
    started = time.monotonic()
    cache = cached_root(VAR, arch)
    TIMINGS[f"{arch}: root (debootstrap, or the cache)"] = time.monotonic() - started
    with writable_view(cache, VAR / f"run-{arch}") as root:
        debs = root / DEBS.lstrip("/")
        debs.mkdir(parents=True)
        for deb in (package(DIST, arch), package(newer_build, arch)):
            shutil.copy2(deb, debs / deb.name)
        emulated = arch != host_arch()
        if emulated:
            for unit, role in CREDENTIAL_ROLES.items():
                drop_in = root / f"etc/systemd/system/{unit}.service.d/emulation.conf"
                drop_in.parent.mkdir(parents=True)
                drop_in.write_text(EMULATION_DROP_IN.format(role=role), encoding="utf-8")
        (VAR / f"console-{arch}.log").unlink(missing_ok=True)
        link = PrivateLink("se3-deploy").open()
        platform = ReceiverServer(create_app(), host=HOST_IP).start()
        container = Container(root, link, VAR / f"console-{arch}.log")
        slow = 5.0 if emulated else 1.0
        try:
            TIMINGS[f"{arch}: boot to multi-user"] = container.boot(timeout=90 * slow)
            yield PackageBox(container, platform, arch, slow)
        finally:
            stopping = time.monotonic()
            container.stop(timeout=60 * slow)
            TIMINGS[f"{arch}: power off"] = time.monotonic() - stopping
            platform.stop()
            link.close()
            lock.close()



class TestPackage:
    def test_lintian_finds_no_error(self, pbox: PackageBox) -> None:
        """lintian (when installed, as make test-deploy does) reports no error on the package."""
        if not shutil.which("lintian"):
            pytest.skip("lintian is not installed (make test-deploy installs it)")
        deb = package(DIST, pbox.arch)
        done = subprocess.run(["lintian", "--no-tag-display-limit", str(deb)],
                              capture_output=True, text=True, timeout=300, check=False)
        errors = [line for line in done.stdout.splitlines() if line.startswith("E:")]
        assert not errors, done.stdout

    def test_installs_offline_and_starts_the_services(self, pbox: PackageBox) -> None:
        """`apt-get install ./se3-bridge_..._ARCH.deb` with no index: every service runs."""
        route = pbox.container.run("ip", "route", "get", "151.101.0.223", check=False)
        assert route.returncode != 0, f"the container has a route out: {route.stdout}"
        pbox.before_install = pbox.snapshot()
        deb = package(DIST, pbox.arch).name
        TIMINGS[f"{pbox.arch}: apt-get install ./{deb[:10]}..."] = pbox.apt(
            "install", f"{DEBS}/{deb}")
        for unit in UNITS:
            assert pbox.show(unit, "ActiveState") == "active", unit
            assert pbox.show(unit, "UnitFileState") == "enabled", unit
        # The commands run against the installed config.
        assert "se3-bridge" in pbox.container.run("se3-bridge", "--help").stdout
        # Debian's own broker gave way to the package's.
        assert pbox.show("mosquitto", "ActiveState") == "inactive"

    def test_first_report_with_the_demo_devices(self, pbox: PackageBox) -> None:
        """The user's edit of /etc/se3/config.toml, a restart, and the platform gets the box."""
        demo = (REPO / "config" / "demo.toml").read_text(encoding="utf-8")
        installed = pbox.container.run("cat", "/etc/se3/config.toml").stdout
        pbox.container.sh("cp /opt/se3-bridge/app/config/demo-buildinfo.txt /etc/se3/buildinfo")
        pbox.container.run("tee", "/etc/se3/config.toml", input_text=gateway_config(
            demo, installed, f"{pbox.platform.url}/DeviceStatus"))
        pbox.container.run("tee", "/etc/systemd/system/se3-demo-camera.service",
                           input_text=CAMERA_UNIT)
        restarted = time.time()
        pbox.container.run("systemctl", "enable", "--now", "se3-demo-camera.service",
                           timeout=120 * pbox.slow)
        pbox.container.run("systemctl", "restart", *UNITS, timeout=120 * pbox.slow)
        report = pbox.report(lambda r: gateway_status(r) == "online" and statuses(r) == CAMERAS,
                             after=restarted, timeout=60 * pbox.slow)
        TIMINGS[f"{pbox.arch}: restart to the first full report"] = report.received_at - restarted
        assert not report.violations

    def test_console_answers(self, pbox: PackageBox) -> None:
        """se3-console: 401 without the admin password, the bridge's settings with it."""
        # Restarted with the edited config, it makes its certificate before it listens.
        deadline = time.monotonic() + 30 * pbox.slow
        while not pbox.container.run("ss", "-Hltn", "sport = :5555").stdout.strip():
            assert time.monotonic() < deadline, pbox.container.run(
                "journalctl", "--no-pager", "-n", "20", "-u", "se3-console").stdout
            time.sleep(0.5)
        assert pbox.console("GET", MONITOR_URL, auth=False)[0] == 401
        assert pbox.console_settings(timeout=30 * pbox.slow)["reported_peroid"] == 10

    def test_reboot_brings_back_the_retained_records(self, pbox: PackageBox) -> None:
        """A one-shot record (only the broker keeps it) is reported again after a reboot."""
        t0 = time.time()
        pbox.container.sh(publish_device(ONE_SHOT, "one-shot"))
        before = pbox.report(lambda r: ONE_SHOT in statuses(r), after=t0, timeout=30 * pbox.slow)
        rebooted = time.time()
        TIMINGS[f"{pbox.arch}: reboot to multi-user"] = pbox.container.reboot(
            timeout=90 * pbox.slow)
        after = pbox.report(lambda r: gateway_status(r) == "online" and statuses(r) == {
            **CAMERAS, ONE_SHOT: "online"}, after=rebooted, timeout=60 * pbox.slow)
        TIMINGS[f"{pbox.arch}: reboot to the next full report"] = after.received_at - rebooted
        assert boot_of(after) != boot_of(before)

    def test_upgrade_keeps_config_passwords_and_records(self, pbox: PackageBox) -> None:
        """A newer build keeps the edited config, the passwords and the records; restarts."""
        kept = ["/etc/se3/config.toml", *sorted(pbox.container.sh(
            "ls /var/lib/se3/mqtt/*.pass /var/lib/se3-console/admin.pass").stdout.split())]
        sums = pbox.sha256(*kept)
        pid = pbox.show("se3-bridge", "MainPID")
        deb = package(NEXT, pbox.arch).name
        upgraded = time.time()
        TIMINGS[f"{pbox.arch}: upgrade (apt-get install)"] = pbox.apt("install", f"{DEBS}/{deb}")
        version = pbox.container.run("dpkg-query", "-W", "-f=${Version}", "se3-bridge").stdout
        assert version == version_of(package(NEXT, pbox.arch))
        assert pbox.sha256(*kept) == sums
        assert pbox.active() == dict.fromkeys(UNITS, "active")
        assert pbox.show("se3-bridge", "MainPID") != pid
        pbox.report(lambda r: gateway_status(r) == "online" and statuses(r) == {
            **CAMERAS, ONE_SHOT: "online"}, after=upgraded, timeout=60 * pbox.slow)

    def test_remove_stops_and_purge_leaves_nothing(self, pbox: PackageBox) -> None:
        """`apt-get remove` stops every service; `apt-get purge` takes all the package made."""
        pbox.container.run("systemctl", "disable", "--now", "se3-demo-camera.service",
                           timeout=60 * pbox.slow)
        pbox.container.run("rm", "/etc/systemd/system/se3-demo-camera.service")
        TIMINGS[f"{pbox.arch}: apt-get remove"] = pbox.apt("remove", "se3-bridge")
        assert pbox.active() == dict.fromkeys(UNITS, "inactive")
        assert pbox.show("mosquitto", "ActiveState") == "active"  # Debian's, as before
        assert gateway_status(pbox.platform.state.store.reports()[-1]) == "offline"
        pbox.apt("purge", "se3-bridge")
        pbox.container.run("systemctl", "daemon-reload")
        left = sorted(pbox.snapshot() - pbox.before_install)
        assert not left, left
