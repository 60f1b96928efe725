"""`se3-receiver`: the reference platform's entry point (docs/protocol.md, the reference platform).

Parses the flags, sets up logging, serves until SIGTERM or SIGINT and exits 0;
the only place in the package that exits. It listens on loopback unless told
`--allow-remote`, because it is a development tool that accepts anything.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType

from bridge.config import ENV_CONFIG, ReceiverSection, load_config
from bridge.errors import ConfigError
from bridge.options import add_common, configuration_error, run_program
from receiver.app import create_app, state_of
from receiver.login import LoginSettings
from receiver.releases import RELEASE_NAMES, release
from receiver.server import ReceiverServer
from receiver.tables import FORMAT_NAMES

logger = logging.getLogger(__name__)

PROG = "se3-receiver"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # any other name: we do not resolve it to find out


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """The command line over the `[receiver]` section of the config file, if one is named
    (`--config`, else $SE3_CONFIG); exits 2 with a message on a bad one, as `main` does."""
    parser = _parser()
    try:
        return _settled(parser, parser.parse_args(argv),
                        os.environ if environ is None else environ)
    except ConfigError as exc:
        raise SystemExit(configuration_error(PROG, exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Reference platform: accepts status reports at /DeviceStatus, "
        "checks them against their format's table and shows them on a live page. "
        "Options not given come from [receiver] in the config file, else the defaults.",
    )
    add = parser.add_argument
    add("--host", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, help="port, 0 for a free one (default 9528)")
    add("--allow-remote", action="store_true", help="allow a --host that is not loopback")
    add("--strict", action=argparse.BooleanOptionalAction,
        help="answer 422 to a non-conforming report (default: accept and show it)")
    add("--faults", action="store_true", help="serve /api/faults to inject failures")
    add("--require-token", action="store_true",
        help="answer 401 to a report without ?token=...&dev_sno=... of its dev_sno's latest "
        "login (each login issues a new token)")
    add("--grace", type=float, default=0.0, metavar="S",
        help="after SIGTERM/SIGINT, serve S s more (a second signal ends it), so a bridge "
        "stopped at the same moment still delivers its last report (default 0)")
    add("--release", choices=RELEASE_NAMES,
        help="the platform release to play: its login variant, report paths and tables "
        "(default V2R2C01, the seed; docs/protocol.md)")
    add("--format", choices=FORMAT_NAMES,
        help="check the (gateway) report against this format of the release instead of its "
        "own (e.g. v2 for V2R1C01, F3 for V2R6C01)")
    add("--keep", type=_positive, help="reports kept in memory (default 200)")
    add("--login-address",
        help="report URL(s) the login answers, comma-separated (default: the release's path)")
    add("--login-devices-address",
        help="sub-device report URL(s) a V6 login answers (default: the release's path)")
    add("--login-period", type=_positive, help="report period the login answers (default 20)")
    add(
        "--login-new-names",
        action="store_true",
        help="answer device_monitor_url/_report_period, not deviceMonitorAddr/Period",
    )
    add_common(parser)
    return parser


def _settled(parser: argparse.ArgumentParser, args: argparse.Namespace,
             environ: Mapping[str, str]) -> argparse.Namespace:
    """`args` with what they leave out from the config file's `[receiver]`, checked
    together: ConfigError for a bad file, the usage and exit 2 for bad flags."""
    settings = _file_settings(args.config, environ)
    for key in ("host", "port", "strict", "release", "format", "keep", "login_address",
                "login_devices_address", "login_period"):
        if getattr(args, key) is None:
            setattr(args, key, getattr(settings, key))
    try:
        offered = release(args.release).gateway.formats
    except ValueError as exc:
        raise ConfigError(f"{exc} (--release or receiver.release)") from None
    if args.format is not None and args.format not in offered:
        parser.error(f"release {args.release} reports in {', '.join(offered)}, not "
                     f"{args.format} (--format or receiver.format)")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    if not 0 <= args.grace <= 60:
        parser.error("--grace must be from 0 to 60 seconds")
    if not args.allow_remote and not _is_loopback(args.host):
        parser.error(
            f"host {args.host} (--host or receiver.host) is not a loopback address; "
            "add --allow-remote to serve it"
        )
    return args


def _file_settings(path: str | None, environ: Mapping[str, str]) -> ReceiverSection:
    chosen = path or environ.get(ENV_CONFIG)
    return load_config(chosen).receiver if chosen else ReceiverSection()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 on a clean stop, 1 if the port cannot be bound."""
    parser = _parser()
    return run_program(PROG, parser, argv, _serve,
                       lambda args: _settled(parser, args, os.environ))


def _serve(_given: argparse.Namespace, args: argparse.Namespace) -> int:
    if args.log_level != "DEBUG":
        # werkzeug logs every request at INFO, and the page polls every second.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    login = LoginSettings(args.login_address, args.login_period, args.login_new_names,
                          args.login_devices_address)
    app = create_app(
        strict=args.strict, login=login, keep=args.keep, faults=args.faults, fmt=args.format,
        require_token=args.require_token, release_name=args.release,
    )
    state = state_of(app)
    stop, again = threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        if stop.is_set():
            again.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = ReceiverServer(app, args.host, args.port)
    try:
        server.start()
    except OSError as exc:
        logger.error("cannot listen on %s port %d: %s", args.host, args.port, exc.strerror)
        return 1
    logger.info(
        "release=%s (login %s; %s) strict=%s faults=%s require_token=%s; login answers %s "
        "every %d s; page at %s/",
        args.release,
        state.release.login,
        "; ".join(f"{r.formats[0]} at {', '.join(r.paths)}" for r in state.release.routes),
        args.strict,
        args.faults,
        args.require_token,
        ", ".join(a for a in (state.login.address, state.login.devices_address) if a),
        state.login.period,
        server.url,
    )
    # Timed waits: a signal that lands on the server's thread only sets a flag, and
    # the handler runs on this thread when it next wakes; an untimed wait may never.
    while not stop.wait(0.25):
        pass
    if args.grace > 0:
        logger.info("serving %g s more for clients stopping too", args.grace)
        again.wait(args.grace)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
