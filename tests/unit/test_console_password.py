"""The admin password file and the login throttle (console.password, console.throttle)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from console.password import Password, PasswordError, ensure_password_file, read_password
from console.throttle import LoginThrottle
from tests.unit.console_kit import Clock


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
    def test_five_failures_then_one_attempt_every_interval(self) -> None:
        """Up to 5 failures a minute an address tries at will; then each attempt waits
        its turn, `interval` after the one before; other addresses are not slowed."""
        clock = Clock()
        throttle = LoginThrottle(limit=5, window=60.0, interval=3.0, clock=clock,
                                 sleep=clock.sleep)
        for _ in range(5):
            assert throttle.wait("10.0.0.9") == 0
            throttle.failed("10.0.0.9")
        assert clock.slept == []
        assert throttle.wait("10.0.0.9") == 0  # first turn: now
        assert throttle.wait("10.0.0.9") == 0  # next: 3 s on
        assert clock.slept == [3.0]
        assert throttle.wait("10.0.0.8") == 0
        assert clock.slept == [3.0]
        clock.now += 61  # the failures are a minute old: no pacing
        assert throttle.wait("10.0.0.9") == 0
        assert clock.slept == [3.0]

    def test_a_queue_longer_than_max_wait_is_told_when_to_come_back(self) -> None:
        """Attempts waiting at once (a clock that does not move while they sleep) queue
        up to `max_wait`; past that one gets the seconds to come back (429)."""
        now = [0.0]
        sleeps: list[float] = []
        throttle = LoginThrottle(limit=2, window=60.0, interval=3.0, max_wait=10.0,
                                 clock=lambda: now[0], sleep=sleeps.append)
        throttle.failed("a")
        throttle.failed("a")
        assert [throttle.wait("a") for _ in range(4)] == [0, 0, 0, 0]
        assert sleeps == [3.0, 6.0, 9.0]  # the first went at once
        assert throttle.wait("a") == pytest.approx(12.0)

    def test_a_success_does_not_clear_the_failures(self) -> None:
        """The right password from a script behind the same address does not hand a
        guesser five new free tries."""
        clock = Clock()
        throttle = LoginThrottle(limit=2, window=60.0, interval=3.0, clock=clock,
                                 sleep=clock.sleep)
        throttle.failed("a")
        throttle.failed("a")
        throttle.wait("a")  # the right password, say
        throttle.wait("a")
        assert clock.slept == [3.0]


class TestPasswordChange:
    def test_stored_hashed_and_read_back(self, tmp_path: Path) -> None:
        """A changed password is a scrypt line in the file (0600), readable after a restart;
        the one before it no longer matches."""
        path = ensure_password_file(tmp_path / "admin.pass")
        old = read_password(path)
        password = Password(old, store=path)
        password.change("a new one, 12+")
        line = path.read_text(encoding="utf-8")
        assert line.startswith("scrypt:")
        assert "a new one" not in line
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert password.matches("a new one, 12+")
        assert not password.matches(old)
        again = Password(read_password(path))
        assert again.matches("a new one, 12+")
        assert again.matches("a new one, 12+")  # the second check from the remembered HMAC
        assert not again.matches("a new one, 12")

    def test_without_a_file_to_store_it_nothing_changes(self) -> None:
        password = Password("the old one")
        with pytest.raises(PasswordError, match="no password file"):
            password.change("a new one, 12+")
        assert password.matches("the old one")

    def test_a_hash_that_cannot_be_read_is_an_error_at_start(self) -> None:
        with pytest.raises(PasswordError, match="hashed password that cannot be read"):
            Password("scrypt:32768:8:1$only-a-salt")
