"""The collectors as processes against the project's own mosquitto, on loopback only.

Each test starts `python -m collectors` with a config written for its broker,
as the broker role that owns the topics (`collector`, or `app` for
`publish`). Devices live on 127.0.0.11-13: a demo camera (RTSP) on .11, nothing
on .13. What is retained on the broker afterwards is read with the same
marker trick the device collector uses: subscribe to the records, then to a
retained status topic; when that arrives, the replay is complete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from bridge.records import DeviceState, GatewayInfo, GatewayMetrics, parse_record
from bridge.topics import Kind
from demo.broker import Broker, free_port
from demo.camera import Cameras, serve
from tests.conftest import Collected, Message, collect, mqtt_client, publish_and_wait

SN = "SZCCKQRAIJBAH0002"
DEV_SNO = "ZKZCPI000120190807142601"
BASE = f"se3/{SN}"
SW_VERSION = "build.date=2019年 08月 06日 星期二 17:42:49 CST\nVERSION: V2R1C01\n"
CAMERA_IP = "127.0.0.11"
SPARE_IP = "127.0.0.12"
DEAD_IP = "127.0.0.13"
DEVICES_STATUS = f"{BASE}/collectors/devices/status"
GATEWAY_STATUS = f"{BASE}/collectors/gateway/status"


def state_topic(ip: str) -> str:
    return f"{BASE}/devices/{ip}/state"


@pytest.fixture
def camera() -> Iterator[Cameras]:
    """The demo camera answering RTSP OPTIONS with 200 on 127.0.0.11, at a free port."""
    cameras = serve([(CAMERA_IP, 0)])
    yield cameras
    cameras.close()


def camera_port(cameras: Cameras) -> int:
    return cameras.addresses[0][1]


def camera_device(port: int) -> dict[str, str]:
    return {
        "ip": CAMERA_IP, "name": "gate-cam", "location": "loc-11", "type": "2",
        "url": f"rtsp://{CAMERA_IP}:{port}/ch2", "probe": "rtsp",
    }


def dead_device() -> dict[str, str]:
    return {"ip": DEAD_IP, "location": "loc-13", "type": "0", "probe": f"tcp:{free_port(DEAD_IP)}"}


def spare_device() -> dict[str, str]:
    return {"ip": SPARE_IP, "location": "loc-12", "type": "4", "probe": "none"}


def write_config(
    path: Path, broker: Broker, devices: Sequence[Mapping[str, str]] = (), **collectors: float
) -> Path:
    sw = path.parent / "buildinfo.txt"
    sw.write_text(SW_VERSION, encoding="utf-8")
    options = {"probe_timeout": 1.0, **collectors}
    lines = [
        "[gateway]", f'sn = "{SN}"', f'dev_sno = "{DEV_SNO}"',
        f"sw_version_file = {json.dumps(str(sw))}", 'data_path = "/"',
        'sdk_version = "1.1.56d1e91"',
        "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}",
        "[collectors]", *(f"{key} = {value}" for key, value in options.items()),
    ]
    for device in devices:
        lines += ["[[devices]]", *(f"{key} = {json.dumps(value)}" for key, value in device.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "collectors", "--config", str(config), "--log-level", "DEBUG",
            *args]


def run_once(broker: Broker, config: Path, *args: str, role: str = "collector") -> None:
    """Run a one-shot command to its end; it must exit 0."""
    done = subprocess.run(
        command(config, *args), env={**os.environ, **broker.env(role)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr


class Daemon:
    """A long-running collector process, its log in a file."""

    def __init__(self, broker: Broker, config: Path, name: str, log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                command(config, name), env={**os.environ, **broker.env(f"collector-{name}")},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def daemons(broker: Broker, tmp_path: Path) -> Iterator[Any]:
    """`start(config, "devices"|"gateway")`: collector processes, killed at teardown."""
    started: list[Daemon] = []

    def start(config: Path, name: str) -> Daemon:
        started.append(Daemon(broker, config, name, tmp_path / f"{name}{len(started)}.log"))
        return started[-1]

    yield start
    for daemon in started:
        daemon.stop()


def retained(broker: Broker, topic_filter: str) -> dict[str, bytes]:
    """The retained messages under `topic_filter`: complete at the SUBACK of a second
    subscription (the broker replays the first one's before it)."""
    found: dict[str, bytes] = {}
    done = threading.Event()
    subacks: list[int] = []

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if not done.is_set():
            found[msg.topic] = bytes(msg.payload)

    def on_subscribe(_c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        subacks.append(mid)
        if len(subacks) == 2:
            done.set()

    with mqtt_client(broker, "debug") as client:
        client.on_message = on_message
        client.on_subscribe = on_subscribe
        client.subscribe(topic_filter, qos=0)
        client.subscribe(f"{BASE}/bridge/fence", qos=0)
        assert done.wait(10), "no SUBACK"
    return found


def device_state(payload: bytes, ip: str) -> DeviceState:
    record = parse_record(Kind.DEVICE_STATE, payload, key=ip)
    assert isinstance(record, DeviceState)
    return record


def latest(messages: Sequence[Message], topic: str) -> Message | None:
    return next((m for m in reversed(messages) if m.topic == topic), None)


def status_is(collected: Collected, topic: str, value: str, timeout: float = 15.0) -> None:
    def last_is(msgs: list[Message]) -> bool:
        last = latest(msgs, topic)
        return last is not None and last.payload == value.encode()

    collected.wait_for(last_is, timeout)


class TestGatewayOnce:
    def test_publishes_valid_info_and_metrics(self, broker: Broker, tmp_path: Path) -> None:
        """`gateway --once` leaves a valid info and metrics record; the daemon's status is
        not its to write."""
        config = write_config(tmp_path / "se3.toml", broker, metrics_interval=10)
        run_once(broker, config, "gateway", "--once")
        held = retained(broker, f"{BASE}/gateway/#")
        info = parse_record(Kind.GATEWAY_INFO, held[f"{BASE}/gateway/info"])
        metrics = parse_record(Kind.GATEWAY_METRICS, held[f"{BASE}/gateway/metrics"])
        assert isinstance(info, GatewayInfo)
        assert isinstance(metrics, GatewayMetrics)
        assert (info.dev_sno, info.sw_version, info.sdk_version) == (
            DEV_SNO, SW_VERSION, "1.1.56d1e91"
        )
        assert info.source == metrics.source == "gateway"
        assert metrics.ttl == 30.0
        assert metrics.memory_size is not None
        assert metrics.disk_size is not None
        assert retained(broker, GATEWAY_STATUS) == {}


class TestDevicesOnce:
    def test_online_and_offline(self, broker: Broker, camera: Cameras, tmp_path: Path) -> None:
        """The camera answering RTSP is online, the address with no listener offline."""
        devices = [camera_device(camera_port(camera)), dead_device()]
        config = write_config(tmp_path / "se3.toml", broker, devices, probe_interval=30)
        run_once(broker, config, "devices", "--once")
        held = retained(broker, f"{BASE}/devices/+/state")
        assert set(held) == {state_topic(CAMERA_IP), state_topic(DEAD_IP)}
        cam = device_state(held[state_topic(CAMERA_IP)], CAMERA_IP)
        dead = device_state(held[state_topic(DEAD_IP)], DEAD_IP)
        assert (cam.ep_status, dead.ep_status) == ("online", "offline")
        assert cam.ep_url == f"rtsp://{CAMERA_IP}:{camera_port(camera)}/ch2"
        # ttl: 3 x the 30 s interval, plus one wave of 1 s probe timeouts (the slowest cycle).
        assert (cam.ttl, cam.source, dead.ep_type) == (91.0, "devices", "0")

    def test_removed_device_is_deleted(self, broker: Broker, tmp_path: Path) -> None:
        """A device taken out of the config loses its record; others' records stay."""
        both = write_config(tmp_path / "a.toml", broker, [spare_device(), dead_device()])
        run_once(broker, both, "devices", "--once")
        run_once(
            broker, both, "publish", "device", "--ip", "127.0.0.14", "--status", "online",
            "--type", "1", "--location", "loc-14", "--source", "my-app", role="collector",
        )
        assert set(retained(broker, f"{BASE}/devices/+/state")) == {
            state_topic(SPARE_IP), state_topic(DEAD_IP), state_topic("127.0.0.14"),
        }
        fewer = write_config(tmp_path / "b.toml", broker, [dead_device()])
        run_once(broker, fewer, "devices", "--once")
        assert set(retained(broker, f"{BASE}/devices/+/state")) == {
            state_topic(DEAD_IP), state_topic("127.0.0.14"),
        }


class TestPublish:
    def test_app_publishes_and_removes(self, broker: Broker, tmp_path: Path) -> None:
        """`publish device` as the app role arrives as a valid record in the app's own space
        (apps/app/); `remove` deletes it."""
        config = write_config(tmp_path / "se3.toml", broker)
        topic = f"{BASE}/apps/app/devices/{SPARE_IP}/state"
        with collect(broker, f"{BASE}/apps/+/devices/+/state") as seen:
            run_once(
                broker, config, "publish", "device", "--ip", SPARE_IP, "--status", "offline",
                "--type", "1", "--location", "loc-12", "--name", "lobby", "--ttl", "60",
                role="app",
            )
            message = seen.wait_for_topic(topic)
            record = device_state(message.payload, SPARE_IP)
            assert (record.ep_status, record.ep_type, record.ep_name) == ("offline", "1", "lobby")
            assert (record.ttl, record.source) == (60.0, None)
            assert record.ts is not None
            run_once(broker, config, "publish", "remove", "--ip", SPARE_IP, role="app")
            seen.wait_for(lambda msgs: bool(msgs) and msgs[-1].payload == b"")


class TestDaemons:
    def test_status_change_and_clean_stop(
        self, broker: Broker, camera: Cameras, tmp_path: Path, daemons: Any
    ) -> None:
        """A camera that goes away turns offline; SIGTERM says offline and exits 0."""
        devices = [camera_device(camera_port(camera)), dead_device()]
        config = write_config(tmp_path / "se3.toml", broker, devices, probe_interval=0.5)
        with collect(broker, f"{BASE}/#") as seen:
            daemon = daemons(config, "devices")
            status_is(seen, DEVICES_STATUS, "online")
            seen.wait_for_message(
                lambda m: m.topic == state_topic(CAMERA_IP) and b'"online"' in m.payload
            )
            camera.close()
            seen.wait_for_message(
                lambda m: m.topic == state_topic(CAMERA_IP) and b'"offline"' in m.payload
            )
            daemon.proc.send_signal(signal.SIGTERM)
            assert daemon.proc.wait(15) == 0, daemon.log_text()
            status_is(seen, DEVICES_STATUS, "offline")
        assert "device 127.0.0.11 is now offline" in daemon.log_text()

    def test_last_will_on_kill(self, broker: Broker, tmp_path: Path, daemons: Any) -> None:
        """kill -9: the broker publishes the collector's last will, `offline`."""
        config = write_config(tmp_path / "se3.toml", broker, [spare_device()], probe_interval=30)
        with collect(broker, DEVICES_STATUS) as seen:
            daemon = daemons(config, "devices")
            status_is(seen, DEVICES_STATUS, "online")
            daemon.proc.kill()
            daemon.proc.wait()
            status_is(seen, DEVICES_STATUS, "offline")

    def test_restart_beside_a_hung_collector_stays_online(
        self, broker: Broker, tmp_path: Path, daemons: Any
    ) -> None:
        """A collector restarted while the old one hangs takes its session: no late last will."""
        config = write_config(tmp_path / "se3.toml", broker, [spare_device()], probe_interval=30)
        with collect(broker, DEVICES_STATUS) as seen:
            hung = daemons(config, "devices")
            status_is(seen, DEVICES_STATUS, "online")
            hung.proc.send_signal(signal.SIGSTOP)  # half-open: its socket stays up
            daemons(config, "devices")
            seen.wait_for(lambda msgs: [m.payload for m in msgs].count(b"online") >= 2)
            hung.proc.kill()
            hung.proc.wait()
            with mqtt_client(broker, "collector") as client:
                publish_and_wait(client, f"{DEVICES_STATUS}/marker", b"x")
            with collect(broker, DEVICES_STATUS) as now:
                assert now.wait_for_topic(DEVICES_STATUS).payload == b"online"

    def test_daemon_deletes_removed_devices(
        self, broker: Broker, tmp_path: Path, daemons: Any
    ) -> None:
        """The long-running collector also deletes records of devices no longer configured."""
        run_once(broker, write_config(tmp_path / "a.toml", broker, [spare_device()]),
                 "devices", "--once")
        config = write_config(tmp_path / "b.toml", broker, [dead_device()], probe_interval=30)
        with collect(broker, state_topic(SPARE_IP)) as seen:
            daemons(config, "devices")
            seen.wait_for(lambda msgs: bool(msgs) and msgs[-1].payload == b"")

    def test_gateway_refreshes_and_republishes_after_reconnect(
        self, broker: Broker, tmp_path: Path, daemons: Any
    ) -> None:
        """Metrics come every interval, info only on change or after a reconnect."""
        config = write_config(tmp_path / "se3.toml", broker, metrics_interval=0.5)
        info_topic = f"{BASE}/gateway/info"
        with collect(broker, f"{BASE}/gateway/#") as seen:
            daemon = daemons(config, "gateway")
            seen.wait_for(
                lambda msgs: sum(m.topic == f"{BASE}/gateway/metrics" for m in msgs) >= 3
            )
            assert [m.topic for m in seen.messages].count(info_topic) == 1
        # A broker that lost the info: only a republish after the reconnect brings it back.
        with mqtt_client(broker, "collector") as client:
            publish_and_wait(client, info_topic, b"", retain=True)
        broker.stop()
        broker.start()
        with collect(broker, info_topic) as seen:
            message = seen.wait_for_topic(info_topic, timeout=20)
            assert parse_record(Kind.GATEWAY_INFO, message.payload)
        assert daemon.proc.poll() is None
