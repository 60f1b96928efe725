"""A live flood of bad input (docs/reliability.md): thousands of malformed messages of every kind.

The bridge runs as a process with `[bridge] max_devices = 20`, already at its
cap with valid devices, and the Prometheus endpoint on. Every message of the
flood must be refused: the test counts them on `bridge/errors`, on the
metrics endpoint and in the log (damped), and checks that reports go on with
the valid state exactly as it was, in bounded memory.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from demo.broker import Broker, free_port
from receiver.server import ReceiverServer
from tests.conftest import collect, mqtt_client, wait_until
from tests.integration.reliability_kit import bridge_config, rss
from tests.integration.stack import (
    BASE,
    device,
    publish,
    publish_spec_example,
    running_bridge,
    statuses,
    wait_report,
)

CAP = 20
VALID = ["192.168.1.101", *(f"10.1.0.{n}" for n in range(1, CAP))]
HUGE = 18_000  # under the broker's max_packet_size (16 KiB + 4 KiB), over the bridge's 16 KiB



def js(value: object) -> bytes:
    return json.dumps(value).encode()


def flood() -> list[tuple[str, bytes, bool]]:
    """(topic suffix, payload, retained) for every bad message, each meant to be refused."""
    bad: list[tuple[str, bytes, bool]] = []

    def add(count: int, make: object) -> None:
        assert callable(make)
        bad.extend(make(n) for n in range(count))

    known = [f"devices/{ip}/state" for ip in VALID]
    add(300, lambda n: (known[n % CAP], b"{broken" + str(n).encode(), False))  # not JSON
    add(300, lambda n: (known[n % CAP], [b"[1, 2]", b'"online"', b"null"][n % 3], False))
    add(300, lambda n: (known[n % CAP], js(device(ep_type=n % 5)), False))  # wrong type
    add(100, lambda n: ("gateway/metrics", js({"cpu_usage": str(n)}), False))
    add(300, lambda n: (known[n % CAP], js(device(["up", "down", "ONLINE"][n % 3])), False))
    add(100, lambda n: (known[n % CAP], js(device(ep_type=str(5 + n % 5))), False))
    add(100, lambda n: ("gateway/metrics", js({"memory_usage": 1.5 + n}), False))
    add(100, lambda n: ("gateway/metrics", js({"temperature": 1000 + n}), False))
    add(200, lambda n: (f"devices/999.1.{n % 250}.1/state", js(device()), False))  # bad IP
    add(100, lambda n: (known[n % CAP], js(device(ep_ip=f"1.2.{n}")), False))
    add(100, lambda n: ("gateway/info", js({"gateway_ip": f"1.2.3.{400 + n}", "gateway_name": "x",
                                            "dev_sno": "x", "sw_version": "x"}), False))
    add(20, lambda n: (known[n % CAP], b'{"pad":"' + b"x" * HUGE + b'"}', False))  # huge
    odd = ["gateway/info/extra", "gateway/other", "devices/10.1.0.1/state/x", "devices/10.1.0.1",
           "devices//state", "collectors/x/y/z", "collectors//status", "devices/a b/state"]
    add(320, lambda n: (odd[n % len(odd)] + ("" if n < len(odd) else f"/{n}"), b"{}", False))
    add(100, lambda n: ("apps/app/status", [b"maybe", b"", b"1"][n % 3] or b"?", False))
    # Thousands of distinct, well-formed devices beyond the cap: each refused, none kept.
    add(2000, lambda n: (f"devices/10.2.{n // 250}.{n % 250 + 1}/state", js(device()), True))
    return bad


def collector_may_write(suffix: str) -> bool:
    """Whether the ACL lets the collector user (or the app, for its status) write this topic
    (below se3/{sn}/)."""
    parts = suffix.split("/")
    return (suffix in ("gateway/info", "gateway/metrics", "gateway/hardware", "apps/app/status")
            or (len(parts) == 3 and parts[0] == "devices" and parts[2] == "state"))


def send(broker: Broker, messages: list[tuple[str, bytes, bool]]) -> None:
    """Publish as the collector role (the app's status as the app), QoS 1, all acknowledged."""
    with mqtt_client(broker, "collector") as client, mqtt_client(broker, "app") as app:
        infos = [(app if suffix.startswith("apps/") else client).publish(
                     f"{BASE}/{suffix}", payload, qos=1, retain=retain)
                 for suffix, payload, retain in messages]
        for info in infos:
            info.wait_for_publish(30)
        assert all(info.is_published() for info in infos)


def rejected_total(port: int) -> tuple[float, float]:
    """(records rejected, records accepted) from the bridge's Prometheus endpoint."""
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    answer.raise_for_status()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals.get("se3_records_rejected_total", 0.0), totals["se3_records_accepted_total"]


class TestFlood:
    def test_thousands_of_bad_messages_are_refused_counted_and_damped(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """Every bad message is refused and counted; reports go on with the valid state intact."""
        metrics = free_port()
        config = bridge_config(
            # A period well within the flood's second or so: reports must go on during it.
            tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus", interval=0.2,
            bridge={"max_devices": CAP, "metrics_listen": f"127.0.0.1:{metrics}"})
        publish_spec_example(broker)
        publish(broker, "collector", {f"devices/{ip}/state": device() for ip in VALID[1:]})
        # The broker's ACL drops the shapes the collector may not write (gateway/other,
        # devices/x): the bridge never sees those.
        bad = [message for message in flood() if collector_may_write(message[0])]
        assert len({suffix for suffix, _, _ in bad if suffix.startswith("devices/10.2.")}) == 2000

        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge, \
                collect(broker, f"{BASE}/bridge/errors", qos=0) as errors:
            assert bridge.proc is not None
            before = wait_report(platform, lambda r: len(statuses(r)) == CAP)
            wait_until(lambda: rejected_total(metrics)[1] >= CAP + 2, what="the valid state")
            _, accepted = rejected_total(metrics)
            memory = rss(bridge.proc.pid)
            started = time.time()
            send(broker, bad)
            errors.wait_for(lambda msgs: len(msgs) >= len(bad), timeout=60)
            # One more, known last: once its event is in, no other can still come.
            send(broker, [("devices/10.9.9.9/state", b"marker", False)])
            seen = errors.wait_for(lambda msgs: b"devices/10.9.9.9" in msgs[-1].payload)
            finished = time.time()
            after = wait_report(platform, lambda r: True, after=finished)
            grown = rss(bridge.proc.pid) - memory
            rejected, accepted_after = rejected_total(metrics)
            log = bridge.log_text()

        assert len(seen) == len(bad) + 1
        assert rejected == len(bad) + 1
        assert accepted_after == accepted  # nothing of the flood was taken in
        codes = Counter(json.loads(m.payload)["code"] for m in seen)
        assert codes["limit"] == 2000
        assert codes["size"] == 20
        assert {"json", "topic", "ep_type", "ep_status", "cpu_usage", "memory_usage",
                "temperature", "ep_ip", "gateway_ip", "status"} <= set(codes)
        # The valid state is exactly as before, and reports kept coming during the flood.
        assert after.payload == before.payload
        during = platform.state.store.reports(started)
        assert any(r.received_at < finished for r in during)
        # Damped: a few lines per kind of rejection, not one per message.
        lines = [line for line in log.splitlines() if " rejected " in line]
        assert len(lines) <= 5 * len(codes) < len(bad) // 40
        assert grown < 8 * 1024 * 1024, grown
