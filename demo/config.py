"""`python -m demo.config`: the config of one demo run, config/demo.toml with its release
and ports.

    python -m demo.config --release V6R1C01 --port receiver=9600 --out var/demo.toml

`make run` writes var/demo.toml this way from $RELEASE and the *_PORT variables
(README), and every process of the Procfile reads it: the bridge plays the
release in `[platform] release` and the reference platform the one in
`[receiver] release`, always the same. Ports are changed where config/demo.toml
names them (`127.0.0.1:9528` in the platform's URLs, `[mqtt] port` and
`watch_port`, the listeners), `[platform] report_url` is the reference platform's path that the
release's login issues (so the login confirms it), and a two-report release gets
`[platform] devices_report_url`, the reference platform's path for its
sub-device report (V5R7C01's login has no key for it); the file is otherwise
copied line for line, comments included, and the result is parsed as every
program will parse it before it is written, so a bad release or port stops here
with the reason (exit 2).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from bridge.config import parse_config
from bridge.errors import ConfigError
from receiver import releases

# Each port of the demo: its name and the port config/demo.toml gives it.
PORTS: Mapping[str, int] = {
    "mqtt": 1883, "watch": 1884, "receiver": 9528, "metrics": 9530, "console": 5555, "system": 8888}
_RELEASE = re.compile(r'^(release = )"[^"]*"$', re.M)


class DemoConfigError(ValueError):
    """The demo's config cannot be made as asked; the text says why."""


def with_defaults(ports: Mapping[str, int]) -> dict[str, int]:
    """`ports` and what follows from them: the watchers' port defaults to the MQTT
    port + 1, as the broker's setup has it."""
    if "mqtt" in ports and "watch" not in ports:
        return {**ports, "watch": ports["mqtt"] + 1}
    return dict(ports)


def render(text: str, release: str, ports: Mapping[str, int]) -> str:
    """config/demo.toml's `text` for `release` and `ports` (name -> port, PORTS' names;
    `with_defaults`)."""
    ports = with_defaults(ports)
    for name, port in ports.items():
        if name not in PORTS:
            raise DemoConfigError(f"unknown port {name!r}; known: {', '.join(PORTS)}")
        if not 1 <= port <= 65535:
            raise DemoConfigError(f"port {name}={port} is not from 1 to 65535")
    if len(set({**PORTS, **ports}.values())) < len(PORTS):
        raise DemoConfigError(f"two of the demo's ports are the same: {dict(ports)}")
    try:
        played = releases.release(release)  # the reference platform plays it too
    except ValueError as exc:
        raise DemoConfigError(str(exc)) from None
    out, found = _RELEASE.subn(rf'\g<1>"{release}"', text)
    if found != 2:  # the bridge's [platform] and the receiver's [receiver]
        raise DemoConfigError(f"expected 2 `release = ` lines (platform, receiver), found {found}")
    for name, port in ports.items():
        default = PORTS[name]
        out, count = re.subn(rf"^((?:watch_)?port) = {default}$", rf"\g<1> = {port}", out,
                             flags=re.M)
        out, more = re.subn(rf"127\.0\.0\.1:{default}\b", f"127.0.0.1:{port}", out)
        if not count + more:
            raise DemoConfigError(f"config/demo.toml does not name the {name} port {default}")
    port = ports.get("receiver", PORTS["receiver"])
    # The report's fallback address is the one the release's login issues, so the
    # login confirms it rather than moving the reports (V5R7C01, V6: not /DeviceStatus).
    out, count = re.subn(r'^report_url = "http://127\.0\.0\.1:\d+/[^"]*"$',
                         f'report_url = "http://127.0.0.1:{port}{played.gateway.paths[0]}"',
                         out, count=1, flags=re.M)
    if not count:
        raise DemoConfigError("config/demo.toml has no [platform] report_url line")
    if played.devices is not None:
        # The sub-device report's own address, before (V6) or instead of (V5R7C01, whose
        # login has no key for it) the login's: the reference platform's path for it.
        line = (f'devices_report_url = "http://127.0.0.1:{port}{played.devices.paths[0]}"')
        out, count = re.subn(r"^(report_url = .*)$", rf"\g<1>\n{line}", out, count=1,
                             flags=re.M)
        if not count:
            raise DemoConfigError("config/demo.toml has no [platform] report_url line")
    return out


def write(source: Path, out: Path, release: str, ports: Mapping[str, int]) -> None:
    """Render `source` and write it to `out`, once every program would accept it."""
    text = render(source.read_text(encoding="utf-8"), release, ports)
    try:
        parse_config(tomllib.loads(text), source=str(out), env={})
    except ConfigError as exc:
        raise DemoConfigError(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def _port(text: str) -> tuple[str, int]:
    name, sep, port = text.partition("=")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=PORT, got {text!r}")
    return name, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the demo's config; 0, or 2 with the reason."""
    parser = argparse.ArgumentParser(prog="python -m demo.config", description=__doc__)
    parser.add_argument("--source", type=Path, default=Path("config/demo.toml"))
    parser.add_argument("--out", type=Path, default=Path("var/demo.toml"))
    parser.add_argument("--release", default="V2R2C01", help="the platform release to play")
    parser.add_argument("--port", type=_port, action="append", default=[], metavar="NAME=PORT",
                        help=f"a port other than the default ({', '.join(PORTS)})")
    args = parser.parse_args(argv)
    try:
        write(args.source, args.out, args.release, dict(args.port))
    except (DemoConfigError, OSError) as exc:
        print(f"demo config: {exc}", file=sys.stderr)
        return 2
    ports = {**PORTS, **with_defaults(dict(args.port))}
    print(f"demo config: {args.out} plays {args.release}; ports "
          + ", ".join(f"{name} {port}" for name, port in ports.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
