"""A misbehaving platform: down, failing, throttling, slow, refusing; the bridge's backoff.

Every test runs the bridge as a process against the reference platform, with
failures injected by the platform (`receiver.faults`) and the bridge's own
account read from its `bridge/report` events. The platform counts the POSTs it
serves at once (`RequestMeter`), so "no pile-up" is measured at the platform.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from demo.broker import Broker, free_port
from receiver.app import create_app
from receiver.faults import Fault
from receiver.server import ReceiverServer
from tests.conftest import Collected, collect, mqtt_client, publish_and_wait, wait_until
from tests.integration.reliability_kit import RequestMeter, events, failures, meter, rss
from tests.integration.stack import (
    BASE,
    device,
    faults,
    publish,
    publish_spec_example,
    running_bridge,
    wait_report,
    write_config,
)

DOOR = "10.0.5.1"
RETRY_MIN = 0.2



def door_name(report: Any) -> str | None:
    names = {d["ep_ip"]: d["ep_name"] for d in report.payload["sub_devices"]}
    return names.get(DOOR)


def wait_failures(seen: Collected, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Wait for `count` failed delivery attempts on bridge/report; return them."""
    seen.wait_for(lambda _msgs: len(failures(seen)) >= count, timeout)
    return failures(seen)


def check_backoff(failed: list[dict[str, Any]], cap: float) -> None:
    """The k-th failure in a row waits a jittered [b/2, b], b = min(cap, RETRY_MIN * 2^(k-1))."""
    for k, event in enumerate(failed, start=1):
        base = min(cap, RETRY_MIN * 2 ** (k - 1))
        assert base / 2 - 0.001 <= event["retry_in"] <= base + 0.001, (k, event)
    capped = [e["retry_in"] for k, e in enumerate(failed, 1) if RETRY_MIN * 2 ** (k - 1) >= cap]
    assert len(capped) >= 3
    # Jittered, not in lockstep. Delays are reported in whole ms over a 300-odd ms range, so two
    # may collide by chance (about 1 % per pair); all three colliding is ~1e-5.
    assert len(set(capped)) > 1, capped
    for before, after in itertools.pairwise(failed):
        assert after["ts"] - before["ts"] >= before["retry_in"] - 0.01, (before, after)


class TestOutage:
    @pytest.mark.parametrize("failure", ["refused", 500, 503])
    def test_backoff_is_capped_and_jittered_and_recovery_is_one_step(
        self, tmp_path: Path, broker: Broker, failure: str | int
    ) -> None:
        """Refused, 500 or 503: capped jittered backoff; latest state one step after recovery."""
        cap = 0.6
        port = free_port()
        platform = ReceiverServer(create_app(faults=True), port=port)
        if failure != "refused":
            platform.start()
            assert isinstance(failure, int)
            faults(platform).set(Fault(status=failure))
        config = write_config(tmp_path / "b.toml", broker,
                              f"http://127.0.0.1:{port}/DeviceStatus", retry_max=cap)
        publish_spec_example(broker)
        try:
            with collect(broker, f"{BASE}/bridge/report") as seen, \
                    running_bridge(config, broker, tmp_path / "bridge.log"):
                wait_failures(seen, 2)
                publish(broker, "app", {f"apps/app/devices/{DOOR}/state": device(ep_name="latest")})
                failed = wait_failures(seen, 5)
                recovered = time.time()
                if failure == "refused":
                    platform.start()
                else:
                    faults(platform).clear()
                first = wait_report(platform, lambda r: True, timeout=5)
        finally:
            platform.stop()
        expected = "connection failed" if failure == "refused" else f"HTTP {failure}"
        assert all(expected in e["error"] for e in failed), failed
        assert all(e["status"] == (None if failure == "refused" else failure) for e in failed)
        check_backoff(failed, cap)
        assert door_name(first) == "latest"
        assert first.received_at - recovered <= cap + 0.5


class TestRetryAfter:
    def test_small_retry_after_is_honoured_and_large_one_capped(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """429 Retry-After: 1 waits 1 s; Retry-After: 3600 waits retry_max, not an hour."""
        cap = 1.5
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus",
                              retry_max=cap)
        publish_spec_example(broker)
        faults(platform).set(Fault(status=429, retry_after=1, count=1))
        with collect(broker, f"{BASE}/bridge/report") as seen, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            wait_failures(seen, 1)
            faults(platform).set(Fault(status=429, retry_after=3600, count=1))
            small, large = wait_failures(seen, 2)
            report = wait_report(platform, lambda r: True, timeout=cap + 3)
            seen.wait_for(lambda _m: any(e["ok"] for e in events(seen)))
            delivered = [e for e in events(seen) if e["ok"]]
        assert small["retry_in"] == 1.0
        assert "retry after 1 s" in small["error"]
        assert large["retry_in"] == cap
        assert large["ts"] - small["ts"] >= 1.0 - 0.01
        assert cap - 0.01 <= report.received_at - large["ts"] <= cap + 1.0
        assert delivered
        assert delivered[0]["report_id"] == small["report_id"] == large["report_id"]


class TestSlowPlatform:
    def test_slower_than_timeout_is_one_attempt_at_a_time(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """A platform slower than `timeout`: attempts time out one after another, none piles up."""
        requests = meter(platform.app)
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus",
                              timeout=0.5, retry_max=0.4)
        publish_spec_example(broker)
        faults(platform).set(Fault(status=200, delay=1.2, count=3))
        with collect(broker, f"{BASE}/bridge/report") as seen, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            failed = wait_failures(seen, 3)
            seen.wait_for(lambda _m: any(e["ok"] for e in events(seen)))
            # The platform still finishes the three held POSTs after the bridge gave up.
            wait_until(lambda: len(platform.state.store.reports()) >= 4, what="held POSTs")
        attempts = events(seen)
        assert all(e["error"] == "timed out after 0.5 s" for e in failed)
        assert requests.total == len(attempts) == 4  # no hidden retries underneath
        # An event is published when its attempt ends: a timed-out one a full timeout later.
        for before, after in itertools.pairwise(failed):
            assert after["ts"] - before["ts"] >= 0.5 + before["retry_in"] - 0.01
        # Duplicates of one report carry one id: the platform can drop them.
        ids = {r.report_id for r in platform.state.store.reports()}
        assert ids == {attempts[0]["report_id"]}

    def test_no_pile_up_while_changes_keep_coming(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """Slow 503s and a stream of changes: one POST at a time, then only the latest state."""
        requests = meter(platform.app)
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus",
                              retry_max=0.4)
        publish_spec_example(broker)
        faults(platform).set(Fault(status=503, delay=0.3))
        changes = 0
        with collect(broker, f"{BASE}/bridge/report") as seen, \
                running_bridge(config, broker, tmp_path / "bridge.log"), \
                mqtt_client(broker, "app") as app:
            for round_ in range(1, 6):
                for _ in range(5):
                    record = json.dumps(device(ep_name=f"v{changes}"))
                    publish_and_wait(app, f"{BASE}/apps/app/devices/{DOOR}/state", record,
                                     retain=True)
                    changes += 1
                wait_failures(seen, round_)
            recovered = time.time()
            faults(platform).clear()
            latest = wait_report(platform, lambda r: door_name(r) == f"v{changes - 1}")
            seen.wait_for(lambda _m: any(e["ok"] for e in events(seen)))
            attempts = events(seen)
        assert requests.peak == 1
        assert requests.total == len(attempts) < changes
        after = platform.state.store.reports(recovered)
        assert [door_name(r) for r in after] == [f"v{changes - 1}"] * len(after)
        assert latest.received_at - recovered <= 0.4 + 0.5 + 0.3


class TestMemory:
    def test_rss_flat_over_hundreds_of_failed_attempts(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """Hundreds of 500s with a tiny retry_max: the bridge's RSS does not keep growing."""
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus",
                              retry_min=0.002, retry_max=0.005)
        publish_spec_example(broker)
        faults(platform).set(Fault(status=500))
        stats = platform.state.store.stats

        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            assert bridge.proc is not None
            wait_until(lambda: stats.faulted >= 50, timeout=20, what="50 failed attempts")
            warm = rss(bridge.proc.pid)
            wait_until(lambda: stats.faulted >= 350, timeout=30, what="300 more failed attempts")
            done = rss(bridge.proc.pid)
            assert bridge.proc.poll() is None
        assert done - warm < 2 * 1024 * 1024, (warm, done)


class TestClientErrors:
    @pytest.mark.parametrize(("status", "at_cap"), [(400, True), (422, True), (408, False)])
    def test_4xx_logged_with_body_and_retried_at_the_cap(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer, status: int,
        at_cap: bool,
    ) -> None:
        """4xx but 408/429 waits exactly retry_max between attempts; the answer's body is logged."""
        cap = 0.6
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus",
                              retry_max=cap)
        publish_spec_example(broker)
        faults(platform).set(Fault(status=status))
        with collect(broker, f"{BASE}/bridge/report") as seen, \
                running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            failed = wait_failures(seen, 3)
            log = bridge.log_text()
        body = f'"message":"injected fault: HTTP {status}"'
        assert f"HTTP {status}; answer: " in log
        assert body in log
        if at_cap:
            assert [e["retry_in"] for e in failed] == [cap, cap, cap]
            for before, after in itertools.pairwise(failed):
                assert after["ts"] - before["ts"] >= cap - 0.01
        else:  # 408 is transient: the usual backoff, starting small
            assert failed[0]["retry_in"] <= RETRY_MIN


class TestRequestMeter:
    def test_meter_counts_only_report_posts(self, platform: ReceiverServer) -> None:
        """The test's own request meter ignores requests to other paths."""
        requests: RequestMeter = meter(platform.app)
        client = platform.app.test_client()
        client.get("/api/reports")
        client.post("/DeviceStatus", data=b"{}")
        assert (requests.total, requests.peak, requests.active) == (1, 1, 0)
