"""`se3-bridge`: the entry point, and the only place that exits.

    se3-bridge [--config PATH] run | snapshot | check | status [--json] [--wait S]

(`--config`, `--log-level` and `--log-json` go before or after the command.)

Exit codes: 0 done, 1 could not do it (e.g. no state on the broker; for
`status`: the bridge is not online or a target's last delivery failed), 2 bad
configuration or usage; `status` only: 3 nothing wrong seen, but a target's
delivery was not seen yet (watched less than a report period).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from bridge.config import Config
from bridge.errors import BrokerError
from bridge.options import add_common, gateway_config, run_program

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="se3-bridge", description="Report SE3 gateway and sub-device state to the platform."
    )
    add_common(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        made = sub.add_parser(name, help=text, description=text)
        add_common(made, subcommand=True)
        return made

    command("run", "the bridge service")
    snap = command("snapshot", "print the report that would be sent now; send nothing")
    snap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker")
    command("check", "validate the config and exit")
    status = command("status", "summarize the bridge's state and its last deliveries")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.add_argument("--wait", type=float, metavar="SECONDS",
                        help="how long to watch for report events (default: interval + 5)")
    status.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the broker")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_program("se3-bridge", _parser(), argv, _command, gateway_config)


def _command(args: argparse.Namespace, config: Config) -> int:
    if args.command == "check":
        return _check(config)
    if args.command == "snapshot":
        return _snapshot(config, args.timeout)
    if args.command == "status":
        return _status(config, args.wait, args.timeout, args.json)
    return _run(config)


def _check(config: Config) -> int:
    from bridge.urltext import redact

    platform = config.platform
    chosen = platform.platform_release
    urls = ", ".join(map(redact, platform.report_url)) or "(none: login or config topic)"
    line = (f"config OK: gateway {config.gateway.serial()}, broker "
            f"{config.mqtt.host}:{config.mqtt.port}, release {chosen.name} "
            f"({platform.gateway_format}), report to {urls}")
    if chosen.devices is not None:
        devices = ", ".join(map(redact, platform.devices_report_url)) or \
            "(none: login or config topic)"
        line += f"; sub-device report ({chosen.devices}) to {devices}"
    print(line)
    return 0


def _snapshot(config: Config, timeout: float) -> int:
    from bridge.report import pretty
    from bridge.service import Bridge  # imported by the commands that run it: `check` stays lean

    try:
        report = Bridge(config, announce=False).snapshot(timeout)
    except BrokerError as exc:
        print(f"se3-bridge: {exc}", file=sys.stderr)
        return 1
    if report is None:
        print("se3-bridge: no gateway info on the broker (is the gateway collector running?)",
              file=sys.stderr)
        return 1
    print(pretty(report))
    return 0


def _status(config: Config, wait: float | None, timeout: float, as_json: bool) -> int:
    # only for this command: lean start of the service
    from bridge import status, statustext

    reader = status.StatusReader(config)
    try:
        try:
            reader.open(timeout)
        except BrokerError as exc:
            print(f"se3-bridge: {exc}", file=sys.stderr)
            return 1
        watch = status.default_wait(config, reader.period()) if wait is None else wait
        if not as_json:
            # What is known now, at once; then what we wait for, and only then wait.
            print(statustext.format_state(reader.summary()), flush=True)
            print(statustext.format_console(config.console), flush=True)
            if reader.will_watch():
                print(f"  ...         waiting up to {watch:g} s for a delivery attempt to each "
                      f"target (the bridge reports every {reader.period():g} s)", flush=True)
        reader.watch(watch)
    finally:
        reader.close()
    found = reader.summary()
    if as_json:
        print(statustext.format_json(found, statustext.console_listeners(config.console)))
    else:
        print(statustext.format_outcome(found))
    return found.exit_code


def _run(config: Config) -> int:
    from bridge.service import Bridge

    bridge = Bridge(config)
    metrics = None
    if config.bridge.metrics_listen:
        from bridge.metrics import serve as serve_metrics  # only when asked: lean start

        try:
            metrics = serve_metrics(bridge.stats, bridge.conn.connected.is_set,
                                    config.bridge.metrics_listen)
        except OSError as exc:
            print(f"se3-bridge: cannot listen on {config.bridge.metrics_listen} for metrics: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 1

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s: shutting down", signal.Signals(signum).name)
        bridge.stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    logger.info("se3-bridge starting for gateway %s (boot %s)", bridge.sn, bridge.boot)
    try:
        bridge.run()
    finally:
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()
    logger.info("se3-bridge stopped")
    return 0
