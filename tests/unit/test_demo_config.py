"""The config of one demo run (demo/config.py): config/demo.toml with a release and ports."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from demo.config import PORTS, DemoConfigError, main, render, write
from receiver.cli import parse_args

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo.toml"
OTHER = {"mqtt": 11883, "receiver": 19528, "metrics": 19530, "console": 15555,
         "system": 18888}


def test_release_and_ports_reach_every_program(tmp_path: Path) -> None:
    """The bridge's and the receiver's release, and each port where every program reads it."""
    out = tmp_path / "demo.toml"
    write(DEMO, out, "V2R4C01", OTHER)
    config = tomllib.loads(out.read_text(encoding="utf-8"))
    assert (config["platform"]["release"], config["receiver"]["release"]) == ("V2R4C01",) * 2
    assert config["mqtt"]["port"] == 11883
    assert config["platform"]["login_url"] == "http://127.0.0.1:19528/api/gateway/login"
    assert config["platform"]["report_url"] == "http://127.0.0.1:19528/DeviceStatus"
    assert config["receiver"]["port"] == 19528
    assert config["bridge"]["metrics_listen"] == "127.0.0.1:19530"
    assert (config["console"]["listen"], config["console"]["system_listen"]) == (
        "127.0.0.1:15555", "127.0.0.1:18888")
    args = parse_args(["--config", str(out)], environ={})
    assert (args.port, args.release) == (19528, "V2R4C01")


@pytest.mark.parametrize(("release", "path"), [
    ("V5R7C01", "/box/monitor/device/status/report"),
    ("V6R1C01", "/box/media/monitor/status/report"),
])
def test_two_report_releases_point_the_sub_device_report(
    tmp_path: Path, release: str, path: str
) -> None:
    """The sub-device report goes to the reference platform's path for it, from the start;
    the gateway report to the path the release's login issues, so that the login does
    not move it."""
    out = tmp_path / "demo.toml"
    write(DEMO, out, release, {"receiver": 19528})
    platform = tomllib.loads(out.read_text(encoding="utf-8"))["platform"]
    assert platform["devices_report_url"] == f"http://127.0.0.1:19528{path}"
    assert platform["report_url"] == "http://127.0.0.1:19528/box/monitor/status/report"


def test_defaults_are_the_file_itself() -> None:
    """The seed and the default ports change nothing: config/demo.toml is the default run."""
    text = DEMO.read_text(encoding="utf-8")
    assert render(text, "V2R2C01", PORTS) == text


@pytest.mark.parametrize(("release", "ports", "complaint"), [
    ("V9R9C09", {}, "release"),
    ("V2R2C01", {"receiver": 1883}, "two of the demo's ports are the same"),
    ("V2R2C01", {"console": 70000}, "port console=70000 is not from 1 to 65535"),
    ("V2R2C01", {"web": 8080}, "unknown port 'web'"),
])
def test_what_no_program_would_take_is_refused(
    tmp_path: Path, release: str, ports: dict[str, int], complaint: str
) -> None:
    out = tmp_path / "demo.toml"
    with pytest.raises(DemoConfigError, match=complaint):
        write(DEMO, out, release, ports)
    assert not out.exists()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`make run`'s call: 0 and one line saying what it wrote; 2 and the reason."""
    out = tmp_path / "demo.toml"
    assert main(["--source", str(DEMO), "--out", str(out), "--release", "V2R3C01",
                 "--port", "receiver=19528"]) == 0
    assert capsys.readouterr().out == (
        f"demo config: {out} plays V2R3C01; ports mqtt 1883, watch 1884, receiver 19528, "
        "metrics 9530, console 5555, system 8888\n")
    assert main(["--source", str(DEMO), "--out", str(out), "--release", "V2R3C01",
                 "--port", "mqtt=21883"]) == 0
    assert "ports mqtt 21883, watch 21884, " in capsys.readouterr().out  # what it wrote
    assert main(["--source", str(DEMO), "--out", str(out), "--release", "V0R0C00"]) == 2
    assert "demo config: " in capsys.readouterr().err


def test_the_watchers_port_follows_the_mqtt_port(tmp_path: Path) -> None:
    """`se3-bridge status` and `snapshot` connect to the watchers' port: by default the
    MQTT port + 1, as the broker's setup makes it; both may be given."""
    out = tmp_path / "demo.toml"
    write(DEMO, out, "V2R2C01", {"mqtt": 21883})
    mqtt = tomllib.loads(out.read_text(encoding="utf-8"))["mqtt"]
    assert (mqtt["port"], mqtt["watch_port"]) == (21883, 21884)
    write(DEMO, out, "V2R2C01", {"mqtt": 21883, "watch": 21990})
    mqtt = tomllib.loads(out.read_text(encoding="utf-8"))["mqtt"]
    assert (mqtt["port"], mqtt["watch_port"]) == (21883, 21990)
