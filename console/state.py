"""What the console holds: its config, the view of the broker, the publisher, the
admin password, the login throttle, the sessions in force and the key that signs
session cookies. Both listeners' apps share one, so a login, a password change or
a throttle on one holds on the other. Reached in a request with `state()`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flask import current_app

from bridge.addresses import canonical_ip
from bridge.config import Config
from bridge.topics import Kind, Topics
from console.calls import Change
from console.errors import CONFLICT, NOT_FOUND, ApiError, PublishError, param_error
from console.password import Password
from console.present import InForce, in_force, page_model, stale
from console.sessions import Sessions
from console.throttle import LoginThrottle
from console.view import View

EXTENSION = "se3_console"


class Publisher(Protocol):
    """What the console needs of the broker (console.broker.BrokerLink; fakes in tests)."""

    def publish(self, topic: str, payload: str, retain: bool) -> None: ...

    def is_connected(self) -> bool: ...


@dataclass
class ConsoleState:
    config: Config
    view: View
    publisher: Publisher
    password: Password
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    sessions: Sessions = field(default_factory=Sessions)
    clock: Callable[[], float] = time.time
    # Made at start (a restart logs everyone out); one for both listeners' cookies.
    secret_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def sn(self) -> str:
        return self.config.gateway.serial()

    def config_topic(self, setting: str) -> str:
        """The topic of `setting` (ValueError unless the bridge's topics have it)."""
        kind = Kind(f"config/{setting}")
        return f"{Topics(self.config.mqtt.topic_prefix, self.sn).base}/{kind.value}"

    def publish(self, changes: Sequence[Change]) -> None:
        """Publish each change (retained, QoS 1, acknowledged); stop at the first the
        broker does not take, and say what was done before it."""
        done: list[str] = []
        for change in changes:
            try:
                self.publisher.publish(self.config_topic(change.setting), change.value,
                                       retain=True)
            except PublishError as exc:
                if done:
                    exc.message += f" (already applied: {', '.join(done)})"
                raise
            done.append(change.setting)

    def remove_device(self, ip: str) -> str:
        """Delete the retained record of stale device `ip` where its publisher left it (an
        empty retained message, QoS 1, acknowledged); the topic. ApiError 404 without
        such a record, 409 while its publisher is online (it would publish it again);
        PublishError when the broker does not take the deletion."""
        try:
            ip = canonical_ip(ip)
        except ValueError as exc:
            raise param_error("ip", str(exc)) from None
        snap = self.view.snapshot()
        why = stale(snap, ip, self.clock())
        if why is None:
            raise ApiError(404, NOT_FOUND, f"no device record for {ip}")
        if not why:
            source = snap.devices[ip].data.get("source")
            raise ApiError(409, CONFLICT, f"device {ip} is not stale: its publisher {source} is "
                                          f"online and would publish it again; stop that first")
        topics = Topics(self.config.mqtt.topic_prefix, self.sn)
        owner = snap.owners.get(ip, "")
        topic = topics.app_device_state(owner, ip) if owner else topics.device_state(ip)
        self.publisher.publish(topic, "", retain=True)
        return topic

    def in_force(self) -> InForce:
        return in_force(self.view.snapshot(), self.config)

    def request_report(self) -> None:
        """Ask the bridge for a report now: a command topic, never retained."""
        self.publisher.publish(self.config_topic("report_now"), f"{self.clock():.3f}",
                               retain=False)

    def model(self) -> dict[str, object]:
        return page_model(self.view.snapshot(), self.config, self.sn, self.clock(),
                          self.publisher.is_connected())


def state() -> ConsoleState:
    """The state of the app serving the current request."""
    found = current_app.extensions[EXTENSION]
    if not isinstance(found, ConsoleState):
        raise LookupError("not an app made by console.app.create_app")
    return found
