"""The deployment test's cached Debian root: which mirror, when it is rebuilt, a bad cache.

A fake `debootstrap` on PATH stands in for the real one (which takes minutes
and a mirror), so these run in `make test` without root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.deploy.rootfs import KEY_FILES, SUITE, apt_mirror, cached_root, recipe_key

FAKE = """#!/bin/sh
# debootstrap --arch=... --variant=... --include=... SUITE TARGET MIRROR
echo "$@" >> "{calls}"
[ -e "{fail}" ] && exit 1
for f in {files}; do mkdir -p "$(dirname "$5/$f")"; touch "$5/$f"; done
"""


@pytest.fixture
def fake_debootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A debootstrap that makes the key files and logs its arguments to `calls`."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "debootstrap"
    script.write_text(FAKE.format(calls=tmp_path / "calls", fail=tmp_path / "fail",
                                  files=" ".join(KEY_FILES)), encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "calls"


def calls(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


class TestAptMirror:
    def test_deb822_stanza_of_the_release_itself(self, tmp_path: Path) -> None:
        """The URI of the stanza whose Suites name the release, not its security suite."""
        (tmp_path / "sources.list.d").mkdir()
        (tmp_path / "sources.list.d" / "debian.sources").write_text(
            "Types: deb\nURIs: http://security.example/debian-security\n"
            f"Suites: {SUITE}-security\n\n"
            f"Types: deb\nURIs: http://mirror.example/debian/\nSuites: {SUITE} {SUITE}-updates\n",
            encoding="utf-8")
        assert apt_mirror(tmp_path) == "http://mirror.example/debian"

    def test_one_line_format(self, tmp_path: Path) -> None:
        """`deb [options] URI SUITE components` in sources.list."""
        (tmp_path / "sources.list").write_text(
            f"# comment\ndeb [arch=amd64] http://old.example/debian {SUITE} main\n",
            encoding="utf-8")
        assert apt_mirror(tmp_path) == "http://old.example/debian"

    def test_nothing_configured_means_debians_own(self, tmp_path: Path) -> None:
        """No sources at all: deb.debian.org."""
        assert apt_mirror(tmp_path) == "http://deb.debian.org/debian"


class TestCachedRoot:
    def test_second_run_does_not_download_again(self, tmp_path: Path,
                                                fake_debootstrap: Path) -> None:
        """A good root is reused as it is."""
        first = cached_root(tmp_path / "var", "amd64")
        second = cached_root(tmp_path / "var", "amd64")
        assert first == second
        assert len(calls(fake_debootstrap)) == 1
        assert recipe_key("amd64") in first.name
        assert calls(fake_debootstrap)[0].startswith("--arch=amd64 ")

    def test_half_made_root_is_made_again(self, tmp_path: Path, fake_debootstrap: Path) -> None:
        """A root missing a key file (a cut-short build, a hand edit) is rebuilt."""
        root = cached_root(tmp_path / "var", "amd64")
        (root / KEY_FILES[0]).unlink()
        again = cached_root(tmp_path / "var", "amd64")
        assert (again / KEY_FILES[0]).exists()
        assert len(calls(fake_debootstrap)) == 2

    def test_leftovers_and_older_recipes_are_removed(self, tmp_path: Path,
                                                     fake_debootstrap: Path) -> None:
        """A build cut short and a root of another recipe go before a new build."""
        var = tmp_path / "var"
        (var / "building-amd64" / "usr").mkdir(parents=True)
        (var / f"root-amd64-{SUITE}-000000000000" / "etc").mkdir(parents=True)
        root = cached_root(var, "amd64")
        assert sorted(p.name for p in var.iterdir()) == ["debootstrap-amd64.log", root.name]

    def test_each_architecture_has_its_own_root(self, tmp_path: Path,
                                                fake_debootstrap: Path) -> None:
        """Building the arm64 root keeps the amd64 one, and each is reused afterwards."""
        var = tmp_path / "var"
        amd64 = cached_root(var, "amd64")
        arm64 = cached_root(var, "arm64")
        assert amd64 != arm64
        assert amd64.is_dir()
        assert (cached_root(var, "amd64"), cached_root(var, "arm64")) == (amd64, arm64)
        assert [line.split()[0] for line in calls(fake_debootstrap)] == [
            "--arch=amd64", "--arch=arm64"]

    def test_failed_debootstrap_leaves_no_root_that_looks_good(
        self, tmp_path: Path, fake_debootstrap: Path
    ) -> None:
        """A failure is an error naming the log, and the next run tries again."""
        (tmp_path / "fail").touch()
        with pytest.raises(RuntimeError,
                           match=r"debootstrap failed \(1\); see .*debootstrap-amd64\.log"):
            cached_root(tmp_path / "var", "amd64")
        (tmp_path / "fail").unlink()
        cached_root(tmp_path / "var", "amd64")
        assert len(calls(fake_debootstrap)) == 2
