"""deploy/README.md stays something the deployment test can follow (checked in `make test`)."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.readme import install_steps, recorded_exposure

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
UNITS = sorted(p.name for p in (REPO / "deploy" / "systemd").glob("*.service"))


class TestDeployReadme:
    def test_install_block_installs_and_enables_the_core_units(self) -> None:
        """The Install block runs install.sh and enables every unit but the receiver."""
        steps = install_steps(README)
        assert any(step.endswith("deploy/install.sh") for step in steps), steps
        enable = next(step for step in steps if "systemctl enable --now" in step)
        for unit in UNITS:
            assert (unit.removesuffix(".service") in enable.split()) == (
                unit != "se3-receiver.service"), (unit, enable)

    def test_every_unit_has_its_recorded_exposure(self) -> None:
        """The security table names each unit of deploy/systemd once, with a level."""
        recorded = recorded_exposure(README)
        assert sorted(recorded) == UNITS
        assert all(0 <= level <= 10 for level in recorded.values())
