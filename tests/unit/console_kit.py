"""The console's unit-test kit: a fake publisher (console.state.Publisher), a settable
clock, the config and the credentials the console's tests share (the fixtures that
make them are in tests/unit/conftest.py)."""

from __future__ import annotations

import base64

from bridge.config import Config, parse_config
from console.errors import PublishError

SN = "SZCCKQRAIJBAH0002"
BASE = f"se3/{SN}"
PASSWORD = "correct horse battery"
BEARER = {"Authorization": f"Bearer {PASSWORD}"}


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bool]] = []
        self.refuse: PublishError | None = None

    def publish(self, topic: str, payload: str, retain: bool) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append((topic, payload, retain))

    def is_connected(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make_config(**platform: object) -> Config:
    return parse_config({
        "gateway": {"sn": SN, "dev_sno": "FILESNO"},
        "mqtt": {"username": "operator"},
        "platform": {"report_url": "http://user:pw@127.0.0.1:9528/DeviceStatus?token=t0p",
                     **platform},
    })


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
