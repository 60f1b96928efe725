"""The command-line options every program takes (README, the programs).

`--version` prints the program's name and the project's version. `--config PATH`,
`--log-level` and `--log-json` are accepted before and after
a subcommand alike (`se3-bridge --config x run` and `se3-bridge run --config x`),
so scripts and unit files need not know where a program's subcommand begins.
"""

from __future__ import annotations

import argparse

from bridge.logs import LEVELS


def version() -> str:
    """The installed project's version (`--version` of every program)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("se3-bridge")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def add_common(parser: argparse.ArgumentParser, *, subcommand: bool = False) -> None:
    """Add the shared options to `parser` (`subcommand`: a parser below the program's)."""

    # On a subcommand, an option not given leaves no default behind, so it
    # cannot hide the same option given before the subcommand.
    def default(value: object) -> object:
        return argparse.SUPPRESS if subcommand else value

    if not subcommand:
        parser.add_argument("--version", action="version",
                            version=f"%(prog)s {version()}")

    parser.add_argument(
        "--config", metavar="PATH", default=default(None), help="config file (else $SE3_CONFIG)"
    )
    parser.add_argument(
        "--log-level", type=str.upper, choices=LEVELS, default=default("INFO"),
        help="log threshold (default INFO)",
    )
    parser.add_argument(
        "--log-json", action="store_true", default=default(False),
        help="one JSON object per log line",
    )
