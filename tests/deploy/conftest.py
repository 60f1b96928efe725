"""The deployment test runs only from `make test-deploy` (it boots a container, as root).

In `make test` its tests are collected and skipped with that message, so the
suite shows where they are. `make test-deploy` sets SE3_TEST_DEPLOY=1. Times
measured along the way (`TIMINGS`) are printed at the end of the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV_FLAG = "SE3_TEST_DEPLOY"
TIMINGS: dict[str, float] = {}
_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wanted = os.environ.get(ENV_FLAG) == "1"
    skip = pytest.mark.skip(reason="deployment test: run `make test-deploy` (boots a container)")
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.deploy)
            if not wanted:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("deployment timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what:<44} {seconds:6.1f} s")
