"""The units of deploy/ booted for real: installed as deploy/README.md says, then abused.

A Debian bookworm root (debootstrap, cached under var/deploy) boots with
systemd-nspawn on a private veth network (`tests.deploy.container`); the
platform is the reference receiver on the host side of that link. The steps
of the README's "Install" block run inside, one by one, as written; the only
stand-ins are the checkout (a copy of this working tree in /root/se3-bridge
instead of `git clone`), the editor (the test writes the config) and pip's
index (a wheelhouse built on the host from this venv, bind-mounted read-only
and named in /etc/pip.conf, as the README's "A box without access to a package
index" tells).

The link's addresses (10.214.14.1 host, .2 container) and the namespace name
are fixed: one `make test-deploy` per machine at a time.

The tests run in order on one container: install, report, journal, checks, console,
kill -9, stop, reboot, power cut, security. Each leaves the services running for the next.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

import pytest
import requests

from receiver.app import create_app
from receiver.server import ReceiverServer
from receiver.store import Report
from tests.deploy.conftest import TIMINGS
from tests.deploy.container import GUEST_IP, HOST_IP, Container, PrivateLink, nspawn_problem
from tests.deploy.readme import install_steps, recorded_exposure, section_steps
from tests.deploy.rootfs import cached_root, host_arch, writable_view

REPO = Path(__file__).resolve().parents[2]
VAR = REPO / "var" / "deploy"
SRC = "/root/se3-bridge"
WHEELHOUSE = "/srv/wheelhouse"
SN = "SZCCKQRAIJBAH0002"
UNITS = ("se3-mosquitto", "se3-collector-gateway", "se3-collector-devices", "se3-bridge",
         "se3-console")
# The console on the box's LAN address, as deploy/README.md shows how to set it: off
# loopback, HTTPS with the certificate it made at its first start.
CONSOLE = f"https://{GUEST_IP}:5555"
CONSOLE_PASS = "/var/lib/se3-console/admin.pass"
CONSOLE_CERT = "/var/lib/se3-console/tls.crt"
CONSOLE_KEY = "/var/lib/se3-console/tls.key"
MONITOR_URL = "/SophonFogSys/api/MonitorServerUrl"
# One call to the console from inside the box: method, path, JSON body ('' for none),
# and whether to send the admin password (HTTP Basic, read from its file as root).
# The console's certificate is pinned (read from its file). Prints the status and the body.
CONSOLE_CALL = f"""
import base64, ssl, sys, urllib.error, urllib.request
method, path, body, auth = sys.argv[1:]
pinned = ssl.create_default_context(cafile="{CONSOLE_CERT}")
request = urllib.request.Request("{CONSOLE}" + path, method=method,
                                 data=body.encode() if body else None)
request.add_header("Content-Type", "application/json")
if auth == "yes":
    with open("{CONSOLE_PASS}", encoding="utf-8") as fh:
        secret = base64.b64encode(b"admin:" + fh.read().strip().encode()).decode()
    request.add_header("Authorization", "Basic " + secret)
try:
    with urllib.request.urlopen(request, timeout=10, context=pinned) as answer:
        print(answer.status, answer.read().decode())
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
"""
# demo.camera answers for the RTSP devices of config/demo.toml; the turnstile has no
# stand-in (as in `make run`), so it is reported offline.
CAMERAS = {"127.0.0.11": "online", "127.0.0.12": "online", "127.0.0.13": "offline"}
# Device records only the broker's retained store keeps (nothing republishes them).
ONE_SHOT, KEPT, LOST = "10.9.9.9", "10.9.9.10", "10.9.9.11"
BROKER_DB = "/var/lib/se3/mqtt/mosquitto.db"
AUTOSAVE = 30  # the broker's autosave_interval as installed (deploy/README.md)

CAMERA_UNIT = """[Unit]
Description=Pretend cameras of config/demo.toml (deployment test)
After=network.target
[Service]
Environment=SE3_CONFIG=/etc/se3/config.toml
WorkingDirectory=/opt/se3-bridge/app
ExecStart=/opt/se3-bridge/venv/bin/python -P -m demo.camera
[Install]
WantedBy=multi-user.target
"""


def boot_of(report: Report) -> str:
    """The boot part of an X-Report-Id `{sn}-{boot}-{seq}`."""
    assert report.report_id is not None
    return report.report_id.rsplit("-", 2)[1]


def statuses(report: Report) -> dict[str, str]:
    payload = report.payload
    assert isinstance(payload, dict)
    return {d["ep_ip"]: d["ep_status"] for d in payload["sub_devices"]}


def gateway_status(report: Report) -> str:
    assert isinstance(report.payload, dict)
    return str(report.payload["gateway_status"])


def has_dev_sno(dev_sno: str, report: Report) -> bool:
    return isinstance(report.payload, dict) and report.payload["dev_sno"] == dev_sno


def publish_device(ip: str, name: str) -> str:
    """A shell line publishing a retained device record as the `app` user (docs/apps.md)."""
    record = json.dumps({"ep_status": "online", "ep_type": "2", "ep_name": name,
                         "ep_location": "95274d2c-0941-4d96-b032-ab200f81362c"})
    return ("env XDG_CONFIG_HOME=/var/lib/se3/mqtt/clients/app mosquitto_pub"
            f" -q 1 -r -t se3/{SN}/apps/app/devices/{ip}/state -m '{record}'")


def gateway_config(demo_toml: str, installed: str, report_url: str) -> str:
    """What the user's edit makes of the installed config: the demo's gateway and devices.

    The broker user for commands run by hand, and the console's password file, stay
    as install.sh wrote them; the console listens on the box's LAN address.
    """
    console = demo_toml.index("\n[console]\n")
    head, tail = demo_toml[:console], demo_toml[console:]
    password_file = re.findall(r"^password_file = (.*)$",
                               installed[installed.index("\n[console]\n"):], re.M)[0]
    tail = re.sub(r"^password_file = .*$", f"password_file = {password_file}", tail,
                  count=1, flags=re.M)
    tail = re.sub(r"^listen = .*$", f'listen = "{GUEST_IP}:5555"', tail, count=1, flags=re.M)
    demo_toml = head + tail
    edits = {
        "sw_version_file": '"/etc/se3/buildinfo"',
        "login_url": '""',
        "report_url": json.dumps(report_url),
        "interval": "10",
    }
    for key in ("username", "password_file"):
        edits[key] = re.findall(rf"^{key} = (.*)$", installed, re.M)[0]
    for key, value in edits.items():
        demo_toml = re.sub(rf"^{key} = .*$", f"{key} = {value}", demo_toml, count=1, flags=re.M)
    return demo_toml


def wheelhouse() -> Path:
    """The project's dependencies (and build backend) as wheels, from this venv's pip."""
    key = subprocess.run(["sha256sum", str(REPO / "pyproject.toml")], capture_output=True,
                         text=True, check=True).stdout[:12]
    house = VAR / f"wheelhouse-{key}"
    if (house / ".complete").exists():
        return house
    for stale in VAR.glob("wheelhouse-*"):
        shutil.rmtree(stale)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(house),
                    str(REPO), "setuptools>=68", "wheel"], check=True, timeout=600)
    for own in house.glob("se3_bridge-*"):
        own.unlink()  # install.sh builds the project itself, from the checkout
    (house / ".complete").touch()
    return house


def copy_checkout(dest: Path) -> None:
    """The working tree as `git clone` would give it (tracked and new files, no ignored ones)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    dest.mkdir(parents=True)
    for name in filter(None, files):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@dataclass
class Box:
    container: Container
    platform: ReceiverServer

    def report(self, predicate: Callable[[Report], bool], after: float, timeout: float) -> Report:
        """The newest report received after `after` (Unix time) for which `predicate` holds."""
        found = self.platform.state.store.wait_for(
            lambda r: r.received_at > after and predicate(r), timeout)
        if found is None:
            last = self.platform.state.store.reports()[-3:]
            raise AssertionError(f"no such report in {timeout} s; last: {last}")
        return found

    def show(self, unit: str, prop: str) -> str:
        return self.container.run("systemctl", "show", "-P", prop, unit).stdout.strip()

    def console(self, method: str, path: str, body: object = None,
                auth: bool = True) -> tuple[int, object]:
        """A call to the console from inside the box: (HTTP status, JSON answer)."""
        out = self.container.run(
            "/usr/bin/python3", "-c", CONSOLE_CALL, method, path,
            "" if body is None else json.dumps(body), "yes" if auth else "no").stdout
        status, _, text = out.strip().partition(" ")
        return int(status), json.loads(text) if text else None

    def console_settings(self, timeout: float) -> dict[str, object]:
        """The console's monitor settings once they name this platform (the bridge's)."""
        deadline = time.monotonic() + timeout
        while True:
            status, answer = self.console("GET", MONITOR_URL)
            assert status == 200, answer
            assert isinstance(answer, dict)
            if answer["data"]["monitor_server_url"] == f"{self.platform.url}/DeviceStatus":
                return dict(answer["data"])
            assert time.monotonic() < deadline, answer
            time.sleep(0.5)


@pytest.fixture(scope="module")
def box() -> Iterator[Box]:
    if os.geteuid() != 0:
        pytest.skip("deployment test: systemd-nspawn needs root")
    missing = [t for t in ("systemd-nspawn", "debootstrap", "nsenter", "ip") if not shutil.which(t)]
    if missing:
        pytest.skip(f"deployment test: {missing} not installed (make test-deploy installs them)")
    why = nspawn_problem(VAR / "probe")
    if why:
        pytest.skip(f"deployment test: systemd-nspawn cannot run a container here: {why}")
    # One deployment test per machine: the link's namespace and addresses are fixed, and a
    # second run would tear down the first one's network. A second run waits its turn.
    lock = open_lock(Path("/run/lock/se3-test-deploy.lock"))
    started = time.monotonic()
    cache = cached_root(VAR, host_arch())
    TIMINGS["root (debootstrap, or the cache)"] = time.monotonic() - started
    started = time.monotonic()
    house = wheelhouse()
    TIMINGS["wheelhouse (pip wheel, or the cache)"] = time.monotonic() - started
    with writable_view(cache, VAR / "run") as root:
        copy_checkout(root / SRC.lstrip("/"))
        (root / "etc/pip.conf").write_text(
            f"[global]\nno-index = true\nfind-links = {WHEELHOUSE}\n")
        (VAR / "console.log").unlink(missing_ok=True)
        link = PrivateLink("se3-deploy").open()
        platform = ReceiverServer(create_app(), host=HOST_IP).start()
        container = Container(root, link, VAR / "console.log", {house: WHEELHOUSE})
        try:
            TIMINGS["boot to multi-user"] = container.boot()
            yield Box(container, platform)
        finally:
            container.stop()
            platform.stop()
            link.close()
            lock.close()


def open_lock(path: Path) -> IO[str]:
    """An exclusive lock held while the returned file stays open (waits for another run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"deployment test: another run holds {path}; waiting for it", flush=True)
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


class TestDeployment:
    def test_install_as_the_readme_says(self, box: Box) -> None:
        """Every line of the README's Install block runs as written and succeeds."""
        readme = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
        steps = install_steps(readme)
        assert any("install.sh" in s for s in steps), steps
        assert any("enable" in s for s in steps), steps
        demo = (REPO / "config" / "demo.toml").read_text(encoding="utf-8")
        started = time.monotonic()
        for step in steps:
            if step.startswith("git clone"):
                continue  # the checkout is already in SRC
            edited = re.fullmatch(r"sudoedit (\S+)", step)
            if edited:
                box.container.sh(f"cp {SRC}/config/demo-buildinfo.txt /etc/se3/buildinfo")
                installed = box.container.run("cat", edited.group(1)).stdout
                box.container.run("tee", edited.group(1), input_text=gateway_config(
                    demo, installed, f"{box.platform.url}/DeviceStatus"))
                continue
            t0 = time.monotonic()
            box.container.sh(step, cwd=SRC, timeout=300)
            TIMINGS[f"step: {step[:36]}"] = time.monotonic() - t0
        TIMINGS["install block in all"] = time.monotonic() - started
        for unit in UNITS:
            assert box.show(unit, "ActiveState") == "active", unit
            assert box.show(unit, "UnitFileState") == "enabled", unit
        # The pretend cameras of the demo, as a unit of their own (it survives the reboot).
        box.container.run("tee", "/etc/systemd/system/se3-demo-camera.service",
                          input_text=CAMERA_UNIT)
        box.container.run("systemctl", "enable", "--now", "se3-demo-camera.service")

    def test_report_arrives_with_the_demo_devices(self, box: Box) -> None:
        """The platform on the host gets the gateway online and the demo cameras probed."""
        report = box.report(lambda r: gateway_status(r) == "online"
                            and statuses(r) == CAMERAS, after=0, timeout=30)
        assert isinstance(report.payload, dict)
        assert report.payload["gateway_sn"] == SN
        assert report.payload["gateway_ip"] == GUEST_IP
        assert not report.violations

    def test_journal_has_the_bridge_log(self, box: Box) -> None:
        """`journalctl -u se3-bridge` shows the bridge's own lines."""
        journal = box.container.run("journalctl", "-u", "se3-bridge", "--no-pager").stdout
        assert "se3-bridge starting for gateway" in journal
        assert "connected to broker 127.0.0.1:1883" in journal
        assert "reporting to http://" in journal

    def test_check_it_commands_answer(self, box: Box) -> None:
        """The README's 'Check it' lines work as written (a follow becomes a tail)."""
        steps = section_steps((REPO / "deploy" / "README.md").read_text(encoding="utf-8"),
                              "Check it")
        outputs = {}
        for step in steps:
            command = step.replace(" -f", " --no-pager -n 20").replace(
                "systemctl status", "systemctl --no-pager status")
            if "mosquitto_sub" in command:
                command += " -C 1 -W 10"  # the first (retained) message is enough
            outputs[step] = box.container.sh(command, timeout=30).stdout
        assert any(f"se3/{SN}/" in out for step, out in outputs.items() if "mosquitto_sub" in step)
        snapshot = next(out for step, out in outputs.items() if step.endswith("snapshot"))
        assert "127.0.0.11" in snapshot

    def test_console_answers_and_changes_dev_sno(self, box: Box) -> None:
        """se3-console on the LAN address: 401 without the password, the settings with it;
        a PUT DevSno reaches the platform in the next report."""
        mode, owner = box.container.run("stat", "-L", "-c", "%a %u", CONSOLE_PASS).stdout.split()
        pid = box.show("se3-console", "MainPID")
        assert mode == "600"
        assert owner == box.container.run("stat", "-c", "%u", f"/proc/{pid}").stdout.strip()
        assert box.container.run("stat", "-c", "%a", CONSOLE_KEY).stdout.strip() == "600"
        assert box.console("GET", MONITOR_URL, auth=False)[0] == 401
        # The host, a neighbour on the LAN, sees the certificate whose fingerprint the
        # console logged and `se3-bridge status` shows, and with it pinned gets the same
        # 401 at the box's address; plain HTTP gets no page.
        served = ssl.get_server_certificate((GUEST_IP, 5555), timeout=10)
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest().upper()
        print_ = ":".join(digest[i:i + 2] for i in range(0, 64, 2))
        shown = box.container.run("se3-bridge", "status", "--wait", "0", check=False).stdout
        assert f"https://{GUEST_IP}:5555, certificate SHA-256 {print_}" in shown, shown
        journal = box.container.run("journalctl", "-u", "se3-console", "--no-pager").stdout
        assert f"SHA-256 fingerprint {print_}" in journal
        pinned = VAR / "console.crt"
        pinned.write_text(served, encoding="ascii")
        assert requests.get(CONSOLE + MONITOR_URL, verify=str(pinned),
                            timeout=10).status_code == 401
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{GUEST_IP}:5555{MONITOR_URL}", timeout=10)
        # The console answers from the bridge's settings once it has them.
        assert box.console_settings(timeout=20)["reported_peroid"] == 10
        before = box.report(lambda r: gateway_status(r) == "online", after=0, timeout=10)
        assert isinstance(before.payload, dict)
        original = before.payload["dev_sno"]
        for dev_sno in ("SE3DEPLOYTEST0001", ""):
            t0 = time.time()
            status, answer = box.console("PUT", "/SophonMQ/api/DevSno", {"dev_sno": dev_sno})
            assert status == 200, answer
            changed = box.report(partial(has_dev_sno, dev_sno or original), after=t0,
                                 timeout=25)  # cleared: the gateway's own again
            TIMINGS[f"console {'sets' if dev_sno else 'clears'} dev_sno to report"] = (
                changed.received_at - t0)

    def test_kill_9_is_restarted_and_reports_resume(self, box: Box) -> None:
        """systemd restarts a bridge killed with -9; it reports again under a new boot id."""
        before = box.report(lambda r: gateway_status(r) == "online", after=0, timeout=10)
        pid = box.show("se3-bridge", "MainPID")
        restarts = int(box.show("se3-bridge", "NRestarts"))
        killed = time.time()
        box.container.sh(f"kill -9 {pid}")  # the shell's kill: minbase has no procps
        after = box.report(lambda r: gateway_status(r) == "online", after=killed, timeout=30)
        TIMINGS["kill -9 to the next report"] = after.received_at - killed
        assert boot_of(after) != boot_of(before)
        assert int(box.show("se3-bridge", "NRestarts")) == restarts + 1
        assert box.show("se3-bridge", "MainPID") != pid
        assert statuses(after) == CAMERAS

    def test_stop_sends_the_last_offline_report_in_time(self, box: Box) -> None:
        """`systemctl stop` returns after the `offline` report landed, within TimeoutStopSec."""
        limit = box.show("se3-bridge", "TimeoutStopUSec")
        seconds = float(limit.removesuffix("s")) if limit.endswith("s") else 90.0
        t0 = time.time()
        box.container.run("systemctl", "stop", "se3-bridge")
        stopped = time.time()
        TIMINGS["systemctl stop se3-bridge"] = stopped - t0
        assert stopped - t0 < seconds
        assert box.show("se3-bridge", "Result") == "success"
        last = box.platform.state.store.reports()[-1]
        assert gateway_status(last) == "offline"
        assert t0 < last.received_at <= stopped
        box.container.run("systemctl", "start", "se3-bridge")
        box.report(lambda r: gateway_status(r) == "online", after=stopped, timeout=20)

    def test_reboot_keeps_retained_state_under_a_new_boot(self, box: Box) -> None:
        """A one-shot retained record survives a reboot; reported again under a new boot id."""
        t0 = time.time()
        box.container.sh(publish_device(ONE_SHOT, "one-shot"))
        before = box.report(lambda r: ONE_SHOT in statuses(r), after=t0, timeout=15)
        rebooted = time.time()
        TIMINGS["reboot to multi-user"] = box.container.reboot()
        after = box.report(lambda r: gateway_status(r) == "online" and statuses(r) == {
            **CAMERAS, ONE_SHOT: "online"}, after=rebooted, timeout=40)
        TIMINGS["reboot to the next full report"] = after.received_at - rebooted
        assert boot_of(after) != boot_of(before)
        # The clean shutdown before the reboot said goodbye.
        assert any(gateway_status(r) == "offline" and rebooted < r.received_at < after.received_at
                   for r in box.platform.state.store.reports())

    def test_power_cut_loses_only_the_autosave_window(self, box: Box) -> None:
        """Killed at once: what the broker saved is back, a record newer than its last save not."""
        box.container.sh(publish_device(KEPT, "kept"))
        published = float(box.container.run("date", "+%s.%N").stdout)
        # The broker saves every autosave_interval (30 s): wait for the save after KEPT.
        deadline = time.monotonic() + AUTOSAVE + 10
        while float(box.container.run("stat", "-c", "%.9Y", BROKER_DB).stdout) <= published:
            assert time.monotonic() < deadline, "no autosave of the broker's database"
            time.sleep(0.5)
        t0 = time.time()
        box.container.sh(publish_device(LOST, "lost"))
        before = box.report(lambda r: LOST in statuses(r), after=t0, timeout=15)
        cut = time.time()
        TIMINGS["power cut to multi-user"] = box.container.power_cut()
        after = box.report(lambda r: gateway_status(r) == "online"
                           and statuses(r).get(KEPT) == "online", after=cut, timeout=40)
        assert boot_of(after) != boot_of(before)
        assert LOST not in statuses(after)
        assert statuses(after).get(ONE_SHOT) == "online"

    def test_security_exposure_is_what_the_readme_records(self, box: Box) -> None:
        """`systemd-analyze security` of each unit is no worse than the README's table."""
        recorded = recorded_exposure((REPO / "deploy" / "README.md").read_text(encoding="utf-8"))
        units = sorted(p.name for p in (REPO / "deploy" / "systemd").glob("*.service"))
        assert sorted(recorded) == units
        for unit in units:
            out = box.container.run("systemd-analyze", "security", "--no-pager", unit).stdout
            level = float(re.findall(r"Overall exposure level for \S+: (\d+\.\d)", out)[0])
            assert level <= recorded[unit], (unit, level, recorded[unit])
