"""Sessions on the project's real broker config: no user can take over another's.

The broker makes each client's id its user name (`use_username_as_clientid`)
on its main port, so an attacker who asks for a daemon's client id gets its
own user's id instead; on the watchers' port, where ids are the ones asked
for, a daemon's id (its user name) cannot be asked for: every id asked for
must start with `se3-` (`clientid_prefixes`). Whether a victim was pushed off
is learnt from its own connection: a QoS 1 round trip after the attacker's
CONNACK (the broker closes an old session before it acknowledges the new one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bridge.config import MqttSection
from bridge.mqttclient import Connection
from demo.broker import Broker
from tests.conftest import collect, mqtt_client, wait_until

SN = "SZCCKQRAIJBAH0002"


class Watched:
    """A project Connection that counts its disconnects."""

    def __init__(self, broker: Broker, role: str, client_id: str, status: str | None) -> None:
        user, password_file = broker.credentials(role)
        settings = MqttSection(host=broker.host, port=broker.port, username=user,
                               password_file=password_file)
        self.conn = Connection(settings, client_id, status)
        self.disconnects = 0
        self._lock = threading.Lock()
        on_disconnect = self.conn.client.on_disconnect

        def counting_disconnect(*args: Any) -> None:
            with self._lock:
                self.disconnects += 1
            on_disconnect(*args)  # type: ignore[misc]

        self.conn.client.on_disconnect = counting_disconnect

    def alive(self) -> bool:
        """A QoS 1 round trip on this connection, with no disconnect so far."""
        info = self.conn.client.publish(f"se3/{SN}/probe", b"", qos=1)
        info.wait_for_publish(5)
        return info.is_published() and self.disconnects == 0


@contextmanager
def watched(
    broker: Broker, role: str, client_id: str, status: str | None = None
) -> Iterator[Watched]:
    victim = Watched(broker, role, client_id, status)
    victim.conn.start()
    assert victim.conn.wait_connected(10)
    try:
        yield victim
    finally:
        victim.conn.close()


class WatchPort:
    """The broker's watchers' listener, as `mqtt_client` takes a broker."""

    def __init__(self, broker: Broker) -> None:
        self.host, self.port, self._broker = broker.host, broker.watch_port, broker

    def password(self, role: str) -> str:
        return self._broker.password(role)


class TestTakeover:
    @pytest.mark.parametrize(
        ("role", "client_id", "status"),
        [
            ("bridge", f"se3-bridge-{SN}", "bridge/status"),
            ("collector-devices", f"se3-collector-devices-{SN}", "collectors/devices/status"),
        ],
    )
    def test_no_other_user_takes_a_daemon_session(
        self, broker: Broker, role: str, client_id: str, status: str
    ) -> None:
        """app, debug, monitor and operator asking for a daemon's client id (or its user
        name), on the main port or the watchers', leave the daemon connected and its last
        will unfired: refused, or connected under another id."""
        topic = f"se3/{SN}/{status}"
        watchers = WatchPort(broker)
        with collect(broker, topic, role="monitor") as seen, \
                watched(broker, role, client_id, topic) as victim:
            seen.wait_for_message(lambda m: m.payload == b"online")
            for attacker, door in [(a, broker) for a in ("app", "debug", "operator")] + [
                    ("debug", watchers), ("monitor", watchers)]:
                for wanted in (client_id, role):
                    try:
                        with mqtt_client(door, attacker, client_id=wanted):
                            pass
                    except ConnectionRefusedError:
                        assert not wanted.startswith("se3-")  # clientid_prefixes
                    assert victim.alive(), f"{attacker} as {wanted!r} took the session"
            assert victim.alive()
        assert b"offline" not in [m.payload for m in seen.messages[:-1]]

    def test_taken_over_session_is_a_warning(
        self, broker: Broker, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Two processes sharing one user push each other off; the one pushed off warns,
        naming the user and what a repeated loss means."""
        caplog.set_level(logging.INFO, logger="bridge.mqttclient")
        with watched(broker, "collector", "se3-first") as first:
            with mqtt_client(broker, "collector", client_id="se3-second"):
                wait_until(lambda: first.disconnects > 0, what="the first to be pushed off")
            wait_until(lambda: any(r.levelno == logging.WARNING for r in caplog.records),
                       what="a warning")
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        # mosquitto 2.0.11 gives no reason code (0x8E) when it closes the old session
        assert any("takes the session over" in w and "'collector'" in w for w in warnings), warnings
