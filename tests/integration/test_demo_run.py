"""The demo runner (demo/run.py) always stops the whole stack, as `make run | tee` is used.

The stack is a Procfile of real programs on free ports: mosquitto with the
project's config, the reference receiver, and two stand-ins that are harder to
stop (one ignores SIGTERM, one leaves a grandchild that ignores it). The runner
writes into a pipe the test reads, like `tee`; the test then closes its end
(Ctrl-C killed tee) and/or sends the signal Ctrl-C sends.
"""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from demo.broker import Broker, find_mosquitto, free_port, free_ports, port_in_use, setup
from demo.run import listening
from tests.integration.stack import SN, publish_spec_example

# Binds the port argv[1], says so, and ignores SIGTERM: only SIGKILL ends it.
_STUBBORN = """\
import signal, socket, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("holding", sys.argv[1], flush=True)
time.sleep(600)
"""
# Starts a grandchild like the above, and itself exits on SIGTERM as usual.
_PARENT = """\
import pathlib, subprocess, sys, time
stubborn = pathlib.Path(__file__).with_name("stubborn.py")
subprocess.Popen([sys.executable, str(stubborn), sys.argv[1]])
time.sleep(600)
"""


def _bridge_line(tmp: Path, mqtt_port: int, web_port: int) -> tuple[str, int]:
    """A Procfile line running the bridge as its role against this stack; its metrics port."""
    metrics = free_port()
    config = tmp / "bridge.toml"
    config.write_text("\n".join([
        "[gateway]", f'sn = "{SN}"',
        "[mqtt]", 'host = "127.0.0.1"', f"port = {mqtt_port}",
        "[platform]", f'report_url = "http://127.0.0.1:{web_port}/DeviceStatus"',
        "interval = 30", "min_interval = 0.2", "timeout = 2",
        "[bridge]", f'metrics_listen = "127.0.0.1:{metrics}"',
    ]) + "\n", encoding="utf-8")
    user, password = Broker(tmp / "mqtt", mqtt_port).credentials("bridge")
    return (f"bridge: SE3_MQTT_USERNAME={user} SE3_MQTT_PASSWORD_FILE={password} "
            f"{sys.executable} -m bridge --config {config} run"), metrics


def _procfile(path: Path, tmp: Path, hard: bool,
              bridge: bool = False) -> tuple[Path, list[int]]:
    try:
        mosquitto = find_mosquitto()
    except Exception as exc:  # MosquittoError: not installed here
        pytest.skip(str(exc))
    mqtt_port, web_port, held, grand, watch_port = free_ports(5)
    conf = setup(tmp / "mqtt", mqtt_port, watch_port=watch_port)
    lines = [
        f"broker: {mosquitto} -c {conf}",
        f"receiver: {sys.executable} -m receiver.cli --host 127.0.0.1 --port {web_port}",
    ]
    ports = [mqtt_port, web_port, watch_port]  # the broker is up once both listeners are
    if bridge:
        line, metrics = _bridge_line(tmp, mqtt_port, web_port)
        lines.append(line)
        ports.append(metrics)
    if hard:
        (tmp / "stubborn.py").write_text(_STUBBORN, encoding="utf-8")
        (tmp / "parent.py").write_text(_PARENT, encoding="utf-8")
        lines += [f"stubborn: {sys.executable} {tmp / 'stubborn.py'} {held}",
                  f"parent: {sys.executable} {tmp / 'parent.py'} {grand}"]
        ports += [held, grand]
    path.write_text("# test stack\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path, ports


@pytest.fixture
def run_stack(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:  # a failed test leaves nothing behind either
        left: list[psutil.Process] = []
        if proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                left = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for child in left:  # whatever the runner could not stop
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        if proc.stdout is not None:
            proc.stdout.close()


def _start(started: list[subprocess.Popen[bytes]], procfile: Path,
           grace: float, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo.run", "--procfile", str(procfile), "--grace", str(grace),
         *(extra or [])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    started.append(proc)
    return proc


class _PortTaken(Exception):
    """A port chosen free was taken by another process before the stack bound it."""


@dataclass
class _Stack:
    proc: subprocess.Popen[bytes]
    ports: list[int]
    pids: list[int]
    lines: list[str]
    dir: Path


def _up(started: list[subprocess.Popen[bytes]], tmp_path: Path, *, hard: bool, grace: float,
        bridge: bool = False) -> _Stack:
    """A test stack on free ports, up and listening.

    A free port can be taken by another test's process between being chosen and
    being bound (the broker binds its listeners one after the other, then exits on
    "Address already in use"): the stack is then started again on other ports.
    """
    for attempt in range(3):
        tmp = tmp_path / f"stack{attempt}"
        tmp.mkdir()
        procfile, ports = _procfile(tmp / "Procfile", tmp, hard=hard, bridge=bridge)
        proc = _start(started, procfile, grace=grace)
        try:
            pids, lines = _read_until_ready(proc, ports)
        except _PortTaken:
            proc.wait(timeout=30)
            continue
        return _Stack(proc, ports, pids, lines, tmp)
    raise AssertionError("three stacks in a row found a port taken by another process")


def _read_until_ready(proc: subprocess.Popen[bytes], ports: list[int],
                      timeout: float = 20.0) -> tuple[list[int], list[str]]:
    """Read the runner's output until every port is taken; the children's pids, the lines.

    The ports are looked up in the kernel's table, not connected to: each connection
    is a line of the broker's log, which the runner passes on, which wakes this loop
    to connect again; once the test stops reading, that log fills the pipes and the
    broker blocks on its own logging. _PortTaken when the runner ended because a
    child found its port taken."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    text = b""
    deadline = time.monotonic() + timeout
    while not all(listening(("127.0.0.1", port)) for port in ports):
        assert time.monotonic() < deadline, f"stack not up in {timeout} s:\n{text.decode()}"
        select.select([fd], [], [], 0.1)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk and b"Address already in use" in text:
            raise _PortTaken(text.decode())
        assert chunk, f"the runner ended early:\n{text.decode()}"
        text += chunk
    os.set_blocking(fd, True)
    pids = [int(pid) for pid in re.findall(r"\| started \S+ \(pid (\d+)\)", text.decode())]
    return pids, text.decode().splitlines()


def _read_until(proc: subprocess.Popen[bytes], marker: str,
                timeout: float = 20.0) -> tuple[bool, list[str]]:
    """Read the runner's output until a line holds `marker`; (found, the lines read)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        lines.append(line.rstrip())
        if marker in line:
            return True, lines
    raise AssertionError(f"no {marker!r} in the output:\n" + "\n".join(lines))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _descendants(pids: list[int]) -> list[int]:
    found: list[int] = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            found += [child.pid for child in psutil.Process(pid).children(recursive=True)]
    return found


class TestStop:
    def test_ctrl_c_with_tee_gone_stops_everything(
        self, tmp_path: Path, run_stack: list[subprocess.Popen[bytes]]
    ) -> None:
        """`make run | tee` and Ctrl-C: tee dies, SIGINT arrives; every process and port is freed.

        A child that ignores SIGTERM is killed after the grace, and so is a
        grandchild left behind in a child's process group.
        """
        stack = _up(run_stack, tmp_path, hard=True, grace=1.0)
        proc, ports, pids = stack.proc, stack.ports, stack.pids
        assert len(pids) == 4
        everyone = pids + _descendants(pids)
        assert proc.stdout is not None
        proc.stdout.close()  # tee is gone: the runner's next write gets EPIPE
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 1  # a child had to be killed
        assert all(_gone(pid) for pid in everyone)
        assert not [port for port in ports if port_in_use(port)]

    def test_reader_gone_alone_stops_everything(
        self, tmp_path: Path, run_stack: list[subprocess.Popen[bytes]]
    ) -> None:
        """A broken output alone (the reader closed the pipe, no signal) stops the stack."""
        stack = _up(run_stack, tmp_path, hard=False, grace=5.0)
        proc, ports, pids = stack.proc, stack.ports, stack.pids
        assert proc.stdout is not None
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0
        assert all(_gone(pid) for pid in pids)
        assert not [port for port in ports if port_in_use(port)]

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
    def test_signal_stops_in_reverse_order_and_exits_0(
        self, tmp_path: Path, run_stack: list[subprocess.Popen[bytes]], signum: int
    ) -> None:
        """A clean stop: the bridge stops first and its last report reaches the receiver,
        nothing reads like a failure, the broker (first line) stops last, the last line
        says so, exit 0."""
        stack = _up(run_stack, tmp_path, hard=False, grace=5.0, bridge=True)
        proc, ports, lines = stack.proc, stack.ports, stack.lines
        publish_spec_example(Broker(stack.dir / "mqtt", ports[0]))  # something to report
        _, more = _read_until(proc, f"report {SN}-")
        lines += more
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30)
        lines += out.decode().splitlines()
        text = "\n".join(lines)
        assert proc.returncode == 0, text
        mine = [line.split("| ", 1)[1] for line in lines if re.match(r"\S+ demo +\|", line)]
        assert mine[-4:] == ["bridge stopped", "receiver stopped", "broker stopped",
                             "all stopped"]
        assert re.search(rf"receiver +\| .*report {SN}-\S+ .*from gateway {SN} \(offline\)", text)
        assert "Unspecified error" not in text
        assert "Traceback" not in text
        assert not [port for port in ports if port_in_use(port)]

    def test_a_child_that_dies_stops_the_rest(
        self, tmp_path: Path, run_stack: list[subprocess.Popen[bytes]]
    ) -> None:
        """A crashed child is named, the others are stopped, and the exit status is 1."""
        procfile, ports = _procfile(tmp_path / "Procfile", tmp_path, hard=False)
        with procfile.open("a", encoding="utf-8") as f:
            f.write(f"crash: {sys.executable} -c \"import sys; sys.exit(3)\"\n")
        proc = _start(run_stack, procfile, grace=5.0)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 1
        assert "crash exited with code 3: stopping the others" in out.decode()
        assert not [port for port in ports if port_in_use(port)]
        assert os.path.exists(procfile)


# Connects to 127.0.0.1:argv[1] at once, says whether something answered, and waits.
_CHECKER = """\
import socket, sys, time
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
    print("checker found it up", flush=True)
except OSError:
    print("checker found it down", flush=True)
time.sleep(600)
"""


class TestReady:
    def test_the_next_process_starts_once_the_ready_one_listens(
        self, tmp_path: Path, run_stack: list[subprocess.Popen[bytes]]
    ) -> None:
        """The receiver (slow to start: it imports Flask) listens before the process
        after it starts, which finds it up at its first try."""
        port = free_port()
        (tmp_path / "checker.py").write_text(_CHECKER, encoding="utf-8")
        procfile = tmp_path / "Procfile"
        procfile.write_text(
            f"receiver: {sys.executable} -m receiver.cli --host 127.0.0.1 --port {port}\n"
            f"checker: {sys.executable} {tmp_path / 'checker.py'} {port}\n", encoding="utf-8")
        proc = _start(run_stack, procfile, grace=5.0,
                      extra=["--ready", f"receiver=127.0.0.1:{port}"])
        _, lines = _read_until(proc, "checker found it")
        assert "checker found it up" in lines[-1], "\n".join(lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0

    def test_a_process_not_listening_in_time_stops_the_stack(
        self, tmp_path: Path, run_stack: list[subprocess.Popen[bytes]]
    ) -> None:
        """Named, the processes after it never started, exit status 1."""
        port = free_port()
        procfile = tmp_path / "Procfile"
        procfile.write_text(
            f"mute: {sys.executable} -c \"import time; time.sleep(600)\"\n"
            f"after: {sys.executable} -c \"import time; time.sleep(600)\"\n", encoding="utf-8")
        proc = _start(run_stack, procfile, grace=5.0,
                      extra=["--ready", f"mute=127.0.0.1:{port}", "--ready-timeout", "1"])
        out, _ = proc.communicate(timeout=30)
        text = out.decode()
        assert proc.returncode == 1, text
        assert f"mute not listening on 127.0.0.1:{port} after 1 s: stopping" in text
        assert "started after" not in text
        assert "all stopped" not in text

    def test_a_bad_ready_option_is_refused(self, tmp_path: Path) -> None:
        """A --ready that is not NAME=IPV4:PORT, or names no process: status 2, said why."""
        procfile = tmp_path / "Procfile"
        procfile.write_text("one: sleep 600\n", encoding="utf-8")
        for ready, reason in [("one=localhost:80", "expected NAME=IPV4:PORT"),
                              ("one=127.0.0.1:0", "expected NAME=IPV4:PORT"),
                              ("two=127.0.0.1:80", "--ready names no process")]:
            done = subprocess.run(
                [sys.executable, "-m", "demo.run", "--procfile", str(procfile),
                 "--ready", ready], capture_output=True, text=True, timeout=30, check=False)
            assert done.returncode == 2
            assert reason in done.stderr

    def test_listening_reads_the_kernel_table(self) -> None:
        """A listening socket is seen at its address and at none other; a bound socket
        that does not listen is not."""
        with socket.socket() as bound, socket.socket() as server:
            bound.bind(("127.0.0.1", 0))
            server.bind(("127.0.0.1", 0))
            port = server.getsockname()[1]
            assert not listening(("127.0.0.1", port))
            server.listen()
            assert listening(("127.0.0.1", port))
            assert not listening(("127.0.0.2", port))
            assert not listening(("127.0.0.1", bound.getsockname()[1]))


class TestUnderMake:
    def test_one_ctrl_c_in_a_terminal_ends_make_without_an_error(self, tmp_path: Path) -> None:
        """`make run` in a terminal: the Ctrl-C key reaches the runner alone, the stack stops
        cleanly, and make ends with status 0 (not 130 for an interrupt of its own)."""
        if not shutil.which("make") or not shutil.which("setsid"):
            pytest.skip("make or setsid (util-linux) not installed")
        port = free_port()
        procfile = tmp_path / "Procfile"
        procfile.write_text(
            f"receiver: {sys.executable} -m receiver.cli --host 127.0.0.1 --port {port}\n",
            encoding="utf-8")
        makefile = tmp_path / "Makefile"
        makefile.write_text(
            f"run:\n\texec {sys.executable} -m demo.run --procfile {procfile} "
            f"--ready receiver=127.0.0.1:{port}\n", encoding="utf-8")
        master, slave = pty.openpty()
        # setsid -c: a session of its own, whose controlling terminal is the pty, as a
        # shell in a terminal window gives make.
        make = subprocess.Popen(["setsid", "-c", "make", "-f", str(makefile), "run"],
                                stdin=slave, stdout=slave, stderr=slave,
                                cwd=Path(__file__).parents[2])
        os.close(slave)
        try:
            text = _read_pty(master, "receiver listening on", 30)
            assert "receiver listening on" in text, text
            os.write(master, b"\x03")  # the terminal's Ctrl-C
            text += _read_pty(master, None, 30)
            assert make.wait(timeout=30) == 0, text
        finally:
            if make.poll() is None:
                make.kill()
                make.wait()
            os.close(master)
        assert "demo     | all stopped" in text
        assert "Interrupt" not in text
        assert not port_in_use(port)


def _read_pty(master: int, marker: str | None, timeout: float) -> str:
    """What the terminal shows until `marker` (None: until it closes), or `timeout`."""
    text = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every process of the terminal has closed it
            break
        if not chunk:
            break
        text += chunk
        if marker is not None and marker.encode() in text:
            break
    return text.decode(errors="replace")
