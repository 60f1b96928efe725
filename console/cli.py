"""`se3-console`: the entry point, and the only place that exits.

    se3-console [--config PATH] [--listen HOST:PORT] [run]    serve until SIGTERM/SIGINT
    se3-console [--config PATH] password-file                  make the password file if
                                                               missing; print its path

Exit codes: 0 done, 1 could not start (address taken, password file), 2 bad
configuration or usage.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from bridge.config import Config, load_config
from bridge.errors import ConfigError
from bridge.logs import setup_logging
from bridge.options import add_common
from bridge.topics import Topics
from console.app import create_app
from console.broker import BrokerLink
from console.password import Password, PasswordError, ensure_password_file, read_password
from console.server import ConsoleServer, parse_listen
from console.state import ConsoleState
from console.view import View

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="se3-console", description="The box's configuration API and web console."
    )
    add_common(parser)
    parser.add_argument("--listen", metavar="HOST:PORT", help="override console.listen")
    sub = parser.add_subparsers(dest="command")
    for name, text in (("run", "serve the API and the console (the default)"),
                       ("password-file", "make the admin password file if missing; "
                                         "print its path")):
        add_common(sub.add_parser(name, help=text, description=text), subcommand=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_json)
    try:
        config = load_config(args.config)
        config.require("gateway.sn")
        config.gateway.serial()
        if args.command != "password-file":
            config.mqtt.password()
        listen = parse_listen(args.listen or config.console.listen)
    except ConfigError as exc:
        print(f"se3-console: configuration error: {exc}", file=sys.stderr)
        return 2
    except ValueError:
        print(f"se3-console: --listen {args.listen!r}: must be HOST:PORT", file=sys.stderr)
        return 2
    try:
        path = ensure_password_file(config.console.password_file)
        password = Password(read_password(path))
    except PasswordError as exc:
        print(f"se3-console: console.password_file: {exc}", file=sys.stderr)
        return 1
    if args.command == "password-file":
        print(path)
        return 0
    return _run(config, password, listen)


def _run(config: Config, password: Password, listen: tuple[str, int]) -> int:
    base = Topics(config.mqtt.topic_prefix, config.gateway.serial()).base
    view = View(base, config.bridge.max_devices, config.bridge.max_payload)
    link = BrokerLink(config.mqtt, base, view.apply)
    app = create_app(ConsoleState(config, view, link, password))
    server = ConsoleServer(app, *listen)
    try:
        server.start()
    except OSError as exc:
        logger.error("cannot listen on %s:%s: %s", listen[0], listen[1], exc.strerror or exc)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    link.start()
    print(f"se3-console: {server.url}/ (user admin, password in "
          f"{config.console.password_file})", file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        link.close()
    return 0
