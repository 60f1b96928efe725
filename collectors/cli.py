"""The `se3-collector` command (README, the programs): arguments, logging, signals, exit codes.

    se3-collector [--config PATH] [--log-level L] [--log-json] gateway [--once]
    se3-collector ... devices [--once]
    se3-collector ... publish device --ip IP --status online|offline [--type T] ...
    se3-collector ... publish remove --ip IP

This is the only place that exits: 0 when done, also after SIGTERM or SIGINT;
1 when the broker failed a one-shot command or a file the config names cannot
be read yet (systemd tries again); 2 for a bad config or a refused record. A
collector runs on a worker thread while the main thread waits for it and takes
the signals; the handler only asks the collector to stop, and the
collector says `offline` on its status topic as it closes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from bridge.config import Config, load_config
from bridge.errors import BrokerError, ConfigError, NotReadyError, RecordError
from bridge.options import add_common, configuration_error, run_program
from collectors.devices import DevicesCollector
from collectors.gateway import GatewayCollector
from collectors.publish import DeviceUpdate, NoRecord, publish_device, remove_device

logger = logging.getLogger(__name__)

PROG = "se3-collector"


class Collector(Protocol):
    def run(self) -> None: ...

    def once(self, timeout: float) -> None: ...

    def stop(self) -> None: ...


def main(argv: list[str] | None = None) -> int:
    """Run the command in `argv` (default: sys.argv) and return the exit code."""
    return run_program(PROG, build_parser(), argv, _command, lambda args: load_config(args.config))


def _command(args: argparse.Namespace, config: Config) -> int:
    try:
        code: int = args.handler(config, args)
    except ConfigError as exc:  # found by the command (e.g. an unreadable password file)
        return configuration_error(PROG, exc)
    except RecordError as exc:
        print(f"{PROG}: record refused: {exc}", file=sys.stderr)
        return 2
    except (BrokerError, NotReadyError, NoRecord) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Publish the gateway's and its sub-devices' state to MQTT."
    )
    add_common(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("gateway", "the gateway collector: identity and metrics"),
        ("devices", "the sub-device collector: probes the [[devices]] registry"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        add_common(sub, subcommand=True)
        sub.add_argument("--once", action="store_true", help="publish once and exit")
        _add_timeout(sub)
        sub.set_defaults(handler=_run_collector)

    publish = commands.add_parser("publish", help="publish or delete one device record")
    add_common(publish, subcommand=True)
    what = publish.add_subparsers(dest="what", required=True, metavar="WHAT")
    device = what.add_parser("device", help="publish one device record (retained)")
    add_common(device, subcommand=True)
    device.add_argument("--ip", required=True)
    device.add_argument("--status", required=True, choices=("online", "offline"))
    device.add_argument("--type", choices=("0", "1", "2", "3", "4"), required=True,
                        help="ep_type (required)")
    device.add_argument("--location", required=True,
                        help="ep_location, a UUID in practice (required)")
    device.add_argument("--name", default="", help="ep_name")
    device.add_argument("--url", default="", help="ep_url, e.g. rtsp://IP:554/ch2")
    device.add_argument("--sw-version", default="", metavar="TEXT",
                        help="the device's software version (ep_ext_data, payload v2)")
    device.add_argument("--group-name", default="", metavar="TEXT",
                        help="the device's comparison group (ep_ext_data, payload v2)")
    device.add_argument("--ttl", type=float, metavar="S", help="seconds the record stays valid")
    device.add_argument("--source", metavar="NAME", help="the publisher (its status topic)")
    _add_timeout(device)
    device.set_defaults(handler=_publish_device)
    remove = what.add_parser("remove", help="delete one device record")
    add_common(remove, subcommand=True)
    remove.add_argument("--ip", required=True)
    _add_timeout(remove)
    remove.set_defaults(handler=_remove_device)
    return parser


def _add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S",
        help="one-shot: seconds to wait for the broker (default 10)",
    )


def _run_collector(config: Config, args: argparse.Namespace) -> int:
    collector: Collector = (
        GatewayCollector(config) if args.command == "gateway" else DevicesCollector(config)
    )
    job = functools.partial(collector.once, args.timeout) if args.once else collector.run
    with _signals_call(collector.stop):
        _in_worker(job, name=f"collector-{args.command}")
    return 0


def _publish_device(config: Config, args: argparse.Namespace) -> int:
    update = DeviceUpdate(
        ip=args.ip, status=args.status, type=args.type, location=args.location,
        name=args.name, url=args.url, ttl=args.ttl, source=args.source,
        sw_version=args.sw_version, group_name=args.group_name,
    )
    publish_device(config, update, round(time.time(), 3), args.timeout)
    return 0


def _remove_device(config: Config, args: argparse.Namespace) -> int:
    remove_device(config, args.ip, args.timeout)
    return 0


@contextlib.contextmanager
def _signals_call(stop: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT call `stop()` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        logger.info("%s: stopping", signal.Signals(signum).name)
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _in_worker(job: Callable[[], None], name: str) -> None:
    """Run `job` on a thread and wait for it, re-raising what it raised.

    The main thread only waits (signal handlers run there meanwhile), so a
    handler never interrupts the collector in the middle of its own locks.
    """
    raised: list[BaseException] = []

    def target() -> None:
        try:
            job()
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=target, name=name)
    worker.start()
    # Timed joins: a signal that lands on the worker thread only sets a flag, and its
    # handler runs on this thread when it next wakes; an untimed join may never.
    while worker.is_alive():
        worker.join(0.25)
    if raised:
        raise raised[0]
