"""A real network's faults for the integration tests: delay, blackholes, links that go down.

- `DelayProxy`: a TCP proxy on 127.0.0.1 that holds every chunk for a fixed
  delay in each direction (a delay line: chunks keep their order and their
  spacing), and now and then stalls a connection for longer (this kernel has
  no netem qdisc, so the delay is made here);
- `blackhole(ip, port)`: an iptables rule that drops packets to `ip:port`
  (a connect hangs, as behind a dead link), removed on exit even on failure;
- `Namespace`: a network namespace with one veth pair, the test's own
  addresses on both ends; `link(False)` takes its end down like a pulled cable.

Each needs root; `require_root_tool()` skips a test, with the reason, where
the tool is missing or not permitted. Only addresses these helpers make (or
127.0.0.0/8) are ever used.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

_CHUNK = 65536


def require_root_tool(tool: str, *probe: str) -> None:
    """Skip the test unless we are root, `tool` exists and `tool *probe` works."""
    if os.geteuid() != 0:
        pytest.skip(f"network-fault test: needs root for {tool}")
    if shutil.which(tool) is None:
        pytest.skip(f"network-fault test: {tool} not installed (make test-deploy installs it)")
    if probe:
        done = subprocess.run([tool, *probe], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"network-fault test: `{tool} {' '.join(probe)}` not permitted: "
                        f"{done.stderr.strip()}")


class DelayProxy:
    """127.0.0.1:port -> `upstream`, each chunk delivered `delay` s after it arrived.

    Every `stall_every`-th chunk towards `upstream` is held `stall` s longer
    (and the chunks behind it on that connection with it). `sent` counts the
    chunks read from clients so far; `wait_sent(n)` waits for more than n.
    """

    def __init__(self, upstream: tuple[str, int], delay: float = 0.3, stall: float = 0.0,
                 stall_every: int = 0) -> None:
        self.upstream = upstream
        self.delay = delay
        self.stall = stall
        self.stall_every = stall_every
        self.sent = 0
        self.stalled = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._accept, name="delay-proxy", daemon=True)

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._closing.set()
        self._listener.close()
        with self._cond:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
        self._thread.join(5)

    def wait_sent(self, count: int, timeout: float = 10.0) -> int:
        """Wait until more than `count` chunks came from clients; the number now."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.sent > count, timeout):
                raise AssertionError(f"no request through the proxy in {timeout} s")
            return self.sent

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._cond:
                self._sockets += [client, server]
            self._pipe(client, server, upstream=True)
            self._pipe(server, client, upstream=False)

    def _extra(self, upstream: bool) -> float:
        """The stall this chunk gets (0 mostly); counts the client's chunks."""
        if not upstream:
            return 0.0
        with self._cond:
            self.sent += 1
            self._cond.notify_all()
            if self.stall_every and self.sent % self.stall_every == 0:
                self.stalled += 1
                return self.stall
        return 0.0

    def _pipe(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        """Two threads: one reads and stamps chunks, one writes each at its due time."""
        line: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

        def read() -> None:
            while True:
                try:
                    data = source.recv(_CHUNK)
                except OSError:
                    data = b""
                extra = self._extra(upstream) if data else 0.0
                line.put((time.monotonic() + self.delay + extra, data))
                if not data:
                    return

        def write() -> None:
            ready = 0.0
            while True:
                due, data = line.get()
                # In order: a stalled chunk holds back the ones behind it.
                ready = max(ready, due)
                # Waiting for a chunk's due time is the delay line itself.
                self._closing.wait(max(0.0, ready - time.monotonic()))
                try:
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)
                except OSError:
                    return

        for target in (read, write):
            threading.Thread(target=target, daemon=True).start()


_rule_ids = itertools.count()


@contextmanager
def blackhole(ip: str, port: int) -> Iterator[None]:
    """Drop every packet to `ip`:`port` (TCP) while inside; the rule goes at exit, always."""
    tag = f"se3-test-{os.getpid()}-{next(_rule_ids)}"
    rule = ["INPUT", "-d", ip, "-p", "tcp", "--dport", str(port),
            "-m", "comment", "--comment", tag, "-j", "DROP"]
    subprocess.run(["iptables", "-w", "5", "-I", *rule], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-w", "5", "-D", *rule], check=True, capture_output=True)


def _sweep(prefix: str) -> None:
    """Delete namespaces PREFIX<pid> left by test processes that are gone (killed runs)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        name = line.split(" ", 1)[0]
        pid = name.removeprefix(prefix)
        if name.startswith(prefix) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


class Namespace:
    """Network namespace `name` joined to the host by a veth pair host_ip <-> ns_ip (/30)."""

    def __init__(self, name: str, host_ip: str, ns_ip: str) -> None:
        self.name = name
        self.host_ip = host_ip
        self.ip = ns_ip
        self.host_if = f"{name[:11]}h"

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

    def __enter__(self) -> Namespace:
        self.close()
        _sweep(self.name.rstrip("0123456789"))
        try:
            self._ip("netns", "add", self.name)
            self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", "eth0",
                     "netns", self.name)
            self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            self._ip("link", "set", self.host_if, "up")
            self._ip("-n", self.name, "addr", "add", f"{self.ip}/30", "dev", "eth0")
            self._ip("-n", self.name, "link", "set", "eth0", "up")
            self._ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)

    def link(self, up: bool) -> None:
        """Its end of the pair up or down: down, packets to it vanish (a pulled cable)."""
        self._ip("-n", self.name, "link", "set", "eth0", "up" if up else "down")

    def popen(self, *command: str) -> subprocess.Popen[bytes]:
        """`command` running inside the namespace."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *command],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
