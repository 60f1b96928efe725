"""The bridge killed with -9 while a POST is in flight: the latest state after, no id reused."""

from __future__ import annotations

import json
import time
from pathlib import Path

from demo.broker import Broker
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
    statuses,
    wait_report,
    write_config,
)

DOOR = "10.0.4.1"



def door_name(report: object) -> str | None:
    payload = getattr(report, "payload", None)
    assert isinstance(payload, dict)
    names = {d["ep_ip"]: d["ep_name"] for d in payload["sub_devices"]}
    return names.get(DOOR)


class TestBridgeCrash:
    def test_kill_9_mid_delivery(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """After a kill -9 mid-POST the latest state arrives, and no id names two bodies."""
        url = f"{platform.url}/DeviceStatus"
        config = write_config(tmp_path / "b.toml", broker, url)
        # The second run reports every second, so a late report is soon put right.
        config2 = write_config(tmp_path / "b2.toml", broker, url, interval=1)
        publish_spec_example(broker)
        publish(broker, "app", {f"apps/app/devices/{DOOR}/state": device(ep_name="v0")})
        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            wait_report(platform, lambda r: door_name(r) == "v0")
            # The next POST is held 1.5 s by the platform; the bridge dies meanwhile.
            faults(platform).set(Fault(status=200, delay=1.5, count=1))
            publish(broker, "app", {f"apps/app/devices/{DOOR}/state": device(ep_name="v1")})
            wait_until(lambda: not faults(platform).as_json(), what="the POST in flight")
            bridge.kill()
        killed_at = time.time()
        publish(broker, "app", {f"apps/app/devices/{DOOR}/state": device(ep_name="v2")})
        with running_bridge(config2, broker, tmp_path / "bridge2.log"):
            latest = wait_report(platform, lambda r: door_name(r) == "v2", after=killed_at)
            # The held POST is completed by the platform after its sender died, and
            # may land after the newer report; the next periodic one puts it right.
            late = wait_report(platform, lambda r: door_name(r) == "v1")
            wait_report(platform, lambda r: door_name(r) == "v2", after=late.received_at)

        reports = platform.state.store.reports()
        bodies: dict[str, set[str]] = {}
        for report in reports:
            assert report.report_id is not None
            bodies.setdefault(report.report_id, set()).add(json.dumps(report.payload))
        assert all(len(seen) == 1 for seen in bodies.values()), bodies
        boots = {rid.removeprefix(f"{SN}-").rsplit("-", 1)[0] for rid in bodies}
        assert len(boots) == 2
        assert latest.report_id is not None
        assert latest.report_id.endswith("-1")  # seq starts again, the boot part differs
        assert door_name(latest) == "v2"


class TestTtlWithoutTs:
    def test_a_restart_does_not_restart_the_clock(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """A record with a ttl and no ts counts from its arrival, also across a restart of
        the bridge: the device of a publisher that died meanwhile is offline in the first
        report after the restart, not online for another ttl."""
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus",
                              interval=1)
        publish_spec_example(broker)
        with collect(broker, f"{BASE}/bridge/arrivals/#") as arrivals:
            published_at = time.time()
            publish(broker, "app", {f"apps/app/devices/{DOOR}/state": device(ttl=4)})
            with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
                wait_report(platform, lambda r: statuses(r).get(DOOR) == "online")
                arrivals.wait_for_topic(f"{BASE}/bridge/arrivals/{DOOR}")
                bridge.kill()
        # The publisher is gone too: nothing renews the record past its ttl.
        wait_until(lambda: time.time() > published_at + 5, what="the record's ttl to pass")
        restarted = time.time()
        with running_bridge(config, broker, tmp_path / "bridge2.log"):
            first = wait_report(platform, lambda r: DOOR in statuses(r), after=restarted)
        assert statuses(first)[DOOR] == "offline"
