"""Tests for deploy/: the systemd units are complete and hardened, install.sh installs.

The units are read with a small parser of systemd's syntax (a key may repeat,
which configparser refuses) and, where `systemd-analyze` is installed, verified
by it against a real install into a temporary DESTDIR. Nothing here touches the
system: install.sh runs with `--destdir` or `--dry-run` only.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from demo.broker import ROLES, find_tool

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
INSTALL = REPO / "deploy" / "install.sh"
PREFIX = "/opt/se3-bridge"
STATE = "/var/lib/se3/mqtt"
# unit -> the broker role it connects as (None: no MQTT client)
EXPECTED = {
    "se3-mosquitto.service": None,
    "se3-bridge.service": "bridge",
    "se3-collector-gateway.service": "collector-gateway",
    "se3-collector-devices.service": "collector-devices",
    "se3-console.service": "console",
    "se3-receiver.service": None,
}
Unit = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Unit:
    """{section: {key: [values in order]}}; comments, blanks and continuations handled."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"{path.name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not key=value"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}: expected one value, got {values}"
    return values[0]


def words(unit: Unit, section: str, key: str) -> list[str]:
    return " ".join(unit.get(section, {}).get(key, [])).split()


def environment(unit: Unit) -> dict[str, str]:
    env = {}
    for assignment in words(unit, "Service", "Environment"):
        name, _, value = assignment.partition("=")
        env[name] = value
    return env


@pytest.fixture(params=sorted(EXPECTED))
def unit_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


class TestUnitFiles:
    def test_exactly_the_expected_units(self) -> None:
        """deploy/systemd holds the broker, bridge, both collectors, console and receiver."""
        assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(EXPECTED)

    def test_started_after_the_network(self, unit_name: str) -> None:
        """Each unit is ordered after, and wants, network-online.target."""
        unit = parse_unit(UNITS / unit_name)
        assert one(unit, "Unit", "Description")
        assert "network-online.target" in words(unit, "Unit", "After")
        assert "network-online.target" in words(unit, "Unit", "Wants")
        assert one(unit, "Install", "WantedBy") == "multi-user.target"

    def test_restarts_on_failure_and_logs_to_journal(self, unit_name: str) -> None:
        """Restart=on-failure; stdout and stderr go to the journal."""
        unit = parse_unit(UNITS / unit_name)
        assert one(unit, "Service", "Restart") == "on-failure"
        assert one(unit, "Service", "StandardOutput") == "journal"
        assert one(unit, "Service", "StandardError") == "journal"
        assert one(unit, "Service", "SyslogIdentifier") == unit_name.removesuffix(".service")

    def test_hardened(self, unit_name: str) -> None:
        """No new privileges, read-only system, private tmp, no home, no capabilities."""
        unit = parse_unit(UNITS / unit_name)
        service = {key: values[-1] for key, values in unit["Service"].items()}
        assert service["NoNewPrivileges"] == "yes"
        assert service["ProtectSystem"] == "strict"
        assert service["PrivateTmp"] == "yes"
        assert service["ProtectHome"] == "yes"
        assert service["PrivateDevices"] == "yes"
        assert service["CapabilityBoundingSet"] == ""
        assert service.get("User") == "se3-mqtt" or service.get("DynamicUser") == "yes"

    def test_runs_installed_code(self, unit_name: str) -> None:
        """ExecStart runs a module of this project from the venv, or mosquitto."""
        unit = parse_unit(UNITS / unit_name)
        argv = one(unit, "Service", "ExecStart").split()
        if unit_name == "se3-mosquitto.service":
            assert argv == ["/usr/sbin/mosquitto", "-c", f"{STATE}/mosquitto.conf"]
            return
        # -P: the working directory is not put on sys.path, so only the venv's code runs.
        assert argv[:3] == [f"{PREFIX}/venv/bin/python", "-P", "-m"]
        assert importlib.util.find_spec(argv[3]) is not None, argv[3]

    @pytest.mark.parametrize(
        ("unit_name", "role"), [(u, r) for u, r in sorted(EXPECTED.items()) if r is not None]
    )
    def test_program_units_get_their_role(self, unit_name: str, role: str) -> None:
        """Bridge and collectors: SE3_CONFIG, their role, and only its password (a credential)."""
        assert role in ROLES
        unit = parse_unit(UNITS / unit_name)
        env = environment(unit)
        assert env["SE3_CONFIG"] == "/etc/se3/config.toml"
        assert env["SE3_MQTT_USERNAME"] == role
        credential = one(unit, "Service", "LoadCredential")
        name, _, source = credential.partition(":")
        assert source == f"{STATE}/{role}.pass"
        assert env["SE3_MQTT_PASSWORD_FILE"] == f"%d/{name}"
        assert "se3-mosquitto.service" in words(unit, "Unit", "After")

    def test_broker_unit_renders_its_state(self) -> None:
        """The broker renders the project's config into its state dir before each start."""
        unit = parse_unit(UNITS / "se3-mosquitto.service")
        pre = one(unit, "Service", "ExecStartPre")
        assert pre.startswith(f"{PREFIX}/venv/bin/python -m demo.broker setup --dir {STATE}")
        assert one(unit, "Service", "WorkingDirectory") == f"{PREFIX}/app"
        assert one(unit, "Service", "User") == "se3-mqtt"
        assert one(unit, "Service", "StateDirectory") == "se3/mqtt"
        assert STATE in words(unit, "Service", "ReadWritePaths")
        assert one(unit, "Service", "Type") == "notify"


def run_install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=300,
        check=False, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})},
    )


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """install.sh --destdir into a fresh directory (its venv left empty: no network)."""
    if find_tool("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not found (needed to render the broker): run `make deps`")
    root = tmp_path_factory.mktemp("destdir")
    done = run_install("--destdir", str(root), "--no-pip", "--python", sys.executable)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


class TestInstall:
    def test_installs_everything_under_destdir(self, staged: Path) -> None:
        """Code, venv, config, rendered broker, commands and units land under DESTDIR."""
        app = staged / PREFIX.lstrip("/") / "app"
        assert (app / "bridge" / "cli.py").is_file()
        assert (app / "mosquitto" / "acl.in").is_file()
        assert not list(app.rglob("__pycache__"))
        assert (staged / PREFIX.lstrip("/") / "venv" / "bin" / "python").exists()
        broker = staged / STATE.lstrip("/")
        for name in ("mosquitto.conf", "acl", "passwd", *(f"{r}.pass" for r in ROLES)):
            assert (broker / name).is_file(), name
        assert "listener 1883 127.0.0.1" in (broker / "mosquitto.conf").read_text()
        units = staged / "etc" / "systemd" / "system"
        assert sorted(p.name for p in units.glob("*.service")) == sorted(EXPECTED)
        for name in ("se3-bridge", "se3-collector"):
            wrapper = staged / "usr" / "local" / "bin" / name
            assert os.access(wrapper, os.X_OK)
            assert "SE3_CONFIG:=/etc/se3/config.toml" in wrapper.read_text()

    def test_config_from_example_validates(self, staged: Path) -> None:
        """The installed config is the example, for the read-only monitor user, and passes
        `check`."""
        config = staged / "etc" / "se3" / "config.toml"
        text = config.read_text()
        assert 'username = "monitor"' in text
        assert f'password_file = "{STATE}/monitor.pass"' in text
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "--config", str(config), "check"],
            capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ,
                 "SE3_MQTT_PASSWORD_FILE": str(staged / STATE.lstrip("/") / "monitor.pass")},
        )
        assert done.returncode == 0, done.stderr

    def test_second_run_keeps_config_and_passwords(self, staged: Path) -> None:
        """Run again: the edited config and every broker password stay as they were."""
        config = staged / "etc" / "se3" / "config.toml"
        config.write_text(config.read_text() + "# edited by the operator\n")
        broker = staged / STATE.lstrip("/")
        before = {p.name: p.read_text() for p in broker.glob("*.pass")}
        done = run_install("--destdir", str(staged), "--no-pip", "--python", sys.executable)
        assert done.returncode == 0, done.stdout + done.stderr
        assert config.read_text().endswith("# edited by the operator\n")
        assert {p.name: p.read_text() for p in broker.glob("*.pass")} == before
        assert "config.toml exists: kept" in done.stdout

    def test_units_pass_systemd_analyze_verify(self, staged: Path, tmp_path: Path) -> None:
        """`systemd-analyze verify` accepts the installed units, their programs present."""
        tool = shutil.which("systemd-analyze")
        if tool is None:
            pytest.skip("systemd-analyze not installed: units checked by parsing only")
        # verify insists that every Exec* program exists: point the units at DESTDIR.
        for unit in (staged / "etc" / "systemd" / "system").glob("*.service"):
            text = unit.read_text().replace(PREFIX, f"{staged}{PREFIX}")
            (tmp_path / unit.name).write_text(text)
        done = subprocess.run(
            [tool, "verify", "--man=no", *sorted(str(p) for p in tmp_path.glob("*.service"))],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == "", done.stderr

    def test_dry_run_changes_nothing(self, tmp_path: Path) -> None:
        """--dry-run prints the plan, systemctl included, and creates nothing."""
        root = tmp_path / "root"
        done = run_install("--dry-run", "--destdir", str(root), "--python", sys.executable)
        assert done.returncode == 0, done.stderr
        assert not root.exists()
        assert "-m venv" in done.stdout
        assert "-m pip install" in done.stdout
        assert "-m demo.broker setup --dir" in done.stdout
        plan = run_install("--dry-run", "--enable", "--python", sys.executable)
        assert plan.returncode == 0, plan.stderr
        assert "+ systemctl daemon-reload" in plan.stdout
        assert "+ systemctl enable --now se3-mosquitto.service" in plan.stdout
        assert "runuser -u se3-mqtt" in plan.stdout

    def test_unknown_option_is_refused(self) -> None:
        """A typo is exit 2, not an install with defaults."""
        done = run_install("--destdri", "/tmp/x")
        assert done.returncode == 2
        assert "unknown option --destdri" in done.stderr


class TestPackageHalves:
    """The two halves of install.sh the Debian package runs (deploy/debian/build.sh, postinst)."""

    def test_package_tree_has_the_files_in_debians_places(self, tmp_path: Path) -> None:
        """--package-tree: code, config, commands in /usr/bin, units in /lib/systemd/system;
        no venv, no broker state (its passwords are made on each box), no systemctl."""
        root = tmp_path / "tree"
        done = run_install("--package-tree", str(root))
        assert done.returncode == 0, done.stdout + done.stderr
        assert (root / PREFIX.lstrip("/") / "app" / "bridge" / "cli.py").is_file()
        assert not (root / PREFIX.lstrip("/") / "venv").exists()
        assert not (root / "var").exists()
        config = (root / "etc" / "se3" / "config.toml").read_text()
        assert 'username = "monitor"' in config
        units = root / "lib" / "systemd" / "system"
        assert sorted(p.name for p in units.glob("*.service")) == sorted(EXPECTED)
        assert not (root / "etc" / "systemd").exists()
        for name in ("se3-bridge", "se3-collector"):
            assert os.access(root / "usr" / "bin" / name, os.X_OK)
        assert not (root / "usr" / "local").exists()
        assert "systemctl" not in done.stdout

    def test_package_configure_installs_only_the_bundled_wheels(self) -> None:
        """--package-configure (the postinst): the venv from /opt/se3-bridge/wheels with no
        index, the broker's user and state, the services enabled; no file copied."""
        plan = run_install("--dry-run", "--package-configure", "--python", sys.executable)
        assert plan.returncode == 0, plan.stderr
        assert f"--no-index --find-links {PREFIX}/wheels --upgrade se3-bridge" in plan.stdout
        assert "runuser -u se3-mqtt" in plan.stdout
        assert "+ systemctl enable --now se3-mosquitto.service" in plan.stdout
        assert "+ cp " not in plan.stdout
        assert "+ install -m 0644" not in plan.stdout
