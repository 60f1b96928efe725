"""The benchmarks' own MQTT clients are let in by the project's broker config.

The broker refuses a client id that does not start with `se3-` (clientid_prefixes):
a benchmark peer asking for another would measure a refused connection.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.nodered import write_flow
from bench.stack import Platform
from demo.broker import Broker
from tests.conftest import mqtt_client


def test_the_node_red_peer_asks_for_an_id_the_broker_takes(broker: Broker, tmp_path: Path) -> None:
    """The flow's broker node names a client id the broker accepts: Node-RED's own
    default for an empty one (`nodered_<random>`, MQTT 3.1.1) is refused."""
    platform = Platform()
    try:
        flow = json.loads((write_flow(tmp_path / "red", broker, platform, 1) / "flows.json")
                          .read_text(encoding="utf-8"))
    finally:
        platform.stop()
    node = next(n for n in flow if n["type"] == "mqtt-broker")
    asked = node["clientid"] or "nodered_0123abcd"  # what Node-RED asks for given none
    with mqtt_client(broker, "debug", client_id=asked) as client:
        assert client.is_connected()
