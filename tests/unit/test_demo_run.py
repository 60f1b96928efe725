"""Tests for demo.run's Procfile reading: the one place the demo stack is defined."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.run import Process, ProcfileError, parse_procfile


class TestParseProcfile:
    def test_names_env_and_words(self) -> None:
        """Leading NAME=value words are the environment; the rest is split like a shell."""
        text = "# comment\n\nweb: A=1 B='x y' prog --flag 'two words'\nbroker: mosquitto -c f\n"
        assert parse_procfile(text) == [
            Process("web", {"A": "1", "B": "x y"}, ("prog", "--flag", "two words")),
            Process("broker", {}, ("mosquitto", "-c", "f")),
        ]

    @pytest.mark.parametrize("text", [
        "no colon here", "bad name: x", "web: A=1", "web: 'open", "a: x\na: y",
    ])
    def test_bad_lines_are_named(self, text: str) -> None:
        """A line that is not `name: command` is refused with its number."""
        with pytest.raises(ProcfileError, match=r"line \d"):
            parse_procfile(text)

    def test_the_shipped_procfile_reads(self) -> None:
        """The repository's Procfile parses; the broker comes first, so it stops last."""
        procfile = Path(__file__).parents[2] / "Procfile"
        processes = parse_procfile(procfile.read_text(encoding="utf-8"))
        assert processes[0].name == "broker"
        assert {"receiver", "bridge", "gateway", "devices"} <= {p.name for p in processes}
