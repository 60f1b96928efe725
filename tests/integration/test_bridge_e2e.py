"""The spine end to end: records through a real mosquitto and the bridge to a real platform."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from demo.broker import Broker
from receiver.app import create_app
from receiver.faults import Fault
from receiver.server import ReceiverServer
from tests.conftest import collect
from tests.integration.stack import (
    BASE,
    SPEC_DEVICE,
    SPEC_PAYLOAD,
    device,
    faults,
    fresh,
    publish,
    publish_spec_example,
    running_bridge,
    statuses,
    wait_report,
    write_config,
)
from tests.unit.test_bridge_golden import EXPECTED_BYTES_V2


@pytest.fixture
def config(tmp_path: Path, broker: Broker, platform: ReceiverServer) -> Path:
    return write_config(tmp_path / "bridge.toml", broker, f"{platform.url}/DeviceStatus")


class TestGolden:
    def test_spec_example_arrives_exactly(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """The spec's own example records reach the platform as the spec's payload, in order."""
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            report = wait_report(platform, lambda r: True)
        assert report.payload == SPEC_PAYLOAD
        assert isinstance(report.payload, dict)
        assert list(report.payload) == list(SPEC_PAYLOAD)
        assert list(report.payload["sub_devices"][0]) == list(SPEC_PAYLOAD["sub_devices"][0])
        assert report.violations == ()
        assert report.report_id is not None
        assert report.report_id.startswith("SZCCKQRAIJBAH0002-")


class TestFormatV2:
    def test_v2_reports_pass_the_v2_check(self, tmp_path: Path, broker: Broker) -> None:
        """platform.format = "v2": the spec's records plus ep_ext_data arrive as v2, clean.

        The platform checks v2 strictly (422 for anything else), so a report that
        arrives at all conforms; it also matches v2 only.
        """
        platform = ReceiverServer(create_app(strict=True, fmt="v2")).start()
        try:
            config = write_config(tmp_path / "bridge.toml", broker,
                                  f"{platform.url}/DeviceStatus", format="v2")
            publish_spec_example(broker)
            publish(broker, "app", {"apps/app/devices/10.0.0.9/state": device(
                ep_ext_data={"sw_version": "V1.0.3", "group_name": "访客"})})
            with running_bridge(config, broker, tmp_path / "bridge.log"):
                report = wait_report(platform, lambda r: len(statuses(r)) == 2)
        finally:
            platform.stop()
        assert (report.violations, report.rejected, report.formats) == ((), False, ("v2",))
        assert isinstance(report.payload, dict)
        assert [d["ep_ext_data"] for d in report.payload["sub_devices"]] == [
            {"sw_version": "V1.0.3", "group_name": "访客"}, {}]
        assert all("ep_url" not in d for d in report.payload["sub_devices"])

    def test_v2_body_is_the_golden_body_byte_for_byte(
        self, tmp_path: Path, broker: Broker
    ) -> None:
        """The golden v2 state, published over MQTT, is POSTed as the golden v2 bytes."""
        platform = ReceiverServer(create_app(strict=True, fmt="v2")).start()
        bodies = tapped_bodies(platform)
        try:
            config = write_config(tmp_path / "bridge.toml", broker,
                                  f"{platform.url}/DeviceStatus", format="v2")
            publish_spec_example(broker)
            publish(broker, "collector", {
                "devices/192.168.1.102/state": device(
                    "offline", ep_name="门口", ep_type="1"),
                "devices/192.168.1.101/state": {**SPEC_DEVICE, "ep_ext_data": {
                    "sw_version": "V2R1C01", "group_name": "默认分组"}},
            })
            with running_bridge(config, broker, tmp_path / "bridge.log"):
                report = wait_report(platform, lambda r: len(statuses(r)) == 2
                                     and "sw_version" in str(r.payload))
        finally:
            platform.stop()
        assert (report.violations, report.formats) == ((), ("v2",))
        assert EXPECTED_BYTES_V2 in bodies


def tapped_bodies(platform: ReceiverServer) -> list[bytes]:
    """The raw body of every POST the platform receives, as it came."""
    bodies: list[bytes] = []
    inner = platform.app.wsgi_app

    def tap(environ: Any, start_response: Any) -> Any:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        bodies.append(body)
        environ["wsgi.input"] = io.BytesIO(body)
        return inner(environ, start_response)

    platform.app.wsgi_app = tap  # type: ignore[method-assign]
    return bodies


class TestChanges:
    def test_change_reaches_platform_within_min_interval(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """A device going offline reaches the platform within min_interval + 1 s."""
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: statuses(r) == {"192.168.1.101": "online"})
            start = time.time()
            publish(broker, "collector", {"devices/192.168.1.101/state": device("offline")})
            report = wait_report(platform, lambda r: statuses(r) == {"192.168.1.101": "offline"},
                                 timeout=5)
            assert report.received_at - start < 0.2 + 1.0

    def test_app_record_by_hand_with_mosquitto_pub(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """A record published with mosquitto_pub as the app role reaches the platform in 2 s."""
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: True)
            start = time.time()
            subprocess.run(
                ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-u", "app",
                 "-P", broker.password("app"), "-q", "1", "-r",
                 "-t", f"{BASE}/apps/app/devices/127.0.0.50/state",
                 "-m", json.dumps(device(ep_name="door-app"))],
                check=True, timeout=10,
            )
            report = wait_report(platform, lambda r: "127.0.0.50" in statuses(r), timeout=5)
            assert report.received_at - start < 2.0

    def test_add_and_remove(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """A new device appears in the next report; an empty retained payload removes it."""
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: True)
            publish(broker, "app", {"apps/app/devices/10.0.0.10/state": device(),
                                    "apps/app/devices/10.0.0.9/state": device("offline")})
            report = wait_report(platform, lambda r: len(statuses(r)) == 3)
            assert isinstance(report.payload, dict)
            assert [d["ep_ip"] for d in report.payload["sub_devices"]] == [
                "10.0.0.9", "10.0.0.10", "192.168.1.101"]
            publish(broker, "app", {"apps/app/devices/10.0.0.10/state": b""})
            wait_report(platform, lambda r: set(statuses(r)) == {"10.0.0.9", "192.168.1.101"})

    def test_periodic_reports(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """With nothing changing, a report still goes out every `interval` seconds."""
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus",
                              interval=0.5)
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            first = wait_report(platform, lambda r: True)
            wait_report(platform, lambda r: r.received_at > first.received_at + 1.2, timeout=5)
        times = [r.received_at for r in platform.state.store.reports()]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(gaps) >= 2
        assert all(0.35 < gap < 1.5 for gap in gaps), gaps


class TestFreshness:
    def test_ttl_expiry_turns_device_offline(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """A device record not refreshed within its ttl is reported offline."""
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: True)
            # Published once the bridge runs, so a slow start cannot use up the ttl.
            publish(broker, "app",
                    {"apps/app/devices/10.0.0.7/state": device("online", **fresh(1.0))})
            wait_report(platform, lambda r: statuses(r).get("10.0.0.7") == "online")
            wait_report(platform, lambda r: statuses(r).get("10.0.0.7") == "offline", timeout=5)

    def test_replayed_stale_record_is_not_fresh(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """A retained record whose ts + ttl has passed is offline in the very first report."""
        publish_spec_example(broker)
        stale: dict[str, object] = {"ts": time.time() - 120, "ttl": 60}
        publish(broker, "app", {"apps/app/devices/10.0.0.8/state": device("online", **stale)})
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            first = wait_report(platform, lambda r: True)
        assert statuses(first)["10.0.0.8"] == "offline"

    def test_collector_last_will_takes_its_devices_offline(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """`collectors/{source}/status` offline turns that source's devices offline at once."""
        publish_spec_example(broker)
        publish(broker, "collector-devices", {"collectors/devices/status": b"online"})
        publish(broker, "collector", {
            "devices/10.0.1.1/state": device(source="devices"),
            "devices/10.0.1.2/state": device(source="other"),
        })
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: statuses(r).get("10.0.1.1") == "online")
            publish(broker, "collector-devices", {"collectors/devices/status": b"offline"})
            report = wait_report(platform, lambda r: statuses(r).get("10.0.1.1") == "offline")
            assert statuses(report)["10.0.1.2"] == "online"


class TestRestarts:
    def test_kill_9_and_restart_gives_the_same_report(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """The bridge killed with -9 and restarted sends a report with the same content."""
        publish_spec_example(broker)
        publish(broker, "app", {"apps/app/devices/10.0.0.3/state": device(ep_name="门禁-东")})
        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            before = wait_report(platform, lambda r: len(statuses(r)) == 2)
            bridge.kill()
        killed_at = time.time()
        with running_bridge(config, broker, tmp_path / "bridge2.log"):
            after = wait_report(platform, lambda r: True, after=killed_at)
        assert after.payload == before.payload
        assert after.report_id != before.report_id

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    def test_clean_stop_sends_final_offline_report(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path,
        signum: int,
    ) -> None:
        """SIGTERM or SIGINT: one last report with gateway_status offline, then exit 0."""
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            wait_report(platform, lambda r: True)
            assert bridge.terminate(signum=signum) == 0
        last = platform.state.store.reports()[-1]
        assert isinstance(last.payload, dict)
        assert last.payload["gateway_status"] == "offline"
        with collect(broker, f"{BASE}/bridge/status") as seen:
            assert seen.wait_for_topic(f"{BASE}/bridge/status").payload == b"offline"


class TestSnapshot:
    def test_snapshot_prints_the_report_alone_and_sends_nothing(
        self, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """`se3-bridge snapshot --config PATH`: the payload as pretty JSON alone on stdout,
        logs on stderr, exit 0, and no POST reaches the platform."""
        publish_spec_example(broker)

        done = subprocess.run(
            [sys.executable, "-m", "bridge", "snapshot", "--config", str(config)],
            env={**os.environ, **broker.env("monitor")}, capture_output=True, text=True,
            timeout=30, check=False,
        )

        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == SPEC_PAYLOAD
        assert done.stdout.startswith("{\n  ")  # pretty, for a person
        assert "connected to broker" in done.stderr
        assert "reporting to" not in done.stderr  # it reports to no one
        assert platform.state.store.reports() == []

    def test_snapshot_without_a_broker_exits_1(self, tmp_path: Path, broker: Broker) -> None:
        """No broker: exit 1 at once (not after --timeout), saying the connection was refused."""
        config = write_config(tmp_path / "b.toml", broker, "http://127.0.0.1:9/DeviceStatus")
        broker.stop()

        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "--config", str(config), "snapshot",
             "--timeout", "30"],
            env={**os.environ, **broker.env("monitor")}, capture_output=True, text=True,
            timeout=30, check=False,
        )

        assert done.returncode == 1
        assert done.stdout == ""
        assert (f"the MQTT broker at 127.0.0.1:{broker.port} refused the connection: "
                "nothing listens there") in done.stderr
        assert time.monotonic() - start < 10.0


class TestOutage:
    def test_platform_outage_then_recovery_delivers_latest(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """While the platform answers 503, changes pile up as one latest state, delivered after."""
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"), \
                collect(broker, f"{BASE}/bridge/report") as events:
            wait_report(platform, lambda r: True)
            faults(platform).set(Fault(status=503))
            for n in range(5):
                publish(broker, "app", {"apps/app/devices/10.0.2.1/state": device(ep_name=f"v{n}")})
            events.wait_for(lambda ms: any(json.loads(m.payload)["attempt"] >= 2 for m in ms))
            faults(platform).clear()
            report = wait_report(platform, lambda r: "10.0.2.1" in statuses(r), timeout=5)
        assert isinstance(report.payload, dict)
        names = {d["ep_ip"]: d["ep_name"] for d in report.payload["sub_devices"]}
        assert names["10.0.2.1"] == "v4"
        failed = [json.loads(m.payload) for m in events.messages if not json.loads(m.payload)["ok"]]
        assert all(e["status"] == 503 for e in failed)
        # a retry keeps its report id (attempts 1, 2, ... under one id) until a newer state
        attempts: dict[str, list[int]] = {}
        for event in failed:
            attempts.setdefault(event["report_id"], []).append(event["attempt"])
        assert any(len(seq) >= 2 for seq in attempts.values())
        assert all(seq == list(range(1, len(seq) + 1)) for seq in attempts.values()), attempts


class TestBadInput:
    BAD: dict[str, bytes] = {  # noqa: RUF012 - a table of cases, never mutated
        "devices/10.0.3.1/state": b"not json",
        "devices/10.0.3.2/state": b"[1, 2]",
        "devices/10.0.3.3/state": json.dumps(device(ep_type=2)).encode(),
        "devices/10.0.3.4/state": json.dumps(device("up")).encode(),
        "devices/10.0.3.5/state": json.dumps(device(ep_type="9")).encode(),
        "gateway/metrics": json.dumps({"memory_usage": 1.5}).encode(),
        "devices/999.1.1.1/state": json.dumps(device()).encode(),
        "devices/10.0.3.6/state": json.dumps({"ep_status": "online"}).encode(),
        "devices/10.0.3.7/state": json.dumps(device(ep_name="x" * 20000)).encode(),
        "devices/10.0.03.8/state": json.dumps(device()).encode(),  # not canonical
    }

    def test_every_bad_input_is_rejected_and_valid_state_kept(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, config: Path
    ) -> None:
        """Each kind of bad input (docs/reliability.md) is refused visibly; valid state stays."""
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge, \
                collect(broker, f"{BASE}/bridge/errors") as errors:
            wait_report(platform, lambda r: True)
            publish(broker, "collector", dict(self.BAD))
            publish(broker, "collector", {"devices/192.168.1.101/state": b"{broken"})
            events = errors.wait_for(lambda ms: len(ms) >= len(self.BAD) + 1)
            publish(broker, "app", {"apps/app/devices/10.0.3.9/state": device()})
            report = wait_report(platform, lambda r: "10.0.3.9" in statuses(r))
        reasons = {json.loads(m.payload)["topic"]: json.loads(m.payload)["reason"] for m in events}
        assert {f"{BASE}/{suffix}" for suffix in self.BAD} <= set(reasons)
        assert "ep_status" in reasons[f"{BASE}/devices/10.0.3.4/state"]
        assert "memory_usage" in reasons[f"{BASE}/gateway/metrics"]
        assert statuses(report) == {"192.168.1.101": "online", "10.0.3.9": "online"}
        assert isinstance(report.payload, dict)
        assert report.payload["gateway_ext_data"]["memory_usage"] == 0.77
        assert "rejected" in bridge.log_text()
