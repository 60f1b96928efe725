"""Shared test helpers: MQTT clients by role, message collectors, polling with a deadline.

The helpers are plain functions, imported where needed::

    from tests.conftest import collect, mqtt_client, publish_and_wait, wait_until

They take any object with `host`, `port` and `password(role)` (the `broker`
fixture of `tests/integration/conftest.py` is one). Nothing here sleeps for a
fixed time: waits end on an event, or on a condition polled up to a deadline.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bridge.config import ENV_CONFIG, ENV_MQTT_PASSWORD_FILE, ENV_MQTT_USERNAME


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's SE3_* settings; tests set what they need."""
    for name in (ENV_CONFIG, ENV_MQTT_USERNAME, ENV_MQTT_PASSWORD_FILE):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Entry points set up the root logger; put it back for the other tests.

    For every test: a handler left on a stream pytest has since closed makes each
    later log line (a thread of an earlier test, a listener in a later one) print
    "--- Logging error ---" with a traceback, which tests of quiet logs catch."""
    root = logging.getLogger()
    urllib3 = logging.getLogger("urllib3")
    handlers, level, u_level = root.handlers[:], root.level, urllib3.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    urllib3.setLevel(u_level)


class BrokerLike(Protocol):
    host: str
    port: int

    def password(self, role: str) -> str: ...


def wait_until(
    condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> None:
    """Poll `condition` until it is truthy; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")


class Collected:
    """Messages received by one subscription, in arrival order, safe across threads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._messages: list[Message] = []

    def add(self, message: Message) -> None:
        # Called on paho's network thread: append and notify, nothing that blocks.
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    @property
    def messages(self) -> list[Message]:
        """A copy of what arrived so far."""
        with self._cond:
            return list(self._messages)

    def topics(self) -> set[str]:
        return {m.topic for m in self.messages}

    def wait_for(
        self, predicate: Callable[[list[Message]], object], timeout: float = 10.0
    ) -> list[Message]:
        """Wait until `predicate(all messages so far)` is truthy; return those messages."""
        with self._cond:
            if self._cond.wait_for(lambda: predicate(self._messages), timeout):
                return list(self._messages)
            tail = [f"{m.topic} {m.payload[:60]!r}" for m in self._messages[-10:]]
            count = len(self._messages)
        raise AssertionError(f"timed out after {timeout}s; {count} messages, last: {tail}")

    def wait_for_message(
        self, match: Callable[[Message], object], timeout: float = 10.0
    ) -> Message:
        """Wait for the first message for which `match(message)` is truthy, and return it."""
        found = self.wait_for(lambda msgs: any(match(m) for m in msgs), timeout)
        return next(m for m in found if match(m))

    def wait_for_topic(self, topic: str, timeout: float = 10.0) -> Message:
        return self.wait_for_message(lambda m: m.topic == topic, timeout)


@contextmanager
def mqtt_client(
    broker: BrokerLike,
    role: str | None,
    *,
    password: str | None = None,
    client_id: str = "",
    timeout: float = 10.0,
) -> Iterator[mqtt.Client]:
    """A connected paho client (VERSION2 callbacks, MQTT 3.1.1) logged in as `role`.

    `role=None` connects anonymously; `password` overrides the role's own.
    A refused connection raises ConnectionRefusedError with the reason.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"se3-test-{role or 'anonymous'}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )
    if role is not None:
        client.username_pw_set(role, password if password is not None else broker.password(role))
    answered = threading.Event()
    reasons: list[Any] = []

    def on_connect(_c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        reasons.append(reason)
        answered.set()

    client.on_connect = on_connect
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        if not answered.wait(timeout):
            raise TimeoutError(f"no CONNACK from {broker.host}:{broker.port} in {timeout}s")
        if reasons[0].is_failure:
            raise ConnectionRefusedError(f"broker refused {role or 'anonymous'}: {reasons[0]}")
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_and_wait(
    client: mqtt.Client,
    topic: str,
    payload: bytes | str,
    *,
    qos: int = 1,
    retain: bool = False,
    timeout: float = 10.0,
) -> mqtt.MQTTMessageInfo:
    """Publish and wait for the broker's PUBACK (QoS 1): the broker has processed it."""
    info = client.publish(topic, payload, qos=qos, retain=retain)
    info.wait_for_publish(timeout)
    if not info.is_published():
        raise TimeoutError(f"publish to {topic} not acknowledged in {timeout}s")
    return info


@contextmanager
def collect(
    broker: BrokerLike,
    topic_filter: str,
    *,
    role: str = "debug",
    qos: int = 1,
    timeout: float = 10.0,
) -> Iterator[Collected]:
    """Subscribe to `topic_filter` as `role`; yield the growing `Collected` after the SUBACK.

    Anything published after entering the block is seen (if the ACL lets `role` read it).
    """
    collected = Collected()
    subscribed = threading.Event()
    granted: list[Any] = []

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        collected.add(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos))

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        granted.extend(codes)
        subscribed.set()

    with mqtt_client(broker, role, timeout=timeout) as client:
        client.on_message = on_message
        client.on_subscribe = on_subscribe
        client.subscribe(topic_filter, qos=qos)
        if not subscribed.wait(timeout):
            raise TimeoutError(f"no SUBACK for {topic_filter} in {timeout}s")
        if granted[0].is_failure:
            raise PermissionError(f"subscription to {topic_filter} as {role}: {granted[0]}")
        yield collected


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Whether the other side closes `sock` within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
