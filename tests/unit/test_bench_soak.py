"""The soak's own arithmetic: slopes and the final-state comparison."""

from __future__ import annotations

import pytest

from bench.soak import differences, slope_per_hour


class TestSlope:
    def test_a_line_gives_its_slope_per_hour(self) -> None:
        """Points on v = 2 + 0.01 t give 36 per hour."""
        assert slope_per_hour([(t, 2 + 0.01 * t) for t in range(0, 100, 5)]) == pytest.approx(36.0)

    def test_flat_and_short_series_give_zero(self) -> None:
        """A flat series, a single point and a zero time span have no slope."""
        assert slope_per_hour([(0, 5.0), (10, 5.0)]) == 0.0
        assert slope_per_hour([(3, 1.0)]) == 0.0
        assert slope_per_hour([(3, 1.0), (3, 2.0)]) == 0.0


class TestDifferences:
    def test_same_sets_differ_in_nothing(self) -> None:
        """Equal device sets give no line."""
        devices = {"127.10.0.1": ("online", "a")}
        assert differences(devices, dict(devices)) == []

    def test_each_kind_of_difference_is_named(self) -> None:
        """Extra, missing and changed devices each get a line naming both sides."""
        have = {"127.10.0.1": ("online", "a"), "127.10.0.2": ("offline", "b")}
        want = {"127.10.0.2": ("online", "b"), "127.10.0.3": ("online", "c")}
        assert differences(have, want) == [
            "127.10.0.1: reported, not published",
            "127.10.0.2: reported ('offline', 'b'), published ('online', 'b')",
            "127.10.0.3: published, not reported",
        ]
