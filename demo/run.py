"""`python -m demo.run`: run the demo stack of the Procfile, and always stop all of it.

    python -m demo.run [--procfile Procfile] [--grace 5] [--ready NAME=HOST:PORT ...]

The stack is the Procfile: one `name: command` per line, `#` comments. A
command is split into words as a shell would (quotes), without a shell: leading
`NAME=value` words set that process's environment, the rest is the program and
its arguments. The directory of this Python (the venv's bin) and /usr/sbin
(Debian's mosquitto) are put on PATH.

The processes start in the Procfile's order, and a process named by
`--ready NAME=HOST:PORT` (once for each of its addresses) has to listen there
before the next one starts: the bridge then finds the receiver listening at its
first report, and the devices collector the cameras at its first probe. One
not listening after `--ready-timeout` seconds (or ending before) stops the stack.
Readiness is read from the kernel's table of listening sockets, without
connecting (a connection would be a line in the broker's log).

Every child runs in its own process group, so a signal meant for it reaches
whatever it started too. Its output (stdout and stderr) is printed line by
line, prefixed with the time and its name.

When this process runs in the terminal's foreground (`make run`), it takes the
terminal's foreground for a process group of its own for as long as it runs,
as a shell does for a job: Ctrl-C then reaches this process alone, not `make`
above it, which would otherwise end on the SIGINT itself (status 130, "make:
*** [Makefile: run] Interrupt") however cleanly the stack stopped. So `make`'s
exit status is this process's. Ctrl-Z does not suspend it (nobody could resume
it: the shell knows `make` only); Ctrl-C stops it. A SIGINT sent to `make` alone
(`kill -INT`) no longer reaches it then, and `make` waits for it: stop a
backgrounded or scripted run with SIGTERM to `make` (which passes it on) or to
this process.

The stack stops, in the reverse order of the Procfile (the broker, first, stops
last: every MQTT client closes while it is still there, and the receiver
outlives the bridge's last report), each process with SIGTERM and, after
`--grace` seconds, SIGKILL to its group, when:
- this process gets SIGINT (Ctrl-C), SIGTERM or SIGHUP; a second one kills
  what is left at once;
- its own output breaks (EPIPE: `make run | tee log` and Ctrl-C killed tee);
  output after that is dropped, the stop goes on;
- a child exits by itself (it crashed, or could not start).

Exit status: 0 when asked to stop and every child stopped on SIGTERM; 1 when a
child could not start, was not ready in time, ended on its own or had to be
killed; 2 for a bad Procfile or option.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class ProcfileError(ValueError):
    """A Procfile line that is not `name: command`."""


@dataclass(frozen=True, slots=True)
class Process:
    """One line of the Procfile: a name, its extra environment, its argv."""

    name: str
    env: Mapping[str, str]
    argv: tuple[str, ...]


def parse_procfile(text: str) -> list[Process]:
    """The processes of a Procfile, in order; ProcfileError naming the line."""
    processes: list[Process] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name = name.strip()
        if not sep or not _NAME.match(name):
            raise ProcfileError(f"line {number}: expected `name: command`, got {raw!r}")
        if any(p.name == name for p in processes):
            raise ProcfileError(f"line {number}: {name!r} is defined twice")
        try:
            words = shlex.split(command)
        except ValueError as exc:
            raise ProcfileError(f"line {number}: {exc}") from None
        env: dict[str, str] = {}
        while words and _ASSIGNMENT.match(words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        if not words:
            raise ProcfileError(f"line {number}: {name!r} has no command")
        processes.append(Process(name, env, tuple(words)))
    return processes


class Output:
    """Our stdout, shared by the children's reader threads; tells when it breaks."""

    def __init__(self, stream: IO[str], on_broken: threading.Event, width: int) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._broken = on_broken
        self._width = width

    def fileno(self) -> int:
        return self._stream.fileno()

    def line(self, name: str, text: str) -> None:
        """Print `text` as `name`'s; once our output is broken, drop it."""
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            if self._broken.is_set():
                return
            try:
                self._stream.write(f"{stamp} {name:<{self._width}} | {text}\n")
                self._stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                # ValueError: the stream was closed under us. Either way nobody reads.
                self._broken.set()


Address = tuple[str, int]  # an IPv4 address and a TCP port


def parse_ready(text: str) -> tuple[str, Address]:
    """`NAME=HOST:PORT` (an IPv4 address) as (name, (host, port)); ValueError naming it."""
    name, sep, where = text.partition("=")
    host, _, port = where.rpartition(":")
    try:
        address = ipaddress.IPv4Address(host)
        number = int(port)
    except ValueError:
        number = 0
    if not sep or not _NAME.match(name) or not 0 < number < 65536:
        raise ValueError(f"expected NAME=IPV4:PORT, got {text!r}")
    return name, (str(address), number)


def listening(address: Address, table: Path = Path("/proc/net/tcp")) -> bool:
    """Whether a socket listens on `address` (or on every address, at its port): the
    kernel's table of this network's IPv4 sockets, read without connecting."""
    host, port = address
    wanted = {f"{int(ipaddress.IPv4Address(each)).to_bytes(4, 'little').hex().upper()}"
              f":{port:04X}" for each in (host, "0.0.0.0")}
    with table.open(encoding="ascii") as rows:
        next(rows, None)  # the header
        return any(len(fields := row.split()) > 3 and fields[3] == "0A"  # TCP_LISTEN
                   and fields[1] in wanted for row in rows)


class Stack:
    """The running children; `run()` returns the exit status once all are gone."""

    def __init__(self, processes: list[Process], grace: float, output: IO[str],
                 cwd: Path | None = None, ready: Mapping[str, Sequence[Address]] | None = None,
                 ready_timeout: float = 30.0) -> None:
        self.processes = processes
        self.grace = grace
        self.cwd = cwd
        self.ready = ready or {}
        self.ready_timeout = ready_timeout
        self.failed = False  # a child could not start or was not ready in time
        self.stop_requested = threading.Event()  # by a signal, or by our broken output
        self.output_broken = threading.Event()
        self._hurry = threading.Event()  # a second signal: kill what is left now
        self._changed = threading.Event()  # something to look at: a signal or a child's end
        self._signals = 0
        width = max((len(p.name) for p in processes), default=6)
        self.out = Output(output, self.output_broken, max(width, len("demo")))
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._readers: list[threading.Thread] = []

    # -- starting ----------------------------------------------------------------

    def start(self) -> None:
        env = dict(os.environ)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath), "/usr/sbin"])
        env["PYTHONUNBUFFERED"] = "1"
        for process in self.processes:
            if self.stop_requested.is_set():
                return
            try:
                child = subprocess.Popen(
                    process.argv, env={**env, **process.env}, cwd=self.cwd,
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: signals reach its children
                )
            except OSError as exc:
                self.say(f"cannot start {process.name} ({shlex.join(process.argv)}): "
                         f"{exc.strerror or exc}")
                self._fail()
                return
            self.children[process.name] = child
            self.say(f"started {process.name} (pid {child.pid})")
            reader = threading.Thread(target=self._read, args=(process.name, child),
                                      name=f"read-{process.name}", daemon=True)
            reader.start()
            self._readers.append(reader)
            if not self._await_ready(process.name, child):
                return

    def _await_ready(self, name: str, child: subprocess.Popen[bytes]) -> bool:
        """Wait until `name` listens on its --ready addresses; False: do not go on (a stop
        was asked for, the child ended, which `run` reports, or it was not ready in time)."""
        addresses = list(self.ready.get(name, ()))
        end = time.monotonic() + self.ready_timeout
        while addresses:
            if self.stop_requested.is_set() or child.poll() is not None:
                return False
            addresses = [each for each in addresses if not listening(each)]
            if addresses and time.monotonic() >= end:
                host, port = addresses[0]
                self.say(f"{name} not listening on {host}:{port} after "
                         f"{self.ready_timeout:g} s: stopping")
                self._fail()
                return False
            if addresses:
                self.stop_requested.wait(0.05)
        return True

    def _fail(self) -> None:
        self.failed = True
        self.stop_requested.set()

    def _read(self, name: str, child: subprocess.Popen[bytes]) -> None:
        if child.stdout is None:
            return
        # Keep reading after our output broke, so no child blocks on a full pipe.
        for raw in child.stdout:
            self.out.line(name, raw.decode("utf-8", "replace").rstrip("\r\n"))
            if self.output_broken.is_set():
                self._changed.set()
        child.stdout.close()
        self._changed.set()  # its output closed: it has probably ended

    def say(self, text: str) -> None:
        self.out.line("demo", text)

    # -- signals ---------------------------------------------------------------

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """SIGINT, SIGTERM, SIGHUP: stop; the second one: kill what is left."""
        self._signals += 1
        if self._signals > 1:
            self._hurry.set()
        self.stop_requested.set()
        self._changed.set()

    # -- running and stopping ---------------------------------------------------

    def run(self) -> int:
        """Start, wait for a reason to stop, stop everything; the exit status."""
        self.start()
        crashed = None
        while crashed is None and not self.stop_requested.is_set():
            self._changed.wait(0.5)
            self._changed.clear()
            if self.output_broken.is_set() or self._reader_gone():
                self.output_broken.set()
                self.stop_requested.set()
            crashed = next((name for name, child in self.children.items()
                            if child.poll() is not None), None)
        if crashed is not None:
            code = self.children[crashed].returncode
            self.say(f"{crashed} exited with code {code}: stopping the others")
        else:
            self.say("stopping (a second Ctrl-C kills what is left)")
        clean = self.stop_all()
        for reader in self._readers:
            reader.join(timeout=2.0)
        if crashed is None and clean and not self.failed:
            self.say("all stopped")
            return 0
        return 1

    def _reader_gone(self) -> bool:
        """Whether our stdout is a pipe whose reader has closed it (poll says POLLERR).

        Noticed here, not only at the next write: a quiet stack writes nothing for
        minutes, and its ports would stay held all that time.
        """
        try:
            fd = self.out.fileno()
        except (OSError, ValueError):
            return False
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR and POLLHUP are always reported
        return any(events & select.POLLERR for _, events in poller.poll(0))

    def stop_all(self) -> bool:
        """Stop the children in reverse order; True when each ended on SIGTERM alone."""
        clean = True
        for process in reversed(self.processes):
            child = self.children.get(process.name)
            if child is None:
                continue
            if child.poll() is None:
                clean = self._stop(process.name, child) and clean
                self.say(f"{process.name} stopped")
            self._kill_group(child)  # whatever it started and left behind
        return clean

    def _stop(self, name: str, child: subprocess.Popen[bytes]) -> bool:
        if not self._hurry.is_set():
            _signal_group(child, signal.SIGTERM)
            end = time.monotonic() + self.grace
            while child.poll() is None and not self._hurry.is_set():
                left = end - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=min(left, 0.1))
            if child.poll() is not None:
                return True
        self.say(f"{name} did not stop: killing it")
        self._kill_group(child)
        child.wait()
        return False

    @staticmethod
    def _kill_group(child: subprocess.Popen[bytes]) -> None:
        _signal_group(child, signal.SIGKILL)


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(child.pid, signum)


@contextlib.contextmanager
def own_foreground() -> Iterator[None]:
    """While in the terminal's foreground, run in a foreground process group of our own.

    Ctrl-C then signals this process alone, not `make` (or whatever started it)
    too; the previous group gets the terminal back at the end. Without a
    controlling terminal, or in the background, nothing changes."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        yield  # no controlling terminal
        return
    try:
        before = os.getpgrp()
        try:
            taken = os.tcgetpgrp(tty) == before
            if taken:
                os.setpgid(0, 0)  # EPERM for a session leader: it has the terminal anyway
                _set_foreground(tty, os.getpgrp())
        except OSError:
            taken = False
        if taken:
            signal.signal(signal.SIGTSTP, signal.SIG_IGN)  # see the module's docstring
        try:
            yield
        finally:
            if taken:
                with contextlib.suppress(OSError):  # its group may be gone
                    _set_foreground(tty, before)
    finally:
        os.close(tty)


def _set_foreground(tty: int, group: int) -> None:
    """tcsetpgrp from a background group: SIGTTOU, which would stop us, ignored for it."""
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(tty, group)
    finally:
        signal.signal(signal.SIGTTOU, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.run",
        description="Run the demo stack of a Procfile; stop all of it on Ctrl-C, "
                    "SIGTERM, SIGHUP or a broken output.",
    )
    parser.add_argument("--procfile", type=Path, default=Path("Procfile"), metavar="PATH")
    parser.add_argument("--grace", type=float, default=5.0, metavar="S",
                        help="seconds each process has to stop before SIGKILL (default 5)")
    parser.add_argument("--ready", action="append", default=[], metavar="NAME=HOST:PORT",
                        help="start the processes after NAME once it listens on HOST:PORT "
                             "(IPv4; repeatable)")
    parser.add_argument("--ready-timeout", type=float, default=30.0, metavar="S",
                        help="seconds a --ready process has to listen (default 30)")
    args = parser.parse_args(argv)
    ready: dict[str, list[Address]] = {}
    for each in args.ready:
        try:
            name, address = parse_ready(each)
        except ValueError as exc:
            parser.error(f"--ready: {exc}")
        ready.setdefault(name, []).append(address)
    try:
        processes = parse_procfile(args.procfile.read_text(encoding="utf-8"))
    except (OSError, ProcfileError) as exc:
        print(f"demo.run: {args.procfile}: {exc}", file=sys.stderr)
        return 2
    if not processes:
        print(f"demo.run: {args.procfile}: no processes", file=sys.stderr)
        return 2
    unknown = sorted(set(ready) - {p.name for p in processes})
    if unknown:
        print(f"demo.run: --ready names no process of {args.procfile}: {', '.join(unknown)}",
              file=sys.stderr)
        return 2
    stack = Stack(processes, args.grace, sys.stdout, ready=ready,
                  ready_timeout=args.ready_timeout)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stack.on_signal)
    with own_foreground():
        code = stack.run()
    if stack.output_broken.is_set():
        # Python's own flush at exit would fail on the broken pipe and say so.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return code


if __name__ == "__main__":
    sys.exit(main())
