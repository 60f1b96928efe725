"""Fixtures the console's unit tests share: a fake publisher, a view of the test
gateway's topics and a settable clock (tests/unit/console_kit.py)."""

from __future__ import annotations

import pytest

from console.view import View
from tests.unit.console_kit import BASE, Clock, FakePublisher


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def view() -> View:
    return View(BASE)


@pytest.fixture
def clock() -> Clock:
    return Clock()
