"""Bridge health from outside: `se3-bridge status` and the Prometheus endpoint, on a real stack.

A real mosquitto (the `broker` fixture), the reference platform in a thread,
and the bridge as a child process; `status` runs as its own process too, as the
debug role, exactly as an operator would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from demo.broker import Broker, free_port
from receiver.app import create_app
from receiver.faults import Fault
from receiver.server import ReceiverServer
from tests.conftest import collect, wait_until
from tests.integration.stack import (
    BASE,
    SN,
    device,
    faults,
    publish,
    publish_spec_example,
    running_bridge,
    wait_report,
    write_config,
)


def run_status(config: Path, broker: Broker | None, *args: str,
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`python -m bridge --config CONFIG status ARGS` as the debug role."""
    env = {"PATH": "/usr/bin:/bin", **(broker.env("debug") if broker else {})}
    return subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(config), "status", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )


class TestStatusCommand:
    def test_healthy_bridge(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """Bridge online and delivering: exit 0, and the summary names what it saw."""
        url = f"{platform.url}/DeviceStatus"
        config = write_config(tmp_path / "b.toml", broker, url, interval=1)
        publish_spec_example(broker)
        publish(broker, "collector-gateway", {"collectors/gateway/status": b"online"})
        publish(broker, "collector", {"devices/10.0.0.2/state": device("offline")})
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: True)
            done = run_status(config, broker, "--json", "--wait", "20")
            text = run_status(config, broker, "--wait", "20")
        assert done.returncode == 0, done.stdout + done.stderr
        doc = json.loads(done.stdout)
        assert doc["healthy"] is True
        assert doc["bridge"] == "online"
        assert doc["gateway_sn"] == SN
        assert doc["collectors"] == {"gateway": "online"}
        assert doc["gateway"]["gateway_name"] == "bm1682landy93"
        assert doc["devices"]["online"] == 1
        assert doc["devices"]["offline"] == 1
        assert doc["report_url"] == {"source": "config file", "urls": [url], "login_url": None}
        event = doc["targets"][url]
        assert event["ok"] is True
        assert event["status"] == 200
        assert event["devices"] == 2
        assert event["report_id"].startswith(f"{SN}-")
        assert doc["waited"] < 20  # ended at the event, not at the wait's end
        assert text.returncode == 0, text.stdout + text.stderr
        assert "  bridge      online" in text.stdout
        assert f"    {url}: ok, HTTP 200" in text.stdout
        assert text.stdout.rstrip().endswith(
            "OK: the bridge is online and its last report to each target was delivered")

    def test_failing_target(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """The platform answering 503: exit 1, the failed attempt and its status shown."""
        url = f"{platform.url}/DeviceStatus"
        config = write_config(tmp_path / "b.toml", broker, url, interval=1)
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: True)
            faults(platform).set(Fault(status=503))
            done = run_status(config, broker, "--json", "--wait", "20")
        assert done.returncode == 1, done.stdout + done.stderr
        doc = json.loads(done.stdout)
        assert doc["targets"][url]["ok"] is False
        assert doc["targets"][url]["status"] == 503
        assert doc["problems"] == [p for p in doc["problems"] if p.startswith(url)]
        assert "HTTP 503" in doc["problems"][0]

    def test_killed_bridge_is_offline_at_once(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """After kill -9 the last will says offline: exit 1 without waiting for events."""
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            wait_report(platform, lambda r: True)
            bridge.kill()
            # The broker publishes the will when it sees the socket close.
            with collect(broker, f"{BASE}/bridge/status") as seen:
                seen.wait_for_message(lambda m: m.payload == b"offline")
        start = time.monotonic()
        done = run_status(config, broker, "--wait", "60")
        assert time.monotonic() - start < 30
        assert done.returncode == 1
        assert "  bridge      offline" in done.stdout
        assert "PROBLEM: the bridge is offline" in done.stdout
        assert "deliveries" not in done.stdout

    def test_no_broker(self, tmp_path: Path, broker: Broker) -> None:
        """Nothing listening on the port: exit 1 at once, saying the connection was refused."""
        config = write_config(tmp_path / "b.toml", broker, "http://127.0.0.1:9/DeviceStatus")
        port = free_port()
        config.write_text(config.read_text().replace(f"port = {broker.port}", f"port = {port}"))
        start = time.monotonic()
        done = run_status(config, broker, "--timeout", "30")
        assert time.monotonic() - start < 10
        assert done.returncode == 1
        assert (f"the MQTT broker at 127.0.0.1:{port} refused the connection: nothing listens "
                "there") in done.stderr
        assert "see the log" not in done.stderr
        assert done.stdout == ""

    def test_bad_credentials_are_named_at_once(self, tmp_path: Path, broker: Broker) -> None:
        """A wrong password: exit 1 at once, naming the user and what to check."""
        config = write_config(tmp_path / "b.toml", broker, "http://127.0.0.1:9/DeviceStatus")
        wrong = tmp_path / "wrong.pass"
        wrong.write_text("nope\n", encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", **broker.env("debug"),
               "SE3_MQTT_PASSWORD_FILE": str(wrong)}
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "--config", str(config), "status", "--timeout", "30"],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )
        assert time.monotonic() - start < 10
        assert done.returncode == 1
        assert "refused user 'debug': not authorised (a wrong password" in done.stderr

    def test_known_state_is_printed_before_the_wait(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """The retained state and what status waits for come at once; a short --wait within
        the report period ends 'not seen yet' (exit 3), not with a false problem."""
        url = f"{platform.url}/DeviceStatus"
        config = write_config(tmp_path / "b.toml", broker, url, interval=60)
        publish_spec_example(broker)
        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(platform, lambda r: True)  # the first report; the next in 60 s
            env = {"PATH": "/usr/bin:/bin", **broker.env("debug")}
            start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--config", str(config), "status",
                 "--wait", "8"], stdout=subprocess.PIPE, text=True, env=env,
            )
            assert proc.stdout is not None
            early = []
            for line in proc.stdout:
                early.append(line.rstrip("\n"))
                if line.startswith("  ...         waiting up to 8 s"):
                    break
            assert time.monotonic() - start < 8, early  # before the watch could have ended
            assert proc.poll() is None  # still watching
            assert "  bridge      online" in early
            rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 3, rest
        assert "NOT SEEN YET" in rest
        assert "PROBLEM" not in rest


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} from /metrics."""
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    answer.raise_for_status()
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _good_and_dead(tmp_path: Path, broker: Broker, good: str) -> tuple[Path, str, int]:
    """A bridge config reporting to `good` and to a URL where nothing listens, with its
    metrics on a free port, and the spec's example records published: (config, the
    dead URL, the metrics port)."""
    dead = f"http://127.0.0.1:{free_port()}/DeviceStatus"
    config = write_config(tmp_path / "b.toml", broker, [good, dead])
    port = free_port()
    with config.open("a", encoding="utf-8") as fh:
        fh.write(f'\n[bridge]\nmetrics_listen = "127.0.0.1:{port}"\n')
    publish_spec_example(broker)
    return config, dead, port


class TestMetricsEndpoint:
    def test_metrics_follow_the_bridge(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """Records by reason, reports per target, last success, devices, broker state."""
        good = f"{platform.url}/DeviceStatus"
        config, dead, port = _good_and_dead(tmp_path, broker, good)
        publish(broker, "app", {"apps/app/devices/10.0.0.2/state": device("offline")})
        start = time.time()
        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            wait_report(platform, lambda r: True)
            publish(broker, "app", {
                "apps/app/devices/10.0.3.1/state": b"not json",
                "apps/app/devices/10.0.3.4/state": json.dumps(device("up")).encode(),
            })
            wait_until(lambda: value(scrape(port), "se3_records_rejected_total",
                                     reason="ep_status") == 1, what="ep_status rejection")
            wait_until(lambda: (value(scrape(port), "se3_reports_failed_total", target=dead,
                                      report="gateway") or 0) >= 1,
                       what="a failed attempt to the dead target")
            samples = scrape(port)
            assert value(samples, "se3_records_rejected_total", reason="json") == 1
            assert (value(samples, "se3_records_accepted_total") or 0) >= 4
            assert (value(samples, "se3_reports_sent_total", target=good,
                          report="gateway") or 0) >= 1
            assert value(samples, "se3_reports_failed_total", target=good, report="gateway") == 0
            assert value(samples, "se3_reports_sent_total", target=dead, report="gateway") == 0
            last = value(samples, "se3_report_last_success_timestamp_seconds", target=good,
                         report="gateway")
            assert last is not None
            assert start <= last <= time.time()
            assert value(samples, "se3_report_last_success_timestamp_seconds",
                         target=dead, report="gateway") is None
            assert value(samples, "se3_devices", status="online") == 1
            assert value(samples, "se3_devices", status="offline") == 1
            assert value(samples, "se3_broker_connected") == 1
            broker.stop()
            wait_until(lambda: value(scrape(port), "se3_broker_connected") == 0,
                       what="broker_connected 0 after the broker stopped")
            broker.start()
            wait_until(lambda: value(scrape(port), "se3_broker_connected") == 1,
                       what="broker_connected 1 after the broker came back")
            assert bridge.proc is not None
            assert bridge.proc.poll() is None

    def test_a_removed_target_leaves_the_metrics(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """Once the operator's config/report_url replaces the file's targets, /metrics
        names only the new one: the old ones' counts are forgotten, not kept forever."""
        with ReceiverServer(create_app()) as other:
            self._check_removed_targets(tmp_path, broker, platform, other)

    @staticmethod
    def _check_removed_targets(tmp_path: Path, broker: Broker, home: ReceiverServer,
                               other: ReceiverServer) -> None:
        good, moved = f"{home.url}/DeviceStatus", f"{other.url}/DeviceStatus"
        config, dead, port = _good_and_dead(tmp_path, broker, good)

        def named() -> set[str]:
            return {dict(labels)["target"] for (name, labels) in scrape(port)
                    if name == "se3_reports_failed_total"}

        with running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_report(home, lambda r: True)
            wait_until(lambda: (value(scrape(port), "se3_reports_failed_total", target=dead,
                                      report="gateway") or 0) >= 1,
                       what="a failed attempt to the dead target")
            assert named() == {good, dead}
            publish(broker, "operator", {"config/report_url": moved.encode()})
            wait_until(lambda: (value(scrape(port), "se3_reports_sent_total", target=moved,
                                      report="gateway") or 0) >= 1,
                       what="a report to the new target")
            samples = scrape(port)
            assert named() == {moved}
            for gone in (good, dead):
                assert value(samples, "se3_reports_sent_total", target=gone,
                             report="gateway") is None
                assert value(samples, "se3_report_last_success_timestamp_seconds",
                             target=gone, report="gateway") is None
