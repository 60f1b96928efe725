"""The admin password file and the login throttle (console.password, console.throttle)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from console.password import Password, PasswordError, ensure_password_file, read_password
from console.throttle import LoginThrottle


class TestPasswordFile:
    def test_made_random_and_private_when_missing(self, tmp_path: Path) -> None:
        """A missing file is made: 0600 in a 0700 directory, a long random password."""
        paths = [ensure_password_file(tmp_path / f"d{n}" / "admin.pass") for n in range(2)]
        assert stat.S_IMODE(paths[0].stat().st_mode) == 0o600
        assert stat.S_IMODE(paths[0].parent.stat().st_mode) == 0o700
        secrets = [read_password(p) for p in paths]
        assert len(secrets[0]) >= 24
        assert secrets[0] != secrets[1]

    def test_kept_when_present(self, tmp_path: Path) -> None:
        path = tmp_path / "admin.pass"
        path.write_text("chosen by the operator\n", encoding="utf-8")
        ensure_password_file(path)
        assert read_password(path) == "chosen by the operator"

    def test_a_file_others_can_read_is_a_warning(
            self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A password file written by hand with a loose umask (0644) works, but says
        that every local user can read the admin password; a private one says nothing."""
        path = tmp_path / "admin.pass"
        path.write_text("chosen by the operator\n", encoding="utf-8")
        path.chmod(0o644)
        with caplog.at_level("WARNING", logger="console.password"):
            assert read_password(path) == "chosen by the operator"
        assert "open to other users" in caplog.text
        assert "chosen by the operator" not in caplog.text
        caplog.clear()
        path.chmod(0o600)
        with caplog.at_level("WARNING", logger="console.password"):
            read_password(path)
        assert caplog.text == ""

    def test_empty_file_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "admin.pass"
        path.write_text("\n", encoding="utf-8")
        with pytest.raises(PasswordError, match="is empty"):
            read_password(path)

    def test_matches(self) -> None:
        password = Password("s3cret")
        assert password.matches("s3cret")
        assert not password.matches("s3cret ")
        assert not password.matches("")
        assert not password.matches("\udcff")


class TestThrottle:
    def test_five_failures_a_minute(self) -> None:
        """The 5th failure within the window blocks the client until the 1st is a minute old."""
        now = [0.0]
        throttle = LoginThrottle(limit=5, window=60.0, clock=lambda: now[0])
        for _ in range(5):
            assert throttle.wait("10.0.0.9") == 0
            throttle.failed("10.0.0.9")
            now[0] += 10
        assert throttle.wait("10.0.0.9") == pytest.approx(10.0)
        assert throttle.wait("10.0.0.8") == 0  # per client
        now[0] += 10
        assert throttle.wait("10.0.0.9") == 0

    def test_success_resets(self) -> None:
        throttle = LoginThrottle(limit=2, window=60.0, clock=lambda: 0.0)
        throttle.failed("a")
        throttle.succeeded("a")
        throttle.failed("a")
        assert throttle.wait("a") == 0
