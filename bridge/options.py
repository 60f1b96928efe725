"""The command-line options every program takes (README, the programs).

`--config PATH`, `--log-level` and `--log-json` are accepted before and after
a subcommand alike (`se3-bridge --config x run` and `se3-bridge run --config x`),
so scripts and unit files need not know where a program's subcommand begins.
"""

from __future__ import annotations

import argparse

from bridge.logs import LEVELS


def add_common(parser: argparse.ArgumentParser, *, subcommand: bool = False) -> None:
    """Add the shared options to `parser` (`subcommand`: a parser below the program's)."""

    # On a subcommand, an option not given leaves no default behind, so it
    # cannot hide the same option given before the subcommand.
    def default(value: object) -> object:
        return argparse.SUPPRESS if subcommand else value

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
