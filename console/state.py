"""What one console app holds: its config, the view of the broker, the publisher,
the admin password, the login throttle and the sessions in force. Reached in a
request with `state()`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from flask import current_app

from bridge.config import Config
from bridge.topics import Topics
from console.password import Password
from console.present import page_model
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

    @property
    def sn(self) -> str:
        return self.config.gateway.serial()

    def config_topic(self, setting: str) -> str:
        return f"{Topics(self.config.mqtt.topic_prefix, self.sn).base}/config/{setting}"

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
