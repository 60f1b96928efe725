"""The command-line options every program takes (README, the programs), and the start
every program makes.

`--version` prints the program's name and the project's version. `--config PATH`,
`--log-level` and `--log-json` are accepted before and after
a subcommand alike (`se3-bridge --config x run` and `se3-bridge run --config x`),
so scripts and unit files need not know where a program's subcommand begins.

`run_program` is every program's `main`: parse the arguments (a bad one: the
usage and exit 2), set up logging, load the config (a bad one: `PROG:
configuration error: ...` and exit 2, without the usage), then the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from bridge.config import Config, load_config
from bridge.errors import ConfigError
from bridge.logs import LEVELS, setup_logging

_Loaded = TypeVar("_Loaded")


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


def run_program(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                command: Callable[[argparse.Namespace, _Loaded], int],
                load: Callable[[argparse.Namespace], _Loaded]) -> int:
    """Parse `argv`, set up logging, `load(args)` the configuration, run `command(args,
    loaded)`; its exit code, or 2 (said as `configuration_error` does) when the
    configuration is bad."""
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_json)
    try:
        loaded = load(args)
    except ConfigError as exc:
        return configuration_error(prog, exc)
    return command(args, loaded)


def configuration_error(prog: str, exc: ConfigError) -> int:
    """`PROG: configuration error: ...` on stderr; exit code 2."""
    print(f"{prog}: configuration error: {exc}", file=sys.stderr)
    return 2


def gateway_config(args: argparse.Namespace, *, broker: bool = True) -> Config:
    """The config file `--config` (else $SE3_CONFIG) names, with the gateway's serial and,
    for a program that connects (`broker`), the broker password readable now."""
    config = load_config(args.config)
    config.require("gateway.sn")
    config.gateway.serial()
    if broker:
        config.mqtt.password()
    return config
