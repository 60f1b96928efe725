"""The project's own mosquitto: render its config, make its passwords, run it.

`python -m demo.broker setup --dir var/mqtt` writes into DIR, all mode 0600:
`mosquitto.conf` and `acl` (from the templates in `mosquitto/`, re-rendered on
every run), one `<role>.pass` per role with a random password (made once, kept
afterwards) and `passwd`, the hashed form made with `mosquitto_passwd`.
`check-port` tells `make run` whether the broker's port is free.

`Broker` runs that mosquitto as a child process for the tests and benchmarks:
start, stop (clean, saves the database), kill (crash) and start again on the
same port and directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

from bridge.config import ENV_MQTT_PASSWORD_FILE, ENV_MQTT_USERNAME
from bridge.logs import setup_logging

logger = logging.getLogger(__name__)

ROLES = ("bridge", "collector", "app", "operator", "debug")
HOST = "127.0.0.1"
TEMPLATES = Path(__file__).resolve().parent.parent / "mosquitto"


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


def write_passwd(directory: Path, files: Mapping[str, Path]) -> Path:
    """(Re)make DIR/passwd from the `.pass` files when it is missing or older than one."""
    directory = _make_dir(directory)
    target = directory / "passwd"
    if target.exists():
        listed = {line.split(":", 1)[0] for line in target.read_text().splitlines() if line}
        newest = max(p.stat().st_mtime_ns for p in files.values())
        if listed == set(files) and target.stat().st_mtime_ns >= newest:
            return target
    tool = find_tool("mosquitto_passwd")
    if tool is None:
        raise MosquittoError("mosquitto_passwd not found in PATH or /usr/sbin: run `make deps`")
    plain = "".join(f"{user}:{path.read_text().strip()}\n" for user, path in files.items())
    staging = directory / ".passwd.new"
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
        # Only a root mosquitto changes user, and root always has a name.
        return "mosquitto"


def render(directory: Path, port: int, prefix: str = "se3", autosave_interval: int = 30) -> Path:
    """Render DIR/mosquitto.conf and DIR/acl from the templates; return the conf path."""
    directory = _make_dir(directory)
    values = {
        "dir": str(directory),
        "port": str(port),
        "prefix": prefix,
        "user": _current_user(),
        "autosave_interval": str(autosave_interval),
    }
    for template, name in (("mosquitto.conf.in", "mosquitto.conf"), ("acl.in", "acl")):
        text = (TEMPLATES / template).read_text(encoding="utf-8")
        _write_private(directory / name, string.Template(text).substitute(values))
    return directory / "mosquitto.conf"


def setup(
    directory: Path, port: int = 1883, prefix: str = "se3", autosave_interval: int = 30
) -> Path:
    """Everything a broker needs in DIR; passwords are made once. Returns the conf path."""
    write_passwd(directory, ensure_passwords(directory))
    return render(directory, port, prefix, autosave_interval)


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
    ) -> None:
        self.host = HOST
        self.dir = Path(directory).resolve()
        self.port = port if port is not None else free_port()
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
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def credentials(self, role: str) -> tuple[str, Path]:
        """(username, password file) of `role`."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        return role, self.dir / f"{role}.pass"

    def password(self, role: str) -> str:
        return self.credentials(role)[1].read_text(encoding="utf-8").strip()

    def env(self, role: str) -> dict[str, str]:
        """The SE3_MQTT_* variables that make a program connect as `role`."""
        user, path = self.credentials(role)
        return {ENV_MQTT_USERNAME: user, ENV_MQTT_PASSWORD_FILE: str(path)}

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts connections on its port."""
        if self.running:
            raise MosquittoError("broker already running")
        setup(self.dir, self.port, self.prefix, self.autosave_interval)
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
    make.add_argument("--prefix", default="se3")
    make.add_argument("--autosave-interval", type=int, default=30)
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
        conf = setup(args.dir, args.port, args.prefix, args.autosave_interval)
    except (MosquittoError, OSError) as exc:
        logger.error("broker setup failed: %s", exc)
        return 1
    logger.info("broker config in %s (listener %s:%s)", conf, HOST, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
