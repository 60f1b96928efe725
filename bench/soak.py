"""Soak: a long run under churn and faults; does the bridge stay small and end right?

One bridge process against a real mosquitto and the reference platform, for
`duration` seconds:
- `devices` retained device records, changed `rate` times a second by a
  publisher (as the devices collector or an app would): mostly a new status
  or name, sometimes a device removed (its record deleted) and a new one added
  (identity churn), so the set of addresses drifts over the run;
- the platform answers 503 for `outage` seconds every `outage_every` seconds;
- the broker is killed (SIGKILL: nothing saved since its last autosave) every
  `broker_every` seconds and started again at once, and the publisher then
  puts the whole state back as a restarted devices collector does: it reads
  what the broker kept, deletes what it no longer has, and republishes the rest.

Every few seconds the bridge's RSS, open files and threads are sampled; their
slopes (least squares, per hour) are printed. At the end the publisher stops,
and within `quiet` seconds the platform must receive a report whose devices
are exactly the published ones, each with its last published status and name
(the final-state check). Everything talks to 127.0.0.1 only; the device
addresses (127.10.0.0/16) are never contacted.

    python -m bench.soak --duration 1500          the 25-minute soak (`make soak`)
    python -m bench --only soak                   a short one, in the bench table
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from bench.stack import (
    BASE,
    BridgeProcess,
    Platform,
    Row,
    device_ip,
    device_payload,
    device_topic,
    gateway_records,
    replay_retained,
    start_broker,
    sub_devices,
    write_config,
)
from demo.broker import Broker
from receiver.faults import Fault
from receiver.store import Report

NAME = "soak"
logger = logging.getLogger(__name__)

DEVICE_FILTER = f"{BASE}/devices/+/state"


@dataclass(frozen=True)
class Plan:
    """What one soak run does; the defaults are the short run of `make bench`."""

    duration: float = 120.0
    devices: int = 1000
    rate: float = 100.0
    churn: float = 0.1  # share of changes that replace a device by a new one
    outage: float = 20.0
    outage_every: float = 50.0
    broker_every: float = 45.0
    quiet: float = 30.0
    sample_every: float = 5.0
    seed: int = 1
    # Republish without deleting what the broker kept but the publisher had deleted,
    # as a publisher that does not reconcile would (shows what that costs).
    naive: bool = False


@dataclass
class Samples:
    """(seconds since start, value) of the bridge's RSS (MB), fds and threads."""

    rss: list[tuple[float, float]] = field(default_factory=list)
    fds: list[tuple[float, float]] = field(default_factory=list)
    threads: list[tuple[float, float]] = field(default_factory=list)

    def take(self, proc: psutil.Process, at: float) -> None:
        with proc.oneshot():
            self.rss.append((at, proc.memory_info().rss / 2**20))
            self.fds.append((at, float(proc.num_fds())))
            self.threads.append((at, float(proc.num_threads())))


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of `points`, per hour; 0 for fewer than two points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600


class Publisher:
    """The devices' publisher, as the `collector` role, with the state it last published.

    `published` maps each address to (status, name) as last published; a record
    deleted is gone from it. Publishes are QoS 1 and retained: paho keeps those
    made while the broker is down and sends them after it reconnects.
    """

    def __init__(self, broker: Broker, plan: Plan) -> None:
        self.plan = plan
        self.random = random.Random(plan.seed)
        self.published: dict[str, tuple[str, str]] = {}
        self._index: dict[str, int] = {}
        self._next = 0
        self._seq = 0
        self.connected = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="se3-soak-publisher",
                             protocol=mqtt.MQTTv5)
        client.username_pw_set("collector", broker.password("collector"))
        client.max_queued_messages_set(0)  # unbounded: nothing published may be lost here
        client.reconnect_delay_set(1, 2)
        client.on_connect = lambda *_a: self.connected.set()
        client.on_disconnect = lambda *_a: self.connected.clear()
        client.connect_async(broker.host, broker.port)
        client.loop_start()
        self.client = client

    def start(self, timeout: float = 10.0) -> None:
        if not self.connected.wait(timeout):
            raise TimeoutError("the soak publisher did not connect")
        for suffix, payload in gateway_records().items():
            self.client.publish(f"{BASE}/{suffix}", payload, qos=1, retain=True)
        for _ in range(self.plan.devices):
            self._add()

    def _publish(self, ip: str, status: str, name: str) -> None:
        self.published[ip] = (status, name)
        payload = device_payload(self._index[ip], status=status, name=name)
        self.client.publish(device_topic(ip), payload, qos=1, retain=True)

    def _add(self) -> None:
        ip = device_ip(self._next)
        self._index[ip] = self._next
        self._next += 1
        self._publish(ip, "online", f"camera-{self._index[ip]}")

    def change(self) -> None:
        """One change: a new status or name, or a device replaced by a new one."""
        self._seq += 1
        ip = self.random.choice(list(self.published)) if self.published else None
        if ip is None or self.random.random() < self.plan.churn / 2:
            self._add()
            return
        if self.random.random() < self.plan.churn / 2:
            del self.published[ip]
            self.client.publish(device_topic(ip), b"", qos=1, retain=True)
            return
        status, _name = self.published[ip]
        if self.random.random() < 0.5:
            status = "offline" if status == "online" else "online"
        self._publish(ip, status, f"camera-{self._index[ip]}-{self._seq}")

    def restore(self, broker: Broker, timeout: float = 30.0) -> int:
        """After a broker restart: what the broker kept but we deleted is deleted again,
        and the whole published state is put back. Returns how many were deleted."""
        if not self.connected.wait(timeout):
            raise TimeoutError("the soak publisher did not reconnect")
        kept = retained_devices(broker, timeout)
        stale = [] if self.plan.naive else [ip for ip in kept if ip not in self.published]
        for ip in stale:
            self.client.publish(device_topic(ip), b"", qos=1, retain=True)
        for suffix, payload in gateway_records().items():
            self.client.publish(f"{BASE}/{suffix}", payload, qos=1, retain=True)
        for ip, (status, name) in self.published.items():
            self._publish(ip, status, name)
        return len(stale)

    def flush(self, timeout: float) -> None:
        """Wait until every publish so far is acknowledged by the broker."""
        info = self.client.publish(f"{BASE}/soak/flush", b"", qos=1)
        info.wait_for_publish(timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_devices(broker: Broker, timeout: float) -> dict[str, tuple[str, str]]:
    """The devices the broker holds a retained record for, as (status, name) by address
    (a QoS 0 replay)."""
    found: dict[str, tuple[str, str]] = {}

    def take(msg: mqtt.MQTTMessage) -> None:
        if msg.retain and msg.payload:
            record = orjson.loads(msg.payload)
            found[msg.topic.split("/")[-2]] = (record["ep_status"], record["ep_name"])

    replay_retained(broker, DEVICE_FILTER, take, timeout)
    return found


def shown(report: Report) -> dict[str, tuple[str, str]]:
    """The report's devices as (status, name) by address."""
    return {str(d.get("ep_ip")): (str(d.get("ep_status")), str(d.get("ep_name")))
            for d in sub_devices(report)}


def differences(have: dict[str, tuple[str, str]], want: dict[str, tuple[str, str]],
                have_name: str = "reported", want_name: str = "published") -> list[str]:
    """How two device sets differ, one line a device (empty: the same)."""
    out = [f"{ip}: {have_name}, not {want_name}" for ip in have.keys() - want.keys()]
    out += [f"{ip}: {want_name}, not {have_name}" for ip in want.keys() - have.keys()]
    out += [f"{ip}: {have_name} {have[ip]}, {want_name} {want[ip]}"
            for ip in have.keys() & want.keys() if have[ip] != want[ip]]
    return sorted(out)


def soak(directory: Path, plan: Plan) -> dict[str, Any]:
    """Run one soak in `directory`; the measurements as a dict."""
    platform = Platform(keep=5, faults=True)
    faults = platform.server.state.faults
    assert faults is not None
    store = platform.server.state.store
    broker = start_broker(directory)
    config = write_config(directory / "bridge.toml", broker, platform,
                          interval=10, min_interval=1, retry_max=5)
    publisher = Publisher(broker, plan)
    bridge = BridgeProcess(config, broker, directory / "bridge.log")
    samples = Samples()
    counts = {"changes": 0, "broker_kills": 0, "outages": 0, "deleted_after_restart": 0}
    try:
        publisher.start()
        bridge.start()
        proc = psutil.Process(bridge.pid)
        # Slopes from the bridge at work: its first full report is the start line.
        if store.wait_for(lambda r: len(sub_devices(r)) >= plan.devices, 60.0) is None:
            raise TimeoutError("the bridge's first full report did not arrive within 60 s")
        start = time.monotonic()
        next_sample = next_outage = 0.0
        next_kill = plan.broker_every
        outage_ends: float | None = None
        while (now := time.monotonic() - start) < plan.duration:
            if now >= next_sample:
                samples.take(proc, now)
                next_sample += plan.sample_every
            if outage_ends is None and now >= next_outage + plan.outage_every:
                faults.set(Fault(status=503))
                counts["outages"] += 1
                outage_ends, next_outage = now + plan.outage, next_outage + plan.outage_every
            elif outage_ends is not None and now >= outage_ends:
                faults.clear()
                outage_ends = None
            if now >= next_kill:
                broker.kill()
                broker.start()
                counts["broker_kills"] += 1
                counts["deleted_after_restart"] += publisher.restore(broker)
                next_kill += plan.broker_every
            publisher.change()
            counts["changes"] += 1
            wait = start + counts["changes"] / plan.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # the publisher's pace, not a synchronisation
        faults.clear()
        publisher.flush(30.0)
        published = dict(publisher.published)
        quiet_from = time.time()
        held = retained_devices(broker, 30.0)
        # The bridge must end where the broker is; the broker where the publisher is.
        final = store.wait_for(lambda r: r.received_at > quiet_from
                               and not differences(shown(r), held), plan.quiet)
        samples.take(proc, time.monotonic() - start)
        last = final or next(iter(store.reports()[-1:]), None)
        report = shown(last) if last is not None else {}
        diff = differences(report, published)
        behind_broker = differences(report, held, want_name="held by the broker")
        broker_diff = differences(held, published, have_name="held by the broker")
    finally:
        publisher.close()
        bridge.stop()
        broker.stop()
        platform.stop()
    return {
        "plan": plan.__dict__, "counts": counts, "published_devices": len(published),
        "final_state_differences": diff, "final_state_ok": not diff,
        "report_vs_broker": behind_broker, "broker_vs_published": broker_diff,
        "rss_mb": [samples.rss[0][1], samples.rss[-1][1]],
        "rss_mb_per_hour": slope_per_hour(samples.rss),
        "fds": [samples.fds[0][1], samples.fds[-1][1]],
        "fds_per_hour": slope_per_hour(samples.fds),
        "threads": [samples.threads[0][1], samples.threads[-1][1]],
        "threads_per_hour": slope_per_hour(samples.threads),
    }


def rows(result: dict[str, Any]) -> list[Row]:
    rss_start, rss_end = result["rss_mb"]
    duration = result["plan"]["duration"]
    return [
        Row(NAME, f"RSS after {duration:g} s of churn and faults", rss_end, "MB",
            "RSS at start", rss_start, "≤ 1.1x", rss_end <= 1.1 * rss_start),
        Row(NAME, "final report vs published state, devices that differ",
            len(result["final_state_differences"]), "devices", "devices published",
            result["published_devices"], "0", result["final_state_ok"]),
    ]


def run(directory: Path) -> tuple[list[Row], dict[str, Any]]:
    """The short soak of `make bench`."""
    result = soak(directory, Plan())
    return rows(result), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Plan()
    parser.add_argument("--duration", type=float, default=1500.0, help="seconds (default 1500)")
    parser.add_argument("--devices", type=int, default=defaults.devices)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="changes a second")
    parser.add_argument("--outage", type=float, default=defaults.outage, help="seconds")
    parser.add_argument("--outage-every", type=float, default=120.0, help="seconds")
    parser.add_argument("--broker-every", type=float, default=300.0,
                        help="seconds between broker kills")
    parser.add_argument("--quiet", type=float, default=defaults.quiet,
                        help="seconds the final report may take")
    parser.add_argument("--naive-republish", action="store_true",
                        help="after a broker restart, republish without deleting what the "
                        "broker kept but the publisher had deleted")
    args = parser.parse_args(argv)
    plan = Plan(duration=args.duration, devices=args.devices, rate=args.rate,
                outage=args.outage, outage_every=args.outage_every,
                broker_every=args.broker_every, quiet=args.quiet, naive=args.naive_republish)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="se3-soak-") as tmp:
        result = soak(Path(tmp), plan)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(f"RSS {result['rss_mb'][0]:.1f} -> {result['rss_mb'][1]:.1f} MB "
          f"({result['rss_mb_per_hour']:+.1f} MB/h); fds {result['fds'][0]:.0f} -> "
          f"{result['fds'][1]:.0f} ({result['fds_per_hour']:+.1f}/h); threads "
          f"{result['threads'][0]:.0f} -> {result['threads'][1]:.0f} "
          f"({result['threads_per_hour']:+.1f}/h)")
    verdict = "ok" if result["final_state_ok"] else "DIFFERS"
    print(f"final state: {verdict} ({len(result['final_state_differences'])} of "
          f"{result['published_devices']} devices differ from the published state; "
          f"{len(result['report_vs_broker'])} from what the broker holds)")
    return 0 if result["final_state_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
