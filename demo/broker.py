"""The project's own mosquitto: render its config, make its passwords, run it.

`python -m demo.broker setup --dir var/mqtt --config config/demo.toml` writes
into DIR, all mode 0600: `mosquitto.conf`, `acl` and `acl.watch` (from the
templates in `mosquitto/`, re-rendered on every run, for the gateway serial and
limits of the config), one `<user>.pass` per broker user with a random password
(made once, kept afterwards), `passwd` (every user) and `passwd.watch` (the
watchers of the second listener), the hashed forms made with `mosquitto_passwd`, and
`clients/<user>/mosquitto_sub` (and `_pub`): option files that let people run
`XDG_CONFIG_HOME=DIR/clients/debug mosquitto_sub -t 'se3/#'` without a password
on the command line, where any local user could read it in /proc.
`check-port` tells `make run` whether the broker's port is free.

The broker binds client ids to users (`use_username_as_clientid`) on its main
port, so each program that stays connected has a user of its own (`USERS`).
The read-only `WATCHERS` also log in on a second port (`watch_port`, by default
the main one + 1), where each may have many sessions: several `mosquitto_sub`
windows at once. Each app user
(`app`, and any `--app app-NAME`) gets a topic space of its own, `apps/<user>/`.

`Broker` runs that mosquitto as a child process for the tests and benchmarks:
start, stop (clean, saves the database), kill (crash) and start again on the
same port and directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import string
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pydantic import ValidationError

from bridge.config import (
    ENV_MQTT_PASSWORD_FILE,
    ENV_MQTT_USERNAME,
    BridgeSection,
    GatewaySection,
    MqttSection,
)
from bridge.errors import ConfigError
from bridge.logs import setup_logging
from bridge.topics import APP_USER

logger = logging.getLogger(__name__)

# One broker user per process; the broker makes each user's name its client id.
USERS: dict[str, str] = {
    "bridge": "the bridge daemon (se3-bridge run)",
    "monitor": "read-only tools: se3-bridge status / snapshot",
    "collector-gateway": "the gateway collector daemon",
    "collector-devices": "the devices collector daemon",
    "collector": "one-shot collector runs and scripts standing in for a collector",
    "app": "local apps: device records and status in apps/app/ (its own, nothing else)",
    "operator": "the config topics, by hand or script; reads everything",
    "console": "the console: operator rights, and deletes stale device records",
    "debug": "read-only, for people with mosquitto_sub",
}
ROLES = tuple(USERS)
DEFAULT_APPS = ("app",)
# Users people run mosquitto_sub / mosquitto_pub as: they get option files.
CLIENT_USERS = ("debug", "monitor", "operator", "app", "collector")
# Read-only users that also log in on the watchers' listener (their option files
# point there).
WATCHERS = ("debug", "monitor")
HOST = "127.0.0.1"
TEMPLATES = Path(__file__).resolve().parent.parent / "mosquitto"
_SERIAL = re.compile(r"[A-Za-z0-9._-]{1,64}")  # as the config takes it
DEFAULT_SN = "SZCCKQRAIJBAH0002"  # the demo's and the tests' gateway
# Topic and MQTT headers on top of the largest record the bridge takes.
PACKET_SLACK = 4096
# What the broker may queue for one client, beyond max_devices: the bridge's
# replay holds each device's record and arrival note, and a few more topics.
QUEUE_SLACK = 1000


class MosquittoError(RuntimeError):
    """mosquitto is missing, would not start, or its files cannot be made."""


def find_tool(name: str) -> str | None:
    """The path of `name` in PATH or /usr/sbin (not in a normal user's PATH on Debian)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def find_mosquitto() -> str:
    """The mosquitto executable, or MosquittoError saying how to install it."""
    found = find_tool("mosquitto")
    if found is None:
        raise MosquittoError("mosquitto not found in PATH or /usr/sbin: run `make deps`")
    return found


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` different TCP ports on `host` that nobody listens on right now (all held
    open together while they are chosen, so no two are the same)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def port_in_use(port: int, host: str = HOST) -> bool:
    """Whether something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by the owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _make_dir(directory: Path) -> Path:
    directory = directory.resolve()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def all_users(apps: Iterable[str] = DEFAULT_APPS) -> tuple[str, ...]:
    """Every broker user: the fixed ones and the app users (`app`, `app-NAME`)."""
    extra = []
    for name in apps:
        if not APP_USER.fullmatch(name):
            raise MosquittoError(f"app user {name!r}: an app user is `app` or `app-NAME` "
                                 "(NAME of lower-case letters, digits and '-')")
        if name not in ROLES and name not in extra:
            extra.append(name)
    return (*ROLES, *extra)


def ensure_passwords(directory: Path, users: Iterable[str] = ROLES) -> dict[str, Path]:
    """Make `<user>.pass` with a random password for each user that has none yet."""
    directory = _make_dir(directory)
    files = {}
    for user in users:
        path = directory / f"{user}.pass"
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(24) + "\n")
            logger.info("new password for MQTT user %s in %s", user, path)
        files[user] = path
    return files


def write_passwd(directory: Path, files: Mapping[str, Path], name: str = "passwd") -> Path:
    """(Re)make DIR/NAME from the `.pass` files when it is missing or older than one."""
    directory = _make_dir(directory)
    target = directory / name
    if target.exists():
        listed = {line.split(":", 1)[0] for line in target.read_text().splitlines() if line}
        newest = max(p.stat().st_mtime_ns for p in files.values())
        if listed == set(files) and target.stat().st_mtime_ns >= newest:
            return target
    tool = find_tool("mosquitto_passwd")
    if tool is None:
        raise MosquittoError("mosquitto_passwd not found in PATH or /usr/sbin: run `make deps`")
    plain = "".join(f"{user}:{path.read_text().strip()}\n" for user, path in files.items())
    staging = directory / f".{name}.new"
    _write_private(staging, plain)
    try:
        # -U hashes a plain user:password file in place (PBKDF2), so no password
        # ever appears on a command line.
        done = subprocess.run(
            [tool, "-U", str(staging)], capture_output=True, text=True, check=False, timeout=30
        )
        if done.returncode != 0:
            raise MosquittoError(f"mosquitto_passwd failed: {done.stderr.strip() or done.stdout}")
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def _current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return "nobody"


def _reachable_by(directory: Path, uid: int, gid: int) -> bool:
    """Whether every directory above `directory` lets `uid` pass (x for it)."""
    for parent in directory.parents:
        mode = parent.stat()
        if mode.st_uid == uid:
            bit = stat.S_IXUSR
        elif mode.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not mode.st_mode & bit:
            return False
    return True


def broker_user(directory: Path) -> str:
    """The user mosquitto becomes when started as root.

    Not root when avoidable: `mosquitto` (the Debian package's user). When that
    user cannot reach DIR (a checkout under /root, 0700) the broker stays root
    and says why: its files would be out of its reach. When we are not root,
    our own user (mosquitto ignores the setting then).
    """
    if os.geteuid() != 0:
        return _current_user()
    try:
        entry = pwd.getpwnam("mosquitto")
    except KeyError:
        logger.warning("no user `mosquitto` on this box: the broker runs as root")
        return "root"
    if not _reachable_by(directory, entry.pw_uid, entry.pw_gid):
        logger.warning(
            "the broker runs as root: user mosquitto cannot reach %s (a directory above "
            "it is closed to others); set the broker up elsewhere to run it unprivileged",
            directory,
        )
        return "root"
    return "mosquitto"


def _hand_over(directory: Path, user: str) -> None:
    """Make DIR and everything in it `user`'s (root only): a root mosquitto drops to
    that user before it opens its files, and a root-owned database goes unwritten."""
    if os.geteuid() != 0 or user == "root":
        return
    entry = pwd.getpwnam(user)
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def render(
    directory: Path,
    port: int,
    prefix: str = "se3",
    autosave_interval: int = 30,
    *,
    sn: str = DEFAULT_SN,
    max_payload: int = 16_384,
    max_devices: int = 20_000,
    user: str | None = None,
    apps: Iterable[str] = DEFAULT_APPS,
    watch_port: int | None = None,
) -> Path:
    """Render DIR/mosquitto.conf, DIR/acl and DIR/acl.watch from the templates; return
    the conf path. `watch_port`: the watchers' listener (default `port` + 1).

    `apps`: the app users, each with its space `apps/<user>/`.

    `user`: whom a root mosquitto becomes; by default `broker_user(DIR)`, and
    DIR is handed over to it.
    """
    directory = _make_dir(directory)
    if not _SERIAL.fullmatch(sn):
        raise MosquittoError(f"gateway serial {sn!r} cannot be a topic level of the ACL")
    chosen = user if user is not None else broker_user(directory)
    values = {
        "dir": str(directory),
        "port": str(port),
        "watch_port": str(watch_port or port + 1),
        "prefix": prefix,
        "sn": sn,
        "user": chosen,
        "autosave_interval": str(autosave_interval),
        "max_payload": str(max_payload),
        "max_packet_size": str(max_payload + PACKET_SLACK),
        "max_queued": str(2 * max_devices + QUEUE_SLACK),
        "apps": "\n".join(_app_block(f"{prefix}/{sn}", name)
                           for name in all_users(apps) if APP_USER.fullmatch(name)),
    }
    for template, name in (("mosquitto.conf.in", "mosquitto.conf"), ("acl.in", "acl"),
                           ("acl.watch.in", "acl.watch")):
        text = (TEMPLATES / template).read_text(encoding="utf-8")
        _write_private(directory / name, string.Template(text).substitute(values))
    if user is None:
        _hand_over(directory, chosen)
    return directory / "mosquitto.conf"


def _app_block(base: str, name: str) -> str:
    return (f"user {name}\ntopic readwrite {base}/apps/{name}/devices/+/state\n"
            f"topic write {base}/apps/{name}/status\n")


def write_client_options(
    directory: Path, port: int, users: Iterable[str] = CLIENT_USERS, watch_port: int | None = None
) -> None:
    """DIR/clients/<user>/mosquitto_sub and _pub: host, port, user and password.

    mosquitto_sub and mosquitto_pub read `$XDG_CONFIG_HOME/mosquitto_sub` (`_pub`)
    for default options, so a password in there never appears on a command line.
    The `WATCHERS` get the watchers' port (default `port` + 1): many windows at once.
    """
    base = _make_dir(directory / "clients")
    for user in users:
        password = (directory / f"{user}.pass").read_text(encoding="utf-8").strip()
        folder = _make_dir(base / user)
        chosen = (watch_port or port + 1) if user in WATCHERS else port
        text = f"-h {HOST}\n-p {chosen}\n-u {user}\n-P {password}\n"
        for tool in ("mosquitto_sub", "mosquitto_pub"):
            _write_private(folder / tool, text)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """What the broker's files take from the config."""

    prefix: str
    sn: str
    max_payload: int
    max_devices: int


def broker_settings(path: Path) -> BrokerSettings:
    """The broker's part of the config file at `path`.

    Only the parts the broker needs are validated: a mistake elsewhere in the
    file stops the program it concerns, not the broker everyone talks through.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        gateway = GatewaySection.model_validate(data.get("gateway", {}))
        mqtt = MqttSection.model_validate(data.get("mqtt", {}))
        limits = BridgeSection.model_validate(data.get("bridge", {}))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    sn = gateway.serial()
    if not sn:
        raise ConfigError(f"{path}: no gateway serial (gateway.sn or gateway.sn_file)")
    return BrokerSettings(mqtt.topic_prefix, sn, limits.max_payload, limits.max_devices)


def setup(
    directory: Path,
    port: int = 1883,
    prefix: str = "se3",
    autosave_interval: int = 30,
    *,
    sn: str = DEFAULT_SN,
    max_payload: int = 16_384,
    max_devices: int = 20_000,
    user: str | None = None,
    apps: Iterable[str] = DEFAULT_APPS,
    watch_port: int | None = None,
) -> Path:
    """Everything a broker needs in DIR; passwords are made once. Returns the conf path."""
    users = all_users(apps)
    files = ensure_passwords(directory, users)
    write_passwd(directory, files)
    write_passwd(directory, {user: files[user] for user in WATCHERS}, "passwd.watch")
    write_client_options(Path(directory).resolve(), port,
                         (*CLIENT_USERS, *(u for u in users if u not in ROLES)), watch_port)
    return render(
        directory, port, prefix, autosave_interval, sn=sn, max_payload=max_payload,
        max_devices=max_devices, user=user, apps=apps, watch_port=watch_port,
    )


class Broker:
    """A mosquitto child process with its own directory, port and role passwords.

    Its log goes to DIR/broker.log. `start()` re-runs `setup()` (passwords kept)
    and returns once the broker accepts connections; `stop()` is a clean exit
    that saves the database; `kill()` is a crash.
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        prefix: str = "se3",
        autosave_interval: int = 30,
        sn: str = DEFAULT_SN,
        apps: tuple[str, ...] = DEFAULT_APPS,
        watch_port: int | None = None,
    ) -> None:
        self.host = HOST
        self.apps = apps
        self.users = all_users(apps)
        self.sn = sn
        self.dir = Path(directory).resolve()
        # Ports it chooses itself, it may choose again at its first start (start()).
        self._own_ports = (port is None, watch_port is None)
        self._started = False
        self.port, self.watch_port = self._choose_ports(port, watch_port)
        self.prefix = prefix
        self.autosave_interval = autosave_interval
        self.conf_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "broker.log"
        self.db_path = self.dir / "mosquitto.db"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The running mosquitto's process id."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def credentials(self, role: str) -> tuple[str, Path]:
        """(username, password file) of `role` (a broker user, see USERS)."""
        if role not in self.users:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(self.users)}")
        return role, self.dir / f"{role}.pass"

    def password(self, role: str) -> str:
        return self.credentials(role)[1].read_text(encoding="utf-8").strip()

    def env(self, role: str) -> dict[str, str]:
        """The SE3_MQTT_* variables that make a program connect as `role`.

        Two programs given the same role push each other off the broker.
        """
        user, path = self.credentials(role)
        return {ENV_MQTT_USERNAME: user, ENV_MQTT_PASSWORD_FILE: str(path)}

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    @staticmethod
    def _choose_ports(port: int | None, watch_port: int | None) -> tuple[int, int]:
        chosen = free_ports(3)
        port = port if port is not None else chosen[0]
        # The watchers' listener (debug, monitor): many sessions per user.
        watch = watch_port if watch_port is not None else next(p for p in chosen[1:] if p != port)
        return port, watch

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts connections on its port.

        A port it chose itself as free can be taken by another process before
        mosquitto binds it: at its first start it then chooses again (twice at
        most). A port it was given, or one it has run on, is never changed.
        """
        for attempt in range(3):
            try:
                self._start_once(timeout)
            except MosquittoError as exc:
                if (self._started or attempt == 2 or not any(self._own_ports)
                        or "Address already in use" not in str(exc)):
                    raise
                port, watch = self._choose_ports(
                    None if self._own_ports[0] else self.port,
                    None if self._own_ports[1] else self.watch_port)
                logger.info("a port of mosquitto was taken meanwhile; trying %s and %s",
                            port, watch)
                self.port, self.watch_port = port, watch
                continue
            self._started = True
            return

    def _start_once(self, timeout: float) -> None:
        if self.running:
            raise MosquittoError("broker already running")
        # A child of the tests and benchmarks runs as whoever runs them: their
        # temporary directories are closed to other users.
        setup(self.dir, self.port, self.prefix, self.autosave_interval, sn=self.sn,
              user=_current_user(), apps=self.apps,
              watch_port=self.watch_port)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(log_fd, "ab") as log:
            self._proc = subprocess.Popen(
                [find_mosquitto(), "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise MosquittoError(f"mosquitto exited at start:\n{self.log_text()[offset:]}")
            # "running" is logged after the listener is bound: the port is ours, not
            # another process's that happened to hold it.
            if " running" in self.log_text()[offset:] and port_in_use(self.port, self.host):
                logger.debug("mosquitto pid %s on %s:%s", self._proc.pid, self.host, self.port)
                return
            time.sleep(0.02)
        self.kill()
        raise MosquittoError(f"mosquitto not ready after {timeout}s:\n{self.log_text()[offset:]}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its database) and wait; SIGKILL if it hangs."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("mosquitto ignored SIGTERM for %ss; killing it", timeout)
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved since the last autosave."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.broker", description="Set up the project's own mosquitto."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("setup", help="render conf and acl, make passwords on first run")
    make.add_argument("--dir", type=Path, default=Path("var/mqtt"))
    make.add_argument("--port", type=int, default=1883)
    make.add_argument("--watch-port", type=int, default=None,
                      help="the listener of debug and monitor, many sessions each "
                           "(default: PORT + 1)")
    make.add_argument("--prefix", default="se3")
    make.add_argument("--autosave-interval", type=int, default=30)
    make.add_argument("--config", type=Path, default=None,
                      help="take the gateway serial, topic prefix and max_payload from it")
    make.add_argument("--sn", default=None, help="the gateway serial (default: the config's)")
    make.add_argument("--app", action="append", default=None, metavar="USER",
                      help="an app user (app or app-NAME) with its own space apps/USER/; "
                           "repeat for more (default: app)")
    check = sub.add_parser("check-port", help="exit 1 with a message when a port is taken")
    check.add_argument("--port", type=int, action="append", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    if args.command == "check-port":
        taken = [port for port in args.port if port_in_use(port)]
        for port in taken:
            print(
                f"{HOST}:{port} is already in use, and the demo needs it. "
                f"`ss -ltnp 'sport = :{port}'` shows who has it: an earlier `make run` still "
                "running? Another mosquitto? (Debian starts mosquitto.service when the package "
                "is installed: `sudo systemctl disable --now mosquitto`.)",
                file=sys.stderr,
            )
        return 1 if taken else 0
    try:
        found = BrokerSettings(args.prefix, DEFAULT_SN, 16_384, 20_000)
        if args.config is not None:
            found = broker_settings(args.config)
        sn = args.sn or found.sn
        conf = setup(args.dir, args.port, found.prefix, args.autosave_interval, sn=sn,
                     max_payload=found.max_payload, max_devices=found.max_devices,
                     apps=args.app or DEFAULT_APPS, watch_port=args.watch_port)
    except (MosquittoError, ConfigError, OSError) as exc:
        logger.error("broker setup failed: %s", exc)
        return 1
    logger.info("broker config in %s (listener %s:%s, gateway %s)", conf, HOST, args.port, sn)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
