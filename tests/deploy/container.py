"""A booted Debian container (systemd-nspawn) on a private network the test owns.

`PrivateLink` is a network namespace with one veth pair: `HOST_IP` on the host
side, `GUEST_IP` inside. The container joins that namespace
(`--network-namespace-path`), so its loopback is its own (its broker on
127.0.0.1:1883 cannot collide with anything on the host) and it reaches the
host only at `HOST_IP`, where the test's platform listens. The namespace
outlives the container, so a reboot keeps the addresses.

`Container.run()` runs a command inside with `nsenter` (the host has no
machined: `--register=no`). A reboot inside makes systemd-nspawn exit with
133; `reboot()` starts it again on the same root, as systemd-nspawn@.service does.
`power_cut()` kills the container's PID 1, and with it everything inside.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

HOST_IP = "10.214.14.1"
GUEST_IP = "10.214.14.2"
PREFIX_LEN = 30
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REBOOT_EXIT = 133


class ContainerError(RuntimeError):
    pass


def nspawn_problem(scratch: Path) -> str:
    """'' when systemd-nspawn can start a container here, else why not.

    Tried on a stub tree that borrows the host's /usr (read-only), so a machine
    where containers cannot run at all says so before any debootstrap.
    """
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "usr").mkdir(parents=True)
    (scratch / "etc").mkdir()
    shutil.copy("/etc/os-release", scratch / "etc" / "os-release")
    binds = ["--bind-ro=/usr"]
    for top in ("bin", "sbin", "lib", "lib64"):
        host = Path("/") / top
        if host.is_symlink():
            (scratch / top).symlink_to(os.readlink(host))
        elif host.is_dir():
            binds.append(f"--bind-ro={host}")
    try:
        probe = subprocess.run(
            ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet", "--private-network",
             "-D", str(scratch), *binds, "/usr/bin/true"],
            capture_output=True, text=True, timeout=60, check=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return "" if probe.returncode == 0 else (probe.stderr.strip() or f"exit {probe.returncode}")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class PrivateLink:
    """`ip netns` NAME with a veth pair HOST_IP <-> GUEST_IP; `close()` removes both."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.host_if = f"{name[:11]}h"
        self.path = Path("/run/netns") / name

    def open(self) -> PrivateLink:
        self.close()  # what a run cut short left behind
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", "eth0",
            "netns", self.name)
        _ip("addr", "add", f"{HOST_IP}/{PREFIX_LEN}", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("-n", self.name, "addr", "add", f"{GUEST_IP}/{PREFIX_LEN}", "dev", "eth0")
        _ip("-n", self.name, "link", "set", "eth0", "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def close(self) -> None:
        # Deleting the namespace deletes its end of the pair, and with it ours.
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


class Container:
    """systemd-nspawn -b of `root` inside `link`, its console written to `console`."""

    def __init__(self, root: Path, link: PrivateLink, console: Path,
                 binds: dict[Path, str] | None = None) -> None:
        self.root = root
        self.link = link
        self.console = console
        self.binds = binds or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.leader = 0

    def boot(self, timeout: float = 90.0) -> float:
        """Start it and wait until systemd says the boot is over; the seconds it took."""
        started = time.monotonic()
        command = ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet",
                   "--console=read-only", "-D", str(self.root),
                   f"--network-namespace-path={self.link.path}"]
        command += [f"--bind-ro={host}:{guest}" for host, guest in self.binds.items()]
        with self.console.open("ab") as out:
            self.proc = subprocess.Popen([*command, "-b"], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        self.leader = self._find_leader(started + timeout)
        # Until systemd inside listens on its socket, systemctl fails or says "offline".
        while True:
            state = self.run("systemctl", "is-system-running", "--wait", check=False,
                             timeout=max(1.0, started + timeout - time.monotonic()))
            answer = state.stdout.strip()
            if answer in ("running", "degraded"):
                return time.monotonic() - started
            if answer not in ("", "offline") or time.monotonic() > started + timeout:
                raise ContainerError(f"boot ended {answer!r} {state.stderr.strip()!r}; "
                                     f"see {self.console}")
            time.sleep(0.1)

    def _find_leader(self, deadline: float) -> int:
        """The container's PID 1, as the host sees it: a child of systemd-nspawn."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ContainerError(
                    f"systemd-nspawn exited with {self.proc.returncode}: {self.console_tail()}")
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            for pid in children.read_text().split():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except FileNotFoundError:
                    continue
                nspid = next((ln.split()[1:] for ln in status.splitlines()
                              if ln.startswith("NSpid:")), [])
                # PID 1 of the new namespace, once it is systemd (not nspawn's child before exec).
                if nspid[-1:] == ["1"] and len(nspid) > 1 and "\nName:\tsystemd\n" in (
                        "\n" + status):
                    return int(pid)
            time.sleep(0.05)
        raise ContainerError(f"no container init within the boot timeout: {self.console_tail()}")

    def console_tail(self, lines: int = 8) -> str:
        if not self.console.exists():
            return ""
        return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])

    def run(self, *command: str, check: bool = True, timeout: float = 120.0,
            input_text: str | None = None, cwd: str = "/") -> subprocess.CompletedProcess[str]:
        """`command` inside the container as root, with a clean environment."""
        if not self.leader:
            raise ContainerError("the container is not running")
        argv = ["nsenter", "-t", str(self.leader), "-a", "-r", "-w",
                "env", "-i", f"--chdir={cwd}", f"PATH={GUEST_PATH}", "HOME=/root",
                "LANG=C.UTF-8", *command]
        done = subprocess.run(argv, input=input_text, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise ContainerError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def sh(self, script: str, *, timeout: float = 120.0,
           cwd: str = "/") -> subprocess.CompletedProcess[str]:
        """A bash script inside (-euo pipefail); ContainerError if it fails."""
        return self.run("bash", "-euo", "pipefail", "-c", script, timeout=timeout, cwd=cwd)

    def reboot(self, timeout: float = 90.0) -> float:
        """`systemctl reboot` inside, then boot again; the seconds from reboot to booted."""
        assert self.proc is not None
        started = time.monotonic()
        # systemctl may lose its connection as systemd goes down: its exit code says nothing.
        self.run("systemctl", "reboot", check=False)
        code = self.proc.wait(timeout)
        self.leader = 0
        if code != REBOOT_EXIT:
            raise ContainerError(f"systemd-nspawn exited {code} at reboot, not {REBOOT_EXIT}")
        self.boot(timeout)
        return time.monotonic() - started

    def power_cut(self, timeout: float = 90.0) -> float:
        """Kill everything inside at once (SIGKILL to its PID 1), then boot again."""
        assert self.proc is not None
        os.kill(self.leader, signal.SIGKILL)
        self.proc.wait(30)
        self.leader = 0
        return self.boot(timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Power it off (`systemctl poweroff` inside, a clean shutdown); kill it if stuck.

        Not SIGTERM to systemd-nspawn: that reaches PID 1 as SIGRTMIN+3, which
        qemu-user renumbers, so an emulated systemd takes it for another request
        (it goes to rescue mode).
        """
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.leader:
            # systemctl may lose its connection as systemd goes down: its exit code says nothing.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.run("systemctl", "poweroff", check=False, timeout=timeout)
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.leader = 0
