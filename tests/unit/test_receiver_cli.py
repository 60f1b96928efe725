"""Tests of the se3-receiver command: its flags, and a real run stopped by a signal."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from receiver.cli import parse_args

_SCRIPT = Path(sys.executable).with_name("se3-receiver")


@pytest.fixture(autouse=True)
def no_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's $SE3_CONFIG must not change what these tests see."""
    monkeypatch.delenv("SE3_CONFIG", raising=False)


class TestArguments:
    def test_defaults(self) -> None:
        """By default it listens on 127.0.0.1:9528, lenient, answering the old login names."""
        args = parse_args([], environ={})
        assert (args.host, args.port, args.strict, args.faults) == ("127.0.0.1", 9528, False, False)
        assert (args.login_address, args.login_period, args.login_new_names) == (
            None,
            20,
            False,
        )

    def test_config_file_section_sets_defaults(self, tmp_path: Path) -> None:
        """`[receiver]` in the file named by --config sets what the flags do not."""
        path = tmp_path / "se3.toml"
        path.write_text('[receiver]\nport = 9600\nstrict = true\nkeep = 5\n'
                        'login_address = "/a,/b"\nlogin_period = 30\n', encoding="utf-8")

        args = parse_args(["--config", str(path), "--keep", "7"], environ={})

        assert (args.port, args.strict, args.keep) == (9600, True, 7)
        assert parse_args(["--config", str(path), "--no-strict"], environ={}).strict is False
        assert (args.login_address, args.login_period, args.host) == ("/a,/b", 30, "127.0.0.1")

    def test_format_from_flag_over_file(self, tmp_path: Path) -> None:
        """--format v1|v2 picks the payload version checked; `[receiver] format` is its default."""
        path = tmp_path / "se3.toml"
        path.write_text('[receiver]\nformat = "v2"\n', encoding="utf-8")

        assert parse_args([], environ={}).format is None
        assert parse_args(["--config", str(path)], environ={}).format == "v2"
        assert parse_args(["--config", str(path), "--format", "v1"], environ={}).format == "v1"

    def test_release_from_flag_over_file(self, tmp_path: Path) -> None:
        """--release picks the release played, `[receiver] release` its default: the seed."""
        path = tmp_path / "se3.toml"
        path.write_text('[receiver]\nrelease = "V6R1C01"\n', encoding="utf-8")

        assert parse_args([], environ={}).release == "V2R2C01"
        assert parse_args(["--config", str(path)], environ={}).release == "V6R1C01"
        assert parse_args(["--config", str(path), "--release", "V5R7C01"],
                          environ={}).release == "V5R7C01"

    @pytest.mark.parametrize(("argv", "text", "complaint"), [
        (["--release", "V6R1C01", "--format", "v2"], "",
         "release V6R1C01 reports in F7, not v2"),
        ([], '[receiver]\nrelease = "V9R9C09"\n', "unknown release 'V9R9C09'"),
        (["--release", "V2R5C01"], "", "--release: invalid choice"),
    ])
    def test_a_release_it_does_not_play_exits_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], text: str,
        complaint: str,
    ) -> None:
        """An unknown release, or a format the release does not offer, is refused at start."""
        path = tmp_path / "se3.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(SystemExit) as stopped:
            parse_args(["--config", str(path), *argv], environ={})
        assert stopped.value.code == 2
        assert complaint in capsys.readouterr().err

    def test_unknown_format_exits_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A version the receiver does not know is refused at start."""
        with pytest.raises(SystemExit) as stopped:
            parse_args(["--format", "v3"], environ={})

        assert stopped.value.code == 2
        assert "--format" in capsys.readouterr().err

    def test_config_from_environment(self, tmp_path: Path) -> None:
        """Without --config, $SE3_CONFIG names the file, as for every program."""
        path = tmp_path / "se3.toml"
        path.write_text("[receiver]\nport = 9601\n", encoding="utf-8")

        assert parse_args([], environ={"SE3_CONFIG": str(path)}).port == 9601

    def test_a_whole_gateway_config_is_accepted(self) -> None:
        """The demo's config, shared by every program, is a valid receiver config."""
        root = Path(__file__).resolve().parents[2]

        assert parse_args(["--config", str(root / "config" / "demo.toml")], environ={}).port == 9528

    @pytest.mark.parametrize(
        ("text", "key"),
        [("[receiver]\nport = 70000\n", "receiver.port"),
         ("[receiver]\nstrict = 1\n", "receiver.strict"),
         ('[receiver]\nformat = "v3"\n', "receiver.format"),
         ("[receiver]\nbogus = 1\n", "receiver.bogus: unknown key")],
    )
    def test_bad_config_exits_2_naming_the_key(
        self, tmp_path: Path, text: str, key: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "se3.toml"
        path.write_text(text, encoding="utf-8")

        with pytest.raises(SystemExit) as stopped:
            parse_args(["--config", str(path)], environ={})

        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert key in err
        assert err.startswith("se3-receiver: configuration error: ")
        assert "usage:" not in err  # the usage is for bad flags, not for a bad file

    @pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "localhost"])
    def test_loopback_hosts(self, host: str) -> None:
        """Loopback addresses are accepted without further ado."""
        assert parse_args(["--host", host]).host == host

    @pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.19", "::", "example.org"])
    def test_remote_host_refused(self, host: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A non-loopback host is refused with exit code 2 unless --allow-remote."""
        with pytest.raises(SystemExit) as stopped:
            parse_args(["--host", host])
        assert stopped.value.code == 2
        assert "--allow-remote" in capsys.readouterr().err
        assert parse_args(["--host", host, "--allow-remote"]).host == host

    @pytest.mark.parametrize(
        "argv", [["--port", "70000"], ["--login-period", "0"], ["--keep", "0"]]
    )
    def test_bad_numbers(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """Out-of-range numbers stop the program with exit code 2."""
        with pytest.raises(SystemExit) as stopped:
            parse_args(argv)
        assert stopped.value.code == 2
        capsys.readouterr()


class _Lines:
    """The child's stderr, line by line, read by a thread so waits can have deadlines."""

    def __init__(self, stream: IO[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r} in {self.seen!r}")

    def rest(self, timeout: float) -> str:
        self._thread.join(timeout)
        while not self.queue.empty():
            line = self.queue.get_nowait()
            self.seen.append(line or "")
        return "".join(self.seen)


@contextlib.contextmanager
def running_receiver(*flags: str) -> Iterator[tuple[subprocess.Popen[str], _Lines, str]]:
    """`se3-receiver --port 0 FLAGS` started; (process, its stderr lines, its URL); killed
    afterwards if still running."""
    command = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "receiver.cli"]
    with subprocess.Popen(
        [*command, "--port", "0", *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        lines = _Lines(proc.stderr)
        try:
            url = lines.wait_for(r"page at (http://127\.0\.0\.1:\d+)/", timeout=20)[1]
            yield proc, lines, url
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_signalled(signum: signal.Signals) -> None:
    """The command serves on a free port and exits 0 on SIGTERM or SIGINT."""
    with running_receiver("--strict", "--log-json") as (proc, lines, url):
        with urllib.request.urlopen(f"{url}/api/stats", timeout=5) as answer:  # noqa: S310
            assert json.loads(answer.read())["received"] == 0
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == 0
    assert '"receiver stopped"' in lines.rest(timeout=5)


def test_grace_serves_a_last_report_after_the_signal() -> None:
    """With --grace, a report POSTed after SIGTERM is still taken; a second signal ends it."""
    with running_receiver("--grace", "30") as (proc, lines, url):
        proc.send_signal(signal.SIGTERM)
        lines.wait_for(r"serving 30 s more", timeout=10)
        request = urllib.request.Request(  # noqa: S310
            f"{url}/DeviceStatus", data=b"{}", method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            assert answer.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_plays_the_release_it_is_told() -> None:
    """`se3-receiver --release V6R1C01`: says what it plays, answers its login in L4 and takes
    the media devices' report at their own path."""
    with running_receiver("--release", "V6R1C01") as (proc, lines, url):
        started = "".join(lines.seen)
        assert "release=V6R1C01 (login L4; F7 at /box/monitor/status/report, /DeviceStatus; " \
               "F8 at /box/media/monitor/status/report)" in started
        login = f"{url}/api/gateway/login?mq_license_key=A1&device_sn=HQDZKE5BJJFJH0042"
        with urllib.request.urlopen(login, timeout=5) as answer:  # noqa: S310
            issued = json.loads(answer.read())
        assert issued["media_device_monitor_url"] == "/box/media/monitor/status/report"
        request = urllib.request.Request(  # noqa: S310
            f"{url}{issued['media_device_monitor_url']}", method="POST",
            data=json.dumps({"mq_license_key": "A1", "media_devices": []}).encode(),
            headers={"Content-Type": "application/json; charset=utf-8", "X-Report-Id": "x-1-1"})
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            assert answer.status == 200
        with urllib.request.urlopen(f"{url}/api/reports", timeout=5) as answer:  # noqa: S310
            [kept] = json.loads(answer.read())
        assert (kept["format"], kept["violations"]) == ("F8", [])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
