"""The `boot` part of `X-Report-Id`: new at every start, even on a box without a clock."""

from __future__ import annotations

import re
import time

import pytest

from bridge.service import boot_id


class TestBootId:
    def test_short_hex_of_64_bits(self) -> None:
        """A boot id is 16 lower-case hex digits: 64 bits, nothing else."""
        assert re.fullmatch(r"[0-9a-f]{16}", boot_id())

    def test_same_start_time_never_repeats(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A box without an RTC starts at the same second every boot: ids still differ.

        With the start second plus 16 random bits, 2,000 boots at the same time
        repeat an id almost surely (about 30 expected collisions).
        """
        monkeypatch.setattr(time, "time", lambda: 1_000_000_000.0)

        ids = {boot_id() for _ in range(2000)}

        assert len(ids) == 2000
