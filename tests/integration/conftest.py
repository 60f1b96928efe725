"""Fixtures that run a real mosquitto, configured as the project ships it (demo.broker).

`broker` is a fresh broker per test (its own directory, free port, passwords
and empty retained state), so a test may stop, kill and restart it freely.
`broker_factory(...)` makes more, or ones with other settings
(`autosave_interval=1`, `prefix=...`). Every test in this directory is marked
`integration`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from demo.broker import Broker, MosquittoError, find_mosquitto, find_tool
from receiver.app import create_app
from receiver.server import ReceiverServer


class BrokerFactory(Protocol):
    def __call__(
        self, *, port: int | None = None, prefix: str = "se3", autosave_interval: int = 30
    ) -> Broker: ...


_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[BrokerFactory]:
    """`make(port=, prefix=, autosave_interval=)`: a started Broker in a new directory.

    All of them are stopped at teardown.
    """
    try:
        find_mosquitto()
    except MosquittoError as exc:
        pytest.skip(str(exc))
    if find_tool("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not found: run `make deps`")
    started: list[Broker] = []

    def make(
        *, port: int | None = None, prefix: str = "se3", autosave_interval: int = 30
    ) -> Broker:
        broker = Broker(tmp_path / f"mqtt{len(started)}", port, prefix, autosave_interval)
        started.append(broker)
        broker.start()
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def platform() -> Iterator[ReceiverServer]:
    """The reference platform on a free 127.0.0.1 port, with fault injection on."""
    server = ReceiverServer(create_app(faults=True)).start()
    yield server
    server.stop()


@pytest.fixture
def broker(broker_factory: BrokerFactory) -> Broker:
    """A started mosquitto on 127.0.0.1 with the project's conf, ACL and role passwords.

    `.host`, `.port`, `.dir`, `.credentials(role) -> (username, password_file)`,
    `.password(role)`, `.env(role) -> SE3_MQTT_* vars`, `.stop()`, `.kill()`, `.start()`.
    """
    return broker_factory()
