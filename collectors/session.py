"""The collectors' side of the broker: client ids, one-shot sessions, confirmed publishes.

The long-running collectors use `bridge.mqttclient.Connection` as it is (last
will `offline`, `online` after each connect). The one-shot commands
(`--once`, `publish`) open a `Connection` with no status topic and no will,
because they are not a publisher whose death the bridge should hear about: a
finished `devices --once` must not mark a running collector's devices offline.
Their records carry a `ttl` and expire on their own instead.

One-shot failures are `BrokerError` (exit 1) with a message that names the
broker and says what did not happen.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt

from bridge.config import MqttSection
from bridge.errors import BrokerError
from bridge.mqttclient import Connection
from bridge.reach import wait_connected

logger = logging.getLogger(__name__)


def client_id(name: str, sn: str = "") -> str:
    """The MQTT client id of a collector run.

    The long-running collector of a gateway (`sn` given) has a fixed id: when it
    is restarted beside a hung or half-open old one it takes over the old
    session at once, so the old connection's last will (`offline`) cannot land
    after the new `online` and turn its devices offline for good. One-shot runs
    get an id unique to the process, so they never take over the running
    collector's session.
    """
    return f"se3-collector-{name}-{sn}" if sn else f"se3-collector-{name}-{os.getpid()}"


def connect_once(
    settings: MqttSection, name: str, timeout: float, mqtt5: bool = True,
    before_start: Callable[[Connection], None] | None = None,
) -> Connection:
    """A connected Connection without status topic, or BrokerError saying why not.

    A refused or unreachable broker and refused credentials are told at once
    (`bridge.reach`); `before_start(conn)` installs callbacks and hooks first.
    """
    conn = Connection(settings, client_id(name), mqtt5=mqtt5)
    if before_start is not None:
        before_start(conn)
    conn.start()
    try:
        wait_connected(conn, timeout)
    except BrokerError:
        conn.close()
        raise
    return conn


def wait_published(infos: Iterable[mqtt.MQTTMessageInfo], timeout: float) -> None:
    """Wait until the broker has acknowledged every message, or raise BrokerError."""
    deadline = time.monotonic() + timeout
    for info in infos:
        try:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        except (RuntimeError, ValueError) as exc:
            raise BrokerError(f"publish failed: {exc}") from exc
        if not info.is_published():
            raise BrokerError(f"the broker did not acknowledge a publish within {timeout:g} s")
