"""The console for integration tests: in this process, its two services (face and
system) on free ports, connected to a test broker as a given role, and HTTP helpers
for its calls."""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bridge.config import parse_config
from console.app import SERVICES, Service, create_app
from console.broker import BrokerLink
from console.password import Password, ensure_password_file, read_password
from console.server import ConsoleServer
from console.state import ConsoleState
from console.view import View
from demo.broker import Broker
from tests.conftest import mqtt_client

TIMEOUT = 5.0


class RunningConsole:
    def __init__(self, servers: dict[Service, ConsoleServer], state: ConsoleState,
                 link: BrokerLink, password: str) -> None:
        self.server = servers["face"]
        self.state = state
        self.link = link
        self.password = password
        self.url = self.server.url
        self.system_url = servers["system"].url

    def call(self, method: str, path: str, service: Service = "face",
             **kwargs: Any) -> requests.Response:
        """A request to `service` with `Authorization: Bearer <password>` (unless headers
        say otherwise)."""
        headers = {"Authorization": f"Bearer {self.password}", **kwargs.pop("headers", {})}
        url = self.url if service == "face" else self.system_url
        return requests.request(method, f"{url}{path}", headers=headers, timeout=TIMEOUT,
                                **kwargs)


@contextmanager
def running_console(config_path: Path, broker: Broker, role: str = "console",
                    wait_connected: bool = True) -> Iterator[RunningConsole]:
    """The console for the bridge config at `config_path`, as broker role `role`."""
    raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    config = parse_config(raw, env=broker.env(role))
    password_file = ensure_password_file(config_path.parent / "console" / "admin.pass")
    password = read_password(password_file)
    view = View.of(config)
    link = BrokerLink(config.mqtt, view.base, view.apply)
    state = ConsoleState(config, view, link, Password(password, store=password_file))
    servers = {service: ConsoleServer(create_app(state, service), name=service).start()
               for service in SERVICES}
    link.start()
    try:
        if wait_connected:
            assert link.connected.wait(10), "console did not connect to the broker"
        yield RunningConsole(servers, state, link, password)
    finally:
        for server in servers.values():
            server.stop()
        link.close()


def retained_at(broker: Broker, topic: str) -> str | None:
    """The retained payload of `topic` as a new subscriber sees it (None: none)."""
    got: list[str] = []
    second = threading.Event()
    with mqtt_client(broker, "debug") as client:
        client.on_message = lambda _c, _u, msg: got.append(msg.payload.decode())
        # On one connection, the SUBACK of a second subscription comes after every
        # retained message of the first: then the replay is complete.
        acks: list[int] = []

        def on_subscribe(_c: object, _u: object, mid: int, _codes: object, _p: object) -> None:
            acks.append(mid)
            if len(acks) == 2:
                second.set()

        client.on_subscribe = on_subscribe
        client.subscribe(topic, qos=1)
        client.subscribe(f"{topic.rsplit('/', 1)[0]}/fence", qos=1)
        assert second.wait(10), "no SUBACK"
    return got[-1] if got else None
