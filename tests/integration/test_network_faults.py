"""Faults of a real network between the bridge and the platform, or a camera and its collector.

The other reliability tests stop at "connection refused" on loopback. Here
packets are delayed (a delaying proxy: this kernel has no netem), dropped
(an iptables DROP rule on an address of 127.0.0.0/8 that only this test uses)
or lost behind a link that went down (a network namespace with a veth pair).
Everything is made by the test and removed afterwards, failure or not. They
need root; where iptables or `ip netns` is missing or not permitted, the test
is skipped and says why. About 25 s in all, so they run in `make test`;
`make test-deploy` runs them again after installing iptables, which a fresh
machine's `make test` may not have.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from demo.broker import Broker, free_port
from receiver.app import create_app
from receiver.server import ReceiverServer
from receiver.store import Report
from tests.conftest import Collected, collect, mqtt_client, publish_and_wait, wait_until
from tests.integration.netfaults import DelayProxy, Namespace, blackhole, require_root_tool
from tests.integration.reliability_kit import events, failures
from tests.integration.stack import (
    BASE,
    device,
    publish_spec_example,
    running_bridge,
    statuses,
    wait_report,
    write_config,
)

# Links made here make Chromium drop requests: never beside the browser tests.
pytestmark = pytest.mark.xdist_group("host-network")

DOOR = "10.0.5.1"
# The blackholed platform's address: in 127.0.0.0/8, used by no other test.
DARK_IP = "127.0.14.50"
# The camera's namespace and its veth pair: a /30 of 10.215.0.0/16 picked by our pid,
# so runs in other checkouts at the same time do not collide.
_BLOCK = os.getpid() % 16384
CAM_HOST_IP = f"10.215.{_BLOCK >> 6}.{(_BLOCK & 63) * 4 + 1}"
CAM_IP = f"10.215.{_BLOCK >> 6}.{(_BLOCK & 63) * 4 + 2}"
CAM_PORT = 8554
LISTEN = (
    "import socket, sys\n"
    "server = socket.create_server((sys.argv[1], int(sys.argv[2])))\n"
    "while True:\n"
    "    server.accept()[0].close()\n"
)


def names(report: Report) -> dict[str, str]:
    payload = report.payload
    assert isinstance(payload, dict)
    return {d["ep_ip"]: d["ep_name"] for d in payload["sub_devices"]}


def seq_of(report: Report) -> tuple[str, int]:
    """(boot, seq) of an X-Report-Id `{sn}-{boot}-{seq}`."""
    assert report.report_id is not None
    _sn, boot, seq = report.report_id.rsplit("-", 2)
    return boot, int(seq)


def wait_failures(seen: Collected, count: int, timeout: float) -> list[dict[str, Any]]:
    seen.wait_for(lambda _msgs: len(failures(seen)) >= count, timeout)
    return failures(seen)


class TestDelayedLink:
    def test_every_change_arrives_in_order_through_a_slow_stalling_link(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """300 ms each way, 0.8 s stalls now and then: all changes arrive, latest wins, in order."""
        with DelayProxy((platform.host, platform.port), delay=0.3, stall=0.8,
                        stall_every=4) as proxy:
            config = write_config(tmp_path / "b.toml", broker,
                                  f"http://127.0.0.1:{proxy.port}/DeviceStatus", timeout=4)
            publish_spec_example(broker)
            with collect(broker, f"{BASE}/bridge/report") as seen, \
                    running_bridge(config, broker, tmp_path / "bridge.log"), \
                    mqtt_client(broker, "app") as app:
                wait_report(platform, lambda r: True, timeout=10)
                latest: dict[str, str] = {}
                for i in range(8):
                    # Each change comes while the report before it is on the wire.
                    sent = proxy.sent
                    ip = f"10.0.6.{i % 4 + 1}"
                    latest[ip] = f"v{i}"
                    publish_and_wait(app, f"{BASE}/apps/app/devices/{ip}/state",
                                     json.dumps(device(ep_name=f"v{i}")), retain=True)
                    proxy.wait_sent(sent)
                final = wait_report(platform, lambda r: latest.items() <= names(r).items(),
                                    timeout=15)
                seen.wait_for(lambda _m: any(e["report_id"] == final.report_id and e["ok"]
                                             for e in events(seen)))
        received = [seq_of(r) for r in platform.state.store.reports()]
        assert proxy.stalled >= 2
        assert len({boot for boot, _ in received}) == 1
        seqs = [seq for _, seq in received]
        assert seqs == sorted(seqs), seqs
        assert len(seqs) == len(set(seqs)), seqs  # nothing sent twice: no attempt timed out
        assert failures(seen) == []
        assert platform.state.store.reports()[-1].report_id == final.report_id


class TestBlackhole:
    def test_dropped_packets_bound_by_timeout_one_at_a_time_then_recovery_in_one_step(
        self, tmp_path: Path, broker: Broker
    ) -> None:
        """A platform behind a DROP rule: timeouts, one attempt at a time, backoff, recovery."""
        require_root_tool("iptables", "-w", "5", "-S", "INPUT")
        timeout, retry_min, cap = 1.0, 0.2, 1.0
        port = free_port(DARK_IP)
        platform = ReceiverServer(create_app(), host=DARK_IP, port=port).start()
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus",
                              timeout=timeout, retry_min=retry_min, retry_max=cap)
        publish_spec_example(broker)
        try:
            with collect(broker, f"{BASE}/bridge/report") as seen, \
                    running_bridge(config, broker, tmp_path / "bridge.log"), \
                    mqtt_client(broker, "app") as app:
                wait_report(platform, lambda r: True, timeout=10)
                with blackhole(DARK_IP, port):
                    publish_and_wait(app, f"{BASE}/apps/app/devices/{DOOR}/state",
                                     json.dumps(device(ep_name="during")), retain=True)
                    wait_failures(seen, 3, timeout=15)
                    publish_and_wait(app, f"{BASE}/apps/app/devices/{DOOR}/state",
                                     json.dumps(device(ep_name="latest")), retain=True)
                    failed = wait_failures(seen, 5, timeout=15)
                    restored = time.time()
                first = wait_report(platform, lambda r: r.received_at > restored,
                                    timeout=timeout + cap + 3)
        finally:
            platform.stop()
        assert all(e["error"] == f"timed out after {timeout:g} s" for e in failed), failed
        for k, event in enumerate(failed, start=1):
            base = min(cap, retry_min * 2 ** (k - 1))
            assert base / 2 - 0.001 <= event["retry_in"] <= base + 0.001, (k, event)
        for before, after in itertools.pairwise(failed):
            # The next attempt starts after the backoff and waits out its whole timeout:
            # never two at once, never longer than the timeout.
            gap = after["ts"] - before["ts"]
            assert before["retry_in"] + timeout - 0.05 <= gap <= before["retry_in"] + timeout + 1
        # One backoff step: an attempt under way when the link returned ends by its timeout,
        # the next one comes at most retry_max later.
        assert first.received_at - restored <= timeout + cap + 1.0
        assert names(first)[DOOR] == "latest"


class TestCameraLink:
    def test_camera_behind_a_dead_link_goes_offline_within_its_ttl_and_comes_back(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """A camera in its own namespace: its link down -> offline within ttl; up -> online."""
        require_root_tool("ip", "netns", "list")
        interval, probe_timeout, factor = 1.0, 0.5, 3.0
        ttl = factor * interval + probe_timeout
        config = write_config(tmp_path / "se3.toml", broker, f"{platform.url}/DeviceStatus")
        with config.open("a", encoding="utf-8") as fh:
            fh.write(f"\n[collectors]\nprobe_interval = {interval}\n"
                     f"probe_timeout = {probe_timeout}\nttl_factor = {factor}\n"
                     f'\n[[devices]]\nip = "{CAM_IP}"\nlocation = "loc-cam"\ntype = "2"\n'
                     f'probe = "tcp:{CAM_PORT}"\n')
        publish_spec_example(broker)
        with Namespace(f"se3t{os.getpid()}", CAM_HOST_IP, CAM_IP) as ns:
            camera = ns.popen(sys.executable, "-c", LISTEN, CAM_IP, str(CAM_PORT))
            log = (tmp_path / "devices.log").open("wb")
            collector = subprocess.Popen(
                [sys.executable, "-m", "collectors", "--config", str(config), "devices"],
                env={**os.environ, **broker.env("collector-devices")}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: _accepts(CAM_IP, CAM_PORT), timeout=10, what="the camera")
                with running_bridge(config, broker, tmp_path / "bridge.log"):
                    wait_report(platform, lambda r: statuses(r).get(CAM_IP) == "online",
                                timeout=10)
                    down = time.time()
                    ns.link(False)
                    dark = wait_report(platform, lambda r: statuses(r).get(CAM_IP) == "offline",
                                       timeout=ttl + 3, after=down)
                    up = time.time()
                    ns.link(True)
                    back = wait_report(platform, lambda r: statuses(r).get(CAM_IP) == "online",
                                       timeout=ttl + 3, after=up)
            finally:
                for proc in (collector, camera):
                    proc.kill()
                    proc.wait()
                log.close()
        assert dark.received_at - down <= ttl
        assert back.received_at - up <= interval + probe_timeout + 1.5


def _accepts(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False
