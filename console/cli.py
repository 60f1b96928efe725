"""`se3-console`: the entry point, and the only place that exits.

    se3-console [--config PATH] [--listen HOST:PORT] [--system-listen HOST:PORT] [run]
                                                               serve until SIGTERM/SIGINT
    se3-console [--config PATH] password-file                  make the password file if
                                                               missing; print its path

It serves two listeners, as the vendor's boxes do: the "face" service on
`[console] listen` (the page, the SE3 calls, the config and face calls) and the
"system" service on `[console] system_listen` (the monitor calls). Both share
one password, one throttle and one set of sessions.

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

from bridge.certificate import CertificateError
from bridge.config import Config
from bridge.options import add_common, gateway_config, run_program
from console.app import Service, create_app
from console.broker import BrokerLink
from console.password import Password, PasswordError, ensure_password_file, read_password
from console.server import ConsoleServer, parse_listen
from console.state import ConsoleState
from console.tls import server_context
from console.view import View

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="se3-console", description="The box's configuration API and web console."
    )
    add_common(parser)
    parser.add_argument("--listen", metavar="HOST:PORT", help="override console.listen")
    parser.add_argument("--system-listen", metavar="HOST:PORT",
                        help="override console.system_listen")
    sub = parser.add_subparsers(dest="command")
    for name, text in (("run", "serve the API and the console (the default)"),
                       ("password-file", "make the admin password file if missing; "
                                         "print its path")):
        add_common(sub.add_parser(name, help=text, description=text), subcommand=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_program("se3-console", _parser(), argv, _command, lambda args: gateway_config(
        args, broker=args.command != "password-file"))


def _command(args: argparse.Namespace, config: Config) -> int:
    listens: dict[Service, tuple[str, int]] = {}
    options: tuple[tuple[Service, str, str | None, str], ...] = (
        ("face", "--listen", args.listen, config.console.listen),
        ("system", "--system-listen", args.system_listen, config.console.system_listen))
    for service, flag, given, configured in options:
        try:
            listens[service] = parse_listen(given or configured)
        except ValueError:
            print(f"se3-console: {flag} {given!r}: must be HOST:PORT", file=sys.stderr)
            return 2
    try:
        path = ensure_password_file(config.console.password_file)
        password = Password(read_password(path), store=path)
    except PasswordError as exc:
        print(f"se3-console: console.password_file: {exc}", file=sys.stderr)
        return 1
    if args.command == "password-file":
        print(path)
        return 0
    return _run(config, password, listens)


def _run(config: Config, password: Password, listens: dict[Service, tuple[str, int]]) -> int:
    view = View.of(config)
    link = BrokerLink(config.mqtt, view.base, view.apply)
    state = ConsoleState(config, view, link, password)
    servers: list[ConsoleServer] = []
    for service, (host, port) in listens.items():
        try:
            tls = server_context(config.console, host)
        except CertificateError as exc:
            logger.error("%s", exc)
            for started in servers:
                started.stop()
            return 1
        server = ConsoleServer(create_app(state, service), host, port, name=service, tls=tls)
        try:
            server.start()
        except OSError as exc:
            logger.error("cannot listen on %s:%s (%s service): %s", host, port, service,
                         exc.strerror or exc)
            for started in servers:
                started.stop()
            return 1
        servers.append(server)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    link.start()
    print(f"se3-console: {servers[0].url}/ (user admin, password in "
          f"{config.console.password_file}); system service {servers[1].url}",
          file=sys.stderr, flush=True)
    try:
        stop.wait()
    finally:
        for server in servers:
            server.stop()
        link.close()
    return 0
