"""The documents never put a broker password on a command line: while the command
runs, any local user reads its arguments in /proc/PID/cmdline. They use the
option files made by `python -m demo.broker setup` instead."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_MOSQUITTO_CLIENT = re.compile(r"\bmosquitto_(sub|pub|rr)\b")
_PASSWORD_ARG = re.compile(r"\s(-P|--pw)\s")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_password_on_a_mosquitto_command_line(doc: Path) -> None:
    bad = [f"{doc.name}:{n}: {line.strip()}"
           for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
           if _MOSQUITTO_CLIENT.search(line) and _PASSWORD_ARG.search(line)]
    assert bad == []
