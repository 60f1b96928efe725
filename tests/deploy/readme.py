"""What deploy/README.md tells a user, read the way the deployment test follows it."""

from __future__ import annotations

import re


def section_steps(readme: str, title: str) -> list[str]:
    """The command lines of the first ```sh block of the README's '## TITLE' section."""
    section = readme.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]


def install_steps(readme: str) -> list[str]:
    """The lines of the Install block."""
    return section_steps(readme, "Install")


def recorded_exposure(readme: str) -> dict[str, float]:
    """{unit: exposure} from the README's table of `systemd-analyze security` results."""
    rows = re.findall(r"^\| `(se3-[a-z-]+\.service)` \| (\d+\.\d) ", readme, re.M)
    return {unit: float(level) for unit, level in rows}
