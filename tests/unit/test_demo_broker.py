"""demo.broker's setup when run as root: the broker must not stay root."""

from __future__ import annotations

import logging
import os
import pwd
from pathlib import Path

import pytest

import demo.broker
from demo.broker import render

FAKE = pwd.struct_passwd(("mosquitto", "x", 4242, 4343, "", "/var/lib/mosquitto", "/bin/false"))


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Pretend to be root on a box with a `mosquitto` user; record chown calls."""
    chowned: list[tuple[str, int, int]] = []
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real = pwd.getpwnam
    monkeypatch.setattr(pwd, "getpwnam", lambda name: FAKE if name == "mosquitto" else real(name))
    monkeypatch.setattr(os, "chown", lambda path, uid, gid, **_kw: chowned.append(
        (str(path), uid, gid)))
    return chowned


class TestBrokerUser:
    def test_root_setup_runs_the_broker_as_mosquitto_and_hands_it_the_files(
        self, tmp_path: Path, as_root: list[tuple[str, int, int]],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Setup as root renders `user mosquitto` and makes the directory and every file
        in it mosquitto's (a root-owned database would go unwritten)."""
        monkeypatch.setattr(demo.broker, "_reachable_by", lambda *_args: True)
        conf = render(tmp_path / "mqtt", 1883)
        assert "\nuser mosquitto\n" in conf.read_text()
        owned = {path for path, uid, gid in as_root if (uid, gid) == (4242, 4343)}
        assert {str(tmp_path / "mqtt"), str(conf), str(tmp_path / "mqtt" / "acl")} <= owned

    def test_a_directory_mosquitto_cannot_reach_keeps_root_and_says_why(
        self, tmp_path: Path, as_root: list[tuple[str, int, int]],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Under a directory closed to others (a checkout in /root), the files would be out
        of the broker's reach: it stays root, with a warning naming the directory."""
        closed = tmp_path / "home"
        closed.mkdir(mode=0o700)
        caplog.set_level(logging.WARNING)
        conf = render(closed / "mqtt", 1883)
        assert "\nuser root\n" in conf.read_text()
        assert as_root == []
        assert any("cannot reach" in r.getMessage() for r in caplog.records)

    def test_an_explicit_user_is_kept(self, tmp_path: Path,
                                      as_root: list[tuple[str, int, int]]) -> None:
        """The test harness passes its own user: rendered as given, nothing handed over."""
        conf = render(tmp_path / "mqtt", 1883, user="root")
        assert "\nuser root\n" in conf.read_text()
        assert as_root == []
