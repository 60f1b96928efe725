"""`se3-collector` without a broker: arguments, record checks and exit codes."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from bridge import options
from bridge.errors import RecordError
from collectors import cli
from collectors.publish import DeviceUpdate, device_payload
from demo.broker import free_port


@pytest.fixture(autouse=True)
def _no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() would replace the root handlers; pytest's capture stays in place instead."""
    monkeypatch.setattr(options, "setup_logging", lambda *_args: None)



@pytest.fixture
def conf(tmp_path: Path) -> Path:
    """A config whose broker port has nobody listening."""
    sw = tmp_path / "buildinfo"
    sw.write_text("VERSION: V2R1C01\n", encoding="utf-8")
    path = tmp_path / "se3.toml"
    path.write_text(
        f'[gateway]\nsn = "SN1"\ndev_sno = "DEV1"\nsw_version_file = "{sw}"\ndata_path = "/"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n',
        encoding="utf-8",
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


class TestExitCodes:
    def test_no_config(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Neither --config nor $SE3_CONFIG: exit 2 saying how to give one."""
        code, err = run(capsys, "devices", "--once")
        assert code == 2
        assert "SE3_CONFIG" in err

    def test_invalid_config_names_the_key(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """An unknown key stops the command with exit 2 and the key's name."""
        path = tmp_path / "bad.toml"
        path.write_text('[collectors]\nprobe_intervall = 3\n', encoding="utf-8")
        code, err = run(capsys, "--config", str(path), "devices")
        assert code == 2
        assert err.startswith("se3-collector: configuration error: ")
        assert "collectors.probe_intervall: unknown key" in err

    @pytest.mark.parametrize(
        ("command", "key"),
        [(["devices"], "gateway.sn"), (["gateway", "--once"], "gateway.dev_sno"),
         (["publish", "remove", "--ip", "127.0.0.12"], "gateway.sn")],
    )
    def test_missing_required_key(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str], key: str
    ) -> None:
        """Each command names the key it needs and lacks, with exit 2."""
        path = tmp_path / "empty.toml"
        path.write_text("", encoding="utf-8")
        code, err = run(capsys, "--config", str(path), *command)
        assert code == 2
        assert f"{key}: required" in err

    @pytest.mark.parametrize(
        ("entry", "key"),
        [('name = "' + "n" * 257 + '"', "devices.0.name"),
         ('location = "  "', "devices.0.location"),
         ('group_name = "' + "g" * 257 + '"', "devices.0.group_name")],
    )
    def test_device_the_bridge_would_refuse_stops_the_collector(
        self, capsys: pytest.CaptureFixture[str], conf: Path, entry: str, key: str
    ) -> None:
        """A [[devices]] field over the bridge's limit: exit 2 at start, naming the key."""
        fields = {"ip": '"127.0.0.11"', "location": '"L"', "type": '"2"'}
        name, _, value = entry.partition(" = ")
        fields[name] = value
        body = "".join(f"{k} = {v}\n" for k, v in fields.items())
        conf.write_text(conf.read_text(encoding="utf-8") + "[[devices]]\n" + body,
                        encoding="utf-8")

        code, err = run(capsys, "--config", str(conf), "devices", "--once")

        assert code == 2
        assert f"{key}: " in err

    def test_publish_options(self, capsys: pytest.CaptureFixture[str], conf: Path) -> None:
        """`publish device` takes --sw-version and --group-name and checks them first."""
        code, err = run(capsys, "--config", str(conf), "publish", "device", "--ip", "127.0.0.12",
                        "--status", "online", "--type", "2", "--location", "L",
                        "--group-name", "g" * 257)

        assert code == 2
        assert "record refused: --group-name" in err

    def test_config_after_the_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--config is accepted after the command as well."""
        code, err = run(capsys, "devices", "--config", "/nonexistent/se3.toml")
        assert code == 2
        assert "/nonexistent/se3.toml" in err

    def test_refused_record_never_connects(
        self, capsys: pytest.CaptureFixture[str], conf: Path
    ) -> None:
        """A record the bridge would refuse is refused before any connection, exit 2,
        naming the flag."""
        code, err = run(
            capsys, "--config", str(conf), "publish", "device", "--ip", "127.0.0.12",
            "--status", "online", "--type", "2", "--location", " ",
        )
        assert code == 2
        assert "record refused: --location" in err

    def test_missing_flags_are_all_named(
        self, capsys: pytest.CaptureFixture[str], conf: Path
    ) -> None:
        """Without --type and --location, both are named at once (and --help marks them)."""
        with pytest.raises(SystemExit) as stopped:
            cli.main(["--config", str(conf), "publish", "device", "--ip", "127.0.0.12",
                      "--status", "online"])
        assert stopped.value.code == 2
        assert "required: --type, --location" in capsys.readouterr().err

    def test_an_app_is_told_a_configured_device_is_configured(
        self, capsys: pytest.CaptureFixture[str], conf: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """As an app user, a [[devices]] address is refused before sending, saying why."""
        conf.write_text(conf.read_text(encoding="utf-8")
                        + '[[devices]]\nip = "127.0.0.11"\nlocation = "L"\ntype = "2"\n',
                        encoding="utf-8")
        monkeypatch.setenv("SE3_MQTT_USERNAME", "app")
        code, err = run(capsys, "--config", str(conf), "publish", "device", "--ip",
                        "127.0.0.11", "--status", "online", "--type", "2", "--location", "L")
        assert code == 2
        assert "device 127.0.0.11 is configured ([[devices]] in the config)" in err


    def test_bad_ip(self, capsys: pytest.CaptureFixture[str], conf: Path) -> None:
        """An --ip that is no IP address is refused with exit 2."""
        code, err = run(capsys, "--config", str(conf), "publish", "remove", "--ip", "cam-1")
        assert code == 2
        assert "not an IP address" in err

    @pytest.mark.parametrize(
        "command",
        [["gateway", "--once"], ["devices", "--once"],
         ["publish", "device", "--ip", "127.0.0.12", "--status", "offline", "--type", "1",
          "--location", "L1"]],
    )
    def test_unreachable_broker(
        self, capsys: pytest.CaptureFixture[str], conf: Path, command: list[str]
    ) -> None:
        """No broker: exit 1 at once, saying that nothing listens at the broker's address."""
        start = time.monotonic()
        code, err = run(capsys, "--config", str(conf), *command, "--timeout", "30")
        assert code == 1
        assert "the MQTT broker at 127.0.0.1:" in err
        assert "refused the connection: nothing listens there" in err
        assert time.monotonic() - start < 5.0


class TestDevicePayload:
    def test_full_record(self) -> None:
        """Every option lands in its field; the IP in canonical form."""
        update = DeviceUpdate(
            ip="fe80:0::1", status="online", type="3", location="L1", name="cam",
            url="rtsp://[fe80::1]:554/", ttl=60.0, source="my-app",
        )
        assert orjson.loads(device_payload(update, ts=1_700_000_000.0)) == {
            "ep_status": "online", "ep_type": "3", "ep_location": "L1", "ep_ip": "fe80::1",
            "ep_name": "cam", "ep_url": "rtsp://[fe80::1]:554/", "ts": 1_700_000_000.0,
            "ttl": 60.0, "source": "my-app",
        }

    def test_sw_version_and_group_name(self) -> None:
        """--sw-version / --group-name become the record's ep_ext_data."""
        update = DeviceUpdate(ip="127.0.0.12", status="online", type="2", location="L",
                              sw_version="V2R1C01", group_name="staff")

        record = orjson.loads(device_payload(update, ts=5.0))

        assert record["ep_ext_data"] == {"sw_version": "V2R1C01", "group_name": "staff"}

    def test_minimal_record(self) -> None:
        """Without --ttl, --url and --source those keys are left out; ts is always there."""
        update = DeviceUpdate(ip="127.0.0.12", status="offline", type="0", location="L1")
        assert orjson.loads(device_payload(update, ts=5.0)) == {
            "ep_status": "offline", "ep_type": "0", "ep_location": "L1",
            "ep_ip": "127.0.0.12", "ep_name": "", "ts": 5.0,
        }

    @pytest.mark.parametrize(
        ("update", "field"),
        [
            (DeviceUpdate(ip="127.0.0.12", status="online", type="2"), "--location"),
            (DeviceUpdate(ip="127.0.0.12", status="online", location="L"), "--type"),
            (DeviceUpdate(ip="127.0.0.12", status="up", type="2", location="L"), "--status"),
            (DeviceUpdate(ip="127.0.0.12", status="online", type="2", location="L", ttl=0),
             "--ttl"),
            (DeviceUpdate(ip="127.0.0.12", status="online", type="2", location="L", source=""),
             "--source"),
        ],
    )
    def test_refused(self, update: DeviceUpdate, field: str) -> None:
        """What the bridge would refuse raises RecordError naming the command's flag."""
        with pytest.raises(RecordError) as caught:
            device_payload(update, ts=5.0)
        assert caught.value.field == field


class TestVersion:
    @pytest.mark.parametrize("program", ["bridge.cli", "collectors.cli", "receiver.cli",
                                         "console.cli"])
    def test_every_program_says_its_version(
        self, program: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--version` prints the program's name and the installed version, exit 0."""
        import importlib
        import importlib.metadata

        module = importlib.import_module(program)
        with pytest.raises(SystemExit) as stopped:
            module.main(["--version"])
        assert stopped.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("se3-")
        assert importlib.metadata.version("se3-bridge") in out
