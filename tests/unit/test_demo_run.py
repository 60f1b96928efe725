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


class TestMakefile:
    @staticmethod
    def rules() -> dict[str, str]:
        """Each rule's line and recipe, by target, from the repository's Makefile."""
        text = (Path(__file__).parents[2] / "Makefile").read_text(encoding="utf-8")
        found: dict[str, str] = {}
        for block in text.split("\n\n"):
            for line in block.splitlines():
                if ":" in line and not line.startswith(("\t", "#", " ")) and "=" not in line:
                    target = line.split(":", 1)[0].strip()
                    found[target] = block[block.index(line):]
        return found

    def test_run_installs_the_runtime_dependencies_only(self) -> None:
        """`make run` needs `venv` (pip install -e .), never the dev extras."""
        rules = self.rules()
        assert "pip install -e .\n" in rules["$(STAMP)"] + "\n"
        assert "[dev]" not in rules["$(STAMP)"]
        run = rules["run"].splitlines()[0]
        assert "venv" in run.split()
        assert "dev-venv" not in run
        assert "demo.run" in rules["run"]

    def test_test_adds_the_dev_extras(self) -> None:
        """`make test` (and lint) build on `dev-venv`, which installs '.[dev]'."""
        rules = self.rules()
        assert "dev-venv" in rules["test"].splitlines()[0]
        assert "'.[dev]'" in rules["$(DEV_STAMP)"]
