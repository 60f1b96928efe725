"""Apps in their own spaces (apps/<user>/), against a real broker, bridge and platform.

Two app users and the devices collector claim addresses: the config's
`[[devices]]` are the collector's whatever comes first, any other address is
the first publisher's until it deletes its record, and every refused claim is
an event on bridge/errors (code `claimed`) and a WARNING in the bridge's log.
"""

from __future__ import annotations

import json
from pathlib import Path

from demo.broker import Broker
from receiver.server import ReceiverServer
from tests.conftest import collect
from tests.integration.stack import (
    BASE,
    device,
    publish,
    publish_spec_example,
    running_bridge,
    statuses,
    wait_report,
    write_config,
)

CONFIGURED = "127.0.0.11"
SHARED = "10.0.4.1"


def test_configured_devices_then_the_first_claim_win(
    tmp_path: Path, platform: ReceiverServer
) -> None:
    with Broker(tmp_path / "mqtt", apps=("app", "app-door")) as broker:
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
        with config.open("a", encoding="utf-8") as fh:
            fh.write(f'\n[[devices]]\nip = "{CONFIGURED}"\nlocation = "loc"\ntype = "1"\n')
        publish_spec_example(broker)
        log = tmp_path / "bridge.log"
        with collect(broker, f"{BASE}/bridge/errors") as errors, \
                running_bridge(config, broker, log):
            wait_report(platform, lambda r: True)
            publish(broker, "app", {f"apps/app/devices/{CONFIGURED}/state": device(),
                                    f"apps/app/devices/{SHARED}/state": device(ep_name="app")})
            publish(broker, "app-door", {
                f"apps/app-door/devices/{SHARED}/state": device(ep_name="door")})
            publish(broker, "collector-devices", {
                f"devices/{CONFIGURED}/state": device(ep_name="camera")})
            report = wait_report(platform, lambda r: CONFIGURED in statuses(r))
            events = errors.wait_for(lambda msgs: len(msgs) >= 2)
            assert isinstance(report.payload, dict)
            names = {d["ep_ip"]: d["ep_name"] for d in report.payload["sub_devices"]}
            assert (names[CONFIGURED], names[SHARED]) == ("camera", "app")
            reasons = {json.loads(m.payload)["topic"]: json.loads(m.payload) for m in events}
            claimed = reasons[f"{BASE}/apps/app/devices/{CONFIGURED}/state"]
            assert claimed["code"] == "claimed"
            assert "configured device" in claimed["reason"]
            second = reasons[f"{BASE}/apps/app-door/devices/{SHARED}/state"]
            assert (second["code"], second["reason"]) == (
                "claimed", f"{SHARED} is already reported by app app; record refused")

            # The holder deletes its record: the address is free for the next claim.
            publish(broker, "app", {f"apps/app/devices/{SHARED}/state": b""})
            publish(broker, "app-door", {
                f"apps/app-door/devices/{SHARED}/state": device(ep_name="door")})
            report = wait_report(platform, lambda r: any(
                d["ep_name"] == "door" for d in r.payload["sub_devices"]))
            # Its status is its own: offline there takes only its devices offline.
            publish(broker, "app-door", {"apps/app-door/status": b"offline"})
            report = wait_report(platform, lambda r: statuses(r).get(SHARED) == "offline")
            assert statuses(report)[CONFIGURED] == "online"
        text = log.read_text(encoding="utf-8")
        refused = f"{BASE}/apps/app-door/devices/{SHARED}/state"
        assert f"WARNING bridge.service: rejected {refused}" in text
