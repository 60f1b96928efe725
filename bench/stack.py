"""The real pieces the benchmarks run: a mosquitto, the reference platform, the bridge.

Everything listens on and connects to 127.0.0.1 only (docs/protocol.md, safety); the
device records use addresses in 127.10.0.0/16, which nothing ever contacts.

`Platform` is the reference receiver with one addition: a WSGI wrapper that
notes, per `X-Report-Id`, the monotonic time at which a POST's body had fully
arrived, before the receiver parses and checks it. The benchmarks time the
bridge to that moment; the receiver's own checking is the platform's cost.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from bench.mqttraw import RawPublisher, publish_packet
from demo.broker import Broker
from receiver.app import create_app
from receiver.server import ReceiverServer
from receiver.store import Report

ROOT = Path(__file__).resolve().parent.parent
PAHOSUB = Path(__file__).resolve().with_name("pahosub.py")
SN = "SZCCKQRAIJBAH0002"
DEV_SNO = "ZKZCPI000120190807142601"
PREFIX = "se3"
BASE = f"{PREFIX}/{SN}"
FILTER = f"{BASE}/#"
LOCATION = "95274d2c-0941-4d96-b032-ab200f81362c"
SW_VERSION = "build.date=2019年 08月 06日 星期二 17:42:49 CST\nVERSION: V2R1C01\n"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Wsgi = Callable[[Environ, StartResponse], Iterable[bytes]]


# -- results ---------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table: the bridge's number against its baseline's."""

    bench: str
    measure: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    target: str = ""
    met: bool | None = None
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = self.value / self.baseline_value if self.baseline_value else float("nan")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def percentile(values: Iterable[float], p: float) -> float:
    """The `p`-th percentile (0-100) by linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


# -- records -----------------------------------------------------------------


def device_ip(i: int) -> str:
    """The address of device `i` (< 62,500): loopback, never contacted."""
    return f"127.10.{i // 250}.{i % 250 + 1}"


def device_topic(ip: str) -> str:
    return f"{BASE}/devices/{ip}/state"


def device_payload(i: int, status: str = "online", ts: float | None = None,
                   ttl: float | None = None, name: str | None = None) -> bytes:
    """A record like the devices collector's."""
    ip = device_ip(i)
    record: dict[str, object] = {
        "ep_status": status, "ep_type": "2", "ep_location": LOCATION, "ep_ip": ip,
        "ep_name": f"camera-{i}" if name is None else name,
        "ep_url": f"rtsp://{ip}:554/ch2",
    }
    if ts is not None:
        record["ts"] = round(ts, 3)
    if ttl is not None:
        record["ttl"] = ttl
    record["source"] = "devices"
    return orjson.dumps(record)


def gateway_records() -> dict[str, bytes]:
    """The gateway's info and metrics records, by topic under BASE."""
    info = {
        "gateway_ip": "192.168.1.251", "gateway_name": "bench", "dev_sno": DEV_SNO,
        "sw_version": SW_VERSION, "sdk_version": "1.1.56d1e91", "gateway_mac": "e0:a5:09:00:0e:6d",
    }
    metrics = {"cpu_usage": 6.5, "memory_size": 1.55, "memory_usage": 0.77,
               "disk_size": 10.39, "disk_free_size": 9.41}
    return {"gateway/info": orjson.dumps(info), "gateway/metrics": orjson.dumps(metrics)}


def gateway_packets() -> bytes:
    return b"".join(publish_packet(f"{BASE}/{suffix}", payload, retain=True)
                    for suffix, payload in gateway_records().items())


def device_packets(count: int, retain: bool = True, **fields: Any) -> bytes:
    return b"".join(
        publish_packet(device_topic(device_ip(i)), device_payload(i, **fields), retain)
        for i in range(count)
    )


# -- the broker ----------------------------------------------------------------


def start_broker(directory: Path) -> Broker:
    broker = Broker(directory / "mqtt")
    broker.start()
    return broker


def raw_publisher(broker: Broker, role: str = "collector") -> RawPublisher:
    return RawPublisher(broker.host, broker.port, role, broker.password(role),
                        f"se3-bench-{role}-{os.getpid()}-{time.monotonic_ns()}")


def pahosub_command(broker: Broker, count: int, live: bool = False) -> list[str]:
    """The bare paho subscriber's command line (as the read-only `debug` role)."""
    user, password_file = broker.credentials("debug")
    command = [sys.executable, str(PAHOSUB), "--host", broker.host, "--port", str(broker.port),
               "--username", user, "--password-file", str(password_file), "--topic", FILTER,
               "--count", str(count)]
    return [*command, "--live"] if live else command


def count_retained(broker: Broker, timeout: float = 60.0) -> int:
    """How many retained messages the broker holds under FILTER (a QoS 0 replay, counted)."""
    seen = 0

    def take(msg: mqtt.MQTTMessage) -> None:
        nonlocal seen
        seen += bool(msg.retain)

    replay_retained(broker, FILTER, take, timeout)
    return seen


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM to a child still running, and SIGKILL if it has not ended in `timeout` s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def replay_retained(broker: Broker, topic_filter: str,
                    take: Callable[[mqtt.MQTTMessage], None], timeout: float) -> None:
    """Subscribe to `topic_filter` as the read-only `monitor` user (QoS 0), hand `take`
    each message, and return once the broker's retained replay has ended: the SUBACK
    of a second subscription on the same connection comes after every retained message
    of the first. TimeoutError if it does not end within `timeout` seconds."""
    done = threading.Event()
    fence: list[int] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.username_pw_set("monitor", broker.password("monitor"))  # not the baseline's user

    def on_connect(c: mqtt.Client, *_a: object) -> None:
        c.subscribe(topic_filter, qos=0)
        _, mid = c.subscribe(f"{BASE}/bench/fence", qos=0)
        fence.append(mid if mid is not None else -1)

    def on_subscribe(_c: mqtt.Client, _u: object, mid: int, *_a: object) -> None:
        if mid in fence:
            done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = lambda _c, _u, msg: take(msg)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise TimeoutError("the broker's retained replay did not end")
    finally:
        client.disconnect()
        client.loop_stop()


# -- the platform --------------------------------------------------------------


class Arrivals:
    """WSGI wrapper: the monotonic time each report's body had fully arrived, by report id."""

    def __init__(self, app: Wsgi) -> None:
        self._app = app
        self._cond = threading.Condition()
        self._times: dict[str, float] = {}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/DeviceStatus" and environ["REQUEST_METHOD"] == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            now = time.monotonic()
            environ["wsgi.input"] = io.BytesIO(body)
            with self._cond:
                self._times[environ.get("HTTP_X_REPORT_ID", "")] = now
                self._cond.notify_all()
        return self._app(environ, start_response)

    def time_of(self, report_id: str | None, timeout: float = 5.0) -> float:
        with self._cond:
            if not self._cond.wait_for(lambda: report_id in self._times, timeout):
                raise TimeoutError(f"no arrival noted for report {report_id}")
            return self._times[report_id or ""]


class Platform:
    """The reference receiver on a free port, with arrival times."""

    def __init__(self, keep: int = 20, faults: bool = False) -> None:
        app = create_app(keep=keep, faults=faults)
        self.arrivals = Arrivals(app.wsgi_app)
        app.wsgi_app = self.arrivals  # type: ignore[method-assign]
        self.server = ReceiverServer(app).start()
        self.url = f"{self.server.url}/DeviceStatus"

    def wait(self, predicate: Callable[[Report], bool], timeout: float,
             after: float = 0.0) -> Report:
        """The newest report received after Unix time `after` that satisfies `predicate`."""
        found = self.server.state.store.wait_for(
            lambda r: r.received_at > after and predicate(r), timeout
        )
        if found is None:
            raise TimeoutError(f"no matching report at the platform within {timeout} s")
        return found

    def stop(self) -> None:
        self.server.stop()


def sub_devices(report: Report) -> list[dict[str, Any]]:
    payload = report.payload
    if not isinstance(payload, dict):
        return []
    devices = payload.get("sub_devices")
    return devices if isinstance(devices, list) else []


# -- the bridge ------------------------------------------------------------------


def write_config(path: Path, broker: Broker, platform: Platform, *, max_devices: int = 20_000,
                 metrics_listen: str = "", **platform_keys: float) -> Path:
    lines = [
        "[gateway]", f'sn = "{SN}"', "",
        "[mqtt]", f'host = "{broker.host}"', f"port = {broker.port}", f'topic_prefix = "{PREFIX}"',
        "", "[platform]", f'report_url = "{platform.url}"',
        *(f"{key} = {value}" for key, value in platform_keys.items()),
        "", "[bridge]", f"max_devices = {max_devices}",
    ]
    if metrics_listen:
        lines.append(f'metrics_listen = "{metrics_listen}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def one_cpu() -> set[int] | None:
    """A single CPU to pin a process to, or None on a one-CPU machine."""
    allowed = os.sched_getaffinity(0)
    return {max(allowed)} if len(allowed) > 1 else None


class BridgeProcess:
    """`python -m bridge --config X run` as the `bridge` role, logging to a file.

    `cpus` pins it (as `taskset` or systemd's `CPUAffinity=` would) right after
    it starts, long before it connects; threads started later inherit it.
    """

    def __init__(self, config: Path, broker: Broker, log: Path,
                 cpus: set[int] | None = None) -> None:
        self.config = config
        self.env = {**os.environ, **broker.env("bridge")}
        self.log = log
        self.cpus = cpus
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> BridgeProcess:
        with open(self.log, "ab") as log:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--config", str(self.config), "run"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                cwd=ROOT,
            )
        if self.cpus:
            os.sched_setaffinity(self.proc.pid, self.cpus)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the bridge sends its last report and exits); SIGKILL if it hangs."""
        if self.proc is not None:
            stop_process(self.proc, timeout)

    def __enter__(self) -> BridgeProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()



def scrape_accepted(url: str) -> int:
    """`se3_records_accepted` from the bridge's Prometheus endpoint."""
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our own loopback URL
        text = answer.read().decode()
    for line in text.splitlines():
        if line.startswith("se3_records_accepted_total ") or line.startswith(
            "se3_records_accepted "
        ):
            return int(float(line.split()[1]))
    raise ValueError("se3_records_accepted not in the metrics")


def wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float) -> None:
    """Read `proc`'s stdout until the line `expected` (a thread bounds the wait)."""
    assert proc.stdout is not None
    stdout = proc.stdout
    seen = threading.Event()

    def read() -> None:
        for line in stdout:
            if line.strip() == expected:
                seen.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not seen.is_set():
        raise TimeoutError(f"{proc.args!r} did not print {expected!r} within {timeout} s")


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)
