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
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from demo.broker import Broker, find_mosquitto, free_port, port_in_use, setup
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
    mqtt_port, web_port, held, grand = free_port(), free_port(), free_port(), free_port()
    conf = setup(tmp / "mqtt", mqtt_port, watch_port=free_port())
    lines = [
        f"broker: {mosquitto} -c {conf}",
        f"receiver: {sys.executable} -m receiver.cli --host 127.0.0.1 --port {web_port}",
    ]
    ports = [mqtt_port, web_port]
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
           grace: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo.run", "--procfile", str(procfile), "--grace", str(grace)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    started.append(proc)
    return proc


def _read_until_ready(proc: subprocess.Popen[bytes], ports: list[int],
                      timeout: float = 20.0) -> tuple[list[int], list[str]]:
    """Read the runner's output until every port is taken; the children's pids, the lines."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    text = b""
    deadline = time.monotonic() + timeout
    while not all(port_in_use(port) for port in ports):
        assert time.monotonic() < deadline, f"stack not up in {timeout} s:\n{text.decode()}"
        select.select([fd], [], [], 0.1)
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
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
        procfile, ports = _procfile(tmp_path / "Procfile", tmp_path, hard=True)
        proc = _start(run_stack, procfile, grace=1.0)
        pids, _ = _read_until_ready(proc, ports)
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
        procfile, ports = _procfile(tmp_path / "Procfile", tmp_path, hard=False)
        proc = _start(run_stack, procfile, grace=5.0)
        pids, _ = _read_until_ready(proc, ports)
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
        procfile, ports = _procfile(tmp_path / "Procfile", tmp_path, hard=False, bridge=True)
        proc = _start(run_stack, procfile, grace=5.0)
        _, lines = _read_until_ready(proc, ports)
        publish_spec_example(Broker(tmp_path / "mqtt", ports[0]))  # something to report
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
        assert re.search(rf"receiver +\| .*report {SN}-\S+ from gateway {SN} \(offline\)", text)
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
