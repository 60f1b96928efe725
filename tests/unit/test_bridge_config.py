"""Tests for bridge.config and `se3-bridge check`: the TOML file (config/example.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge.cli import main
from bridge.config import (
    ENV_CONFIG,
    ENV_MQTT_PASSWORD_FILE,
    ENV_MQTT_USERNAME,
    Config,
    load_config,
    parse_config,
)
from bridge.errors import ConfigError, RecordError
from bridge.fields import EXT_TEXT_MAX, LOCATION_MAX, NAME_MAX, URL_MAX
from bridge.records import DeviceState, parse_as
from collectors.devices import device_record

# The documented example config, verbatim.
EXAMPLE_CONFIG = """\
[gateway]
sn = "SZCCKQRAIJBAH0002"            # or sn_file = "/path"
dev_sno = "ZKZCPI000120190807142601"
name = ""                            # default: host name
interface = ""                       # default: interface of the default route
sw_version_file = "/path/to/buildinfo"
sdk_version = ""                     # or sdk_version_file
data_path = "/data"                  # partition for disk_size / disk_free_size

[mqtt]
host = "127.0.0.1"
port = 1883
username = "bridge"                  # optional: leave both out for a broker without auth
password_file = "var/mqtt/bridge.pass"
topic_prefix = "se3"

[platform]
report_url = "http://127.0.0.1:9528/DeviceStatus"
login_url = ""
interval = 20
min_interval = 1.0
timeout = 10
ca_file = ""                         # extra CA bundle for https targets

[collectors]
metrics_interval = 10
probe_interval = 30

[[devices]]
ip = "192.168.1.101"
name = "aaa"
location = "95274d2c-0941-4d96-b032-ab200f81362c"
type = "2"
url = "rtsp://192.168.1.101:554/ch2"
probe = "rtsp"                       # rtsp | tcp:PORT | none
"""

DEVICE = {"ip": "10.0.0.1", "location": "L", "type": "2"}


def example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE_CONFIG)


def config_error(raw: dict[str, Any], env: dict[str, str] | None = None) -> str:
    """The message of the ConfigError that parse_config raises for `raw`."""
    with pytest.raises(ConfigError) as info:
        parse_config(raw, env=env)
    return str(info.value)


class TestContractExample:
    def test_parses(self) -> None:
        """The documented example config is a valid config, read as written."""
        config = parse_config(example())

        assert config.gateway.serial() == "SZCCKQRAIJBAH0002"
        assert config.gateway.dev_sno == "ZKZCPI000120190807142601"
        assert config.gateway.sw_version_file == Path("/path/to/buildinfo")
        assert config.gateway.data_path == Path("/data")
        assert (config.mqtt.host, config.mqtt.port, config.mqtt.username) == (
            "127.0.0.1", 1883, "bridge")
        assert config.mqtt.password_file == Path("var/mqtt/bridge.pass")
        assert config.platform.report_url == ["http://127.0.0.1:9528/DeviceStatus"]
        assert (config.platform.interval, config.platform.min_interval) == (20.0, 1.0)
        assert config.platform.timeout == 10.0
        assert config.platform.ca_file is None
        assert config.collectors.probe_interval == 30.0
        assert len(config.devices) == 1
        device = config.devices[0]
        assert (device.ip, device.name, device.type, device.probe) == (
            "192.168.1.101", "aaa", "2", "rtsp")

    def test_empty_file_gives_the_defaults(self) -> None:
        """An empty document is valid: every key has a default."""
        config = parse_config({})

        assert config.mqtt.topic_prefix == "se3"
        assert config.platform.interval == 20.0
        assert config.platform.min_interval == 1.0
        assert config.platform.retry_max == 60.0
        assert config.platform.report_url == []
        assert config.devices == []

    def test_config_is_frozen(self) -> None:
        """A loaded config cannot be changed by accident."""
        config = parse_config({})

        with pytest.raises(ValueError, match="frozen"):
            config.platform.interval = 5


class TestUnknownKeys:
    @pytest.mark.parametrize(
        ("raw", "key"),
        [
            ({"platform": {"intervall": 5}}, "platform.intervall"),
            ({"gateway": {"serial": "x"}}, "gateway.serial"),
            ({"mqtt": {"password": "x"}}, "mqtt.password"),
            ({"collectors": {"x": 1}}, "collectors.x"),
            ({"bridge": {"x": 1}}, "bridge.x"),
            ({"extra": {"x": 1}}, "extra"),
            ({"devices": [{**DEVICE, "colour": "red"}]}, "devices.0.colour"),
        ],
    )
    def test_unknown_key_is_named(self, raw: dict[str, Any], key: str) -> None:
        """An unknown key is a ConfigError naming `section.key`."""
        assert f"{key}: unknown key" in config_error(raw)

    def test_every_error_is_listed(self) -> None:
        """Several problems are all named in one message."""
        message = config_error({"platform": {"a": 1, "interval": -1}, "mqtt": {"b": 2}})

        assert "platform.a: unknown key" in message
        assert "mqtt.b: unknown key" in message
        assert "platform.interval" in message

    def test_message_names_the_source(self) -> None:
        """The message starts with the file it came from."""
        with pytest.raises(ConfigError, match=r"^/etc/se3\.toml: "):
            parse_config({"x": 1}, source="/etc/se3.toml")


class TestBadValues:
    @pytest.mark.parametrize(
        ("raw", "key"),
        [
            ({"platform": {"interval": 0}}, "platform.interval"),
            ({"platform": {"interval": 1e-9}}, "platform.interval"),
            ({"platform": {"retry_min": 1e-9}}, "platform.retry_min"),
            ({"platform": {"interval": -5}}, "platform.interval"),
            ({"platform": {"interval": "often"}}, "platform.interval"),
            ({"platform": {"interval": 100_000}}, "platform.interval"),
            ({"platform": {"min_interval": -1}}, "platform.min_interval"),
            ({"platform": {"timeout": 0}}, "platform.timeout"),
            ({"platform": {"login_url": "ftp://x"}}, "platform.login_url"),
            ({"mqtt": {"port": 0}}, "mqtt.port"),
            ({"mqtt": {"port": 70000}}, "mqtt.port"),
            ({"mqtt": {"qos": 2}}, "mqtt.qos"),
            ({"mqtt": {"topic_prefix": ""}}, "mqtt.topic_prefix"),
            ({"mqtt": {"topic_prefix": "se3/#"}}, "mqtt.topic_prefix"),
            ({"mqtt": {"topic_prefix": "/se3"}}, "mqtt.topic_prefix"),
            ({"mqtt": {"topic_prefix": "se3/"}}, "mqtt.topic_prefix"),
            ({"bridge": {"max_devices": 0}}, "bridge.max_devices"),
            ({"bridge": {"metrics_listen": "9530"}}, "bridge.metrics_listen"),
            ({"collectors": {"ttl_factor": 1}}, "collectors.ttl_factor"),
            ({"collectors": {"probe_timeout": 11}}, "collectors.probe_timeout"),
            ({"devices": [{**DEVICE, "type": "9"}]}, "devices.0.type"),
            ({"devices": [{**DEVICE, "type": 2}]}, "devices.0.type"),
            ({"devices": [DEVICE, {**DEVICE, "ip": "10.0.0.2", "type": "5"}]}, "devices.1.type"),
            ({"devices": [{**DEVICE, "ip": "10.0.0.300"}]}, "devices.0.ip"),
            ({"devices": [{**DEVICE, "location": ""}]}, "devices.0.location"),
            ({"devices": [{"ip": "10.0.0.1", "type": "2"}]}, "devices.0.location"),
        ],
    )
    def test_bad_value_names_the_key(self, raw: dict[str, Any], key: str) -> None:
        """A bad value is a ConfigError whose message names the dotted key."""
        assert f"{key}: " in config_error(raw)

    @pytest.mark.parametrize("probe", ["ssh", "tcp:", "tcp:0", "tcp:70000", "tcp:080", "RTSP",
                                       "tcp:80 ", "rtsp,tcp:80"])
    def test_bad_probe_syntax(self, probe: str) -> None:
        """A probe other than rtsp, tcp:PORT or none is refused, naming the key and the forms."""
        message = config_error({"devices": [{**DEVICE, "probe": probe}]})

        assert "devices.0.probe: must be rtsp, tcp:PORT or none" in message

    @pytest.mark.parametrize("probe", ["rtsp", "none", "tcp:1", "tcp:554", "tcp:65535"])
    def test_good_probe_syntax(self, probe: str) -> None:
        """The three probe forms are accepted."""
        assert parse_config({"devices": [{**DEVICE, "probe": probe}]}).devices[0].probe == probe

    @pytest.mark.parametrize("probe", ["rtsp\n", "none\n", "tcp:554\n"])
    def test_probe_with_trailing_newline_is_refused(self, probe: str) -> None:
        """A probe with a trailing newline is not one of the three forms."""
        assert "devices.0.probe" in config_error({"devices": [{**DEVICE, "probe": probe}]})

    @pytest.mark.parametrize(
        ("raw", "key"),
        [({"platform": {"interval": True}}, "platform.interval"),
         ({"mqtt": {"qos": True}}, "mqtt.qos"),
         ({"mqtt": {"port": True}}, "mqtt.port")],
    )
    def test_boolean_for_a_number_is_refused(self, raw: dict[str, Any], key: str) -> None:
        """A TOML boolean where a number belongs is a bad value naming the key."""
        assert f"{key}: " in config_error(raw)

    def test_env_override_does_not_hide_a_bad_mqtt_section(self) -> None:
        """`mqtt = "x"` is refused even when SE3_MQTT_USERNAME is set."""
        assert "mqtt: " in config_error({"mqtt": "x"}, env={ENV_MQTT_USERNAME: "u"})

    def test_device_ip_is_canonical(self) -> None:
        """A device IP is stored in canonical form."""
        config = parse_config({"devices": [{**DEVICE, "ip": " 2001:DB8::0001 "}]})

        assert config.devices[0].ip == "2001:db8::1"


class TestReportUrl:
    def test_refusal_never_echoes_credentials(self) -> None:
        """A refused URL's message leaves out its user info (a password may be in it)."""
        with pytest.raises(ConfigError) as err:
            parse_config({"platform": {"report_url": "ftp://user:s3cret@host/x"}})

        assert "s3cret" not in str(err.value)
        assert "platform.report_url" in str(err.value)

    def test_one_url_as_a_string(self) -> None:
        """report_url may be one URL."""
        config = parse_config({"platform": {"report_url": "https://p.example/DeviceStatus"}})

        assert config.platform.report_url == ["https://p.example/DeviceStatus"]

    def test_a_list(self) -> None:
        """report_url may be a list of URLs."""
        urls = ["http://a.example/r", "https://b.example/r"]

        assert parse_config({"platform": {"report_url": urls}}).platform.report_url == urls

    def test_comma_separated_string(self) -> None:
        """A string with commas is several URLs, blanks dropped."""
        config = parse_config({"platform": {"report_url": "http://a/r, http://b/r,"}})

        assert config.platform.report_url == ["http://a/r", "http://b/r"]

    def test_empty_string_is_no_url(self) -> None:
        """An empty report_url means none (the login or the config topic gives one)."""
        assert parse_config({"platform": {"report_url": ""}}).platform.report_url == []

    @pytest.mark.parametrize(
        "bad", ["ftp://a/r", "a.example/r", "https://", ["http://a/r", "mailto:x@y"], [1]]
    )
    def test_bad_url_names_the_key(self, bad: object) -> None:
        """A report_url that is not http(s) is refused, naming platform.report_url."""
        assert "platform.report_url" in config_error({"platform": {"report_url": bad}})

    def test_url_with_a_bad_port_is_refused(self) -> None:
        """A report_url whose port is out of range is refused at check time."""
        assert "platform.report_url" in config_error(
            {"platform": {"report_url": "http://a.example:99999/r"}})

    def test_one_letter_host_is_accepted(self) -> None:
        """http://a, a valid URL whose host is one letter, is accepted."""
        assert parse_config({"platform": {"report_url": "http://a"}}).platform.report_url == [
            "http://a"]

    def test_empty_ca_file_is_none(self) -> None:
        """ca_file = "" means no extra CA."""
        assert parse_config({"platform": {"ca_file": ""}}).platform.ca_file is None


class TestDevices:
    def test_duplicate_ips_are_refused(self) -> None:
        """The same device IP listed twice is refused, naming it."""
        message = config_error({"devices": [DEVICE, {**DEVICE, "name": "again"}]})

        assert "devices: " in message
        assert "10.0.0.1 is listed twice" in message

    def test_duplicates_are_found_after_canonicalisation(self) -> None:
        """Two spellings of one IPv6 address are the same device."""
        message = config_error(
            {"devices": [{**DEVICE, "ip": "2001:db8::1"}, {**DEVICE, "ip": "2001:DB8:0::1"}]}
        )

        assert "listed twice" in message

    def test_defaults(self) -> None:
        """A device needs only ip, location and type; name, url and probe default."""
        device = parse_config({"devices": [DEVICE]}).devices[0]

        assert (device.name, device.url, device.probe) == ("", "", "none")

    @pytest.mark.parametrize(
        ("url", "probe"),
        [("rtsp://10.0.0.1:554/ch2", "rtsp"), ("RTSP://10.0.0.1/x", "rtsp"),
         ("http://10.0.0.1/", "none"), ("", "none")],
    )
    def test_probe_defaults_to_rtsp_for_an_rtsp_url(self, url: str, probe: str) -> None:
        """A camera with an rtsp:// url is watched without saying so; others are not probed."""
        device = parse_config({"devices": [{**DEVICE, "url": url}]}).devices[0]

        assert device.probe == probe

    def test_probe_given_wins_over_the_url(self) -> None:
        entry = {**DEVICE, "url": "rtsp://10.0.0.1/x", "probe": "tcp:80"}

        assert parse_config({"devices": [entry]}).devices[0].probe == "tcp:80"

    @pytest.mark.parametrize(
        ("key", "value"),
        [("name", "n" * (NAME_MAX + 1)), ("location", "L" * (LOCATION_MAX + 1)),
         ("location", "   "), ("url", "rtsp://10.0.0.1/" + "x" * URL_MAX),
         ("sw_version", "v" * (EXT_TEXT_MAX + 1)), ("group_name", "g" * (EXT_TEXT_MAX + 1))],
    )
    def test_limits_are_the_bridges(self, key: str, value: str) -> None:
        """A field the bridge's record parser would refuse is refused here, naming the key.

        Otherwise the device would never appear in the report, without a word.
        """
        message = config_error({"devices": [{**DEVICE, key: value}]})

        assert f"devices.0.{key}: " in message
        record: dict[str, object] = {"ep_status": "online", "ep_type": "2", "ep_location": "L"}
        if key in ("sw_version", "group_name"):
            record["ep_ext_data"] = {key: value}
        else:
            record[f"ep_{key}"] = value
        with pytest.raises(RecordError):
            parse_as(DeviceState, orjson.dumps(record))

    def test_longest_fields_pass_both(self) -> None:
        """Fields at their limits pass the config and the bridge alike."""
        entry = {**DEVICE, "name": "n" * NAME_MAX, "location": "L" * LOCATION_MAX,
                 "url": "u" * URL_MAX, "sw_version": "v" * EXT_TEXT_MAX,
                 "group_name": "g" * EXT_TEXT_MAX}
        device = parse_config({"devices": [entry]}).devices[0]

        assert (device.sw_version, device.group_name) == ("v" * EXT_TEXT_MAX, "g" * EXT_TEXT_MAX)
        parse_as(DeviceState, orjson.dumps(device_record(device, True, 1.0, 60.0)),
                 key=device.ip)

    def test_sw_version_and_group_name_default_empty(self) -> None:
        """Both are optional; "" means not given."""
        device = parse_config({"devices": [DEVICE]}).devices[0]

        assert (device.sw_version, device.group_name) == ("", "")


class TestFormat:
    def test_default_is_v1(self) -> None:
        """Without platform.format the payload is v1, the seed release."""
        assert parse_config({}).platform.format == "v1"

    def test_v2(self) -> None:
        assert parse_config({"platform": {"format": "v2"}}).platform.format == "v2"

    def test_unknown_version_names_the_key(self) -> None:
        """Another value stops the program, naming platform.format."""
        assert "platform.format: " in config_error({"platform": {"format": "V2"}})


class TestEnvironment:
    def test_username_override(self) -> None:
        """SE3_MQTT_USERNAME replaces mqtt.username."""
        config = parse_config(example(), env={ENV_MQTT_USERNAME: "collector"})

        assert config.mqtt.username == "collector"
        assert config.mqtt.password_file == Path("var/mqtt/bridge.pass")

    def test_password_file_override(self) -> None:
        """SE3_MQTT_PASSWORD_FILE replaces mqtt.password_file."""
        config = parse_config(example(), env={ENV_MQTT_PASSWORD_FILE: "/run/se3/c.pass"})

        assert config.mqtt.password_file == Path("/run/se3/c.pass")
        assert config.mqtt.username == "bridge"

    def test_override_without_mqtt_section(self) -> None:
        """The overrides work when the file has no [mqtt] section."""
        config = parse_config({}, env={ENV_MQTT_USERNAME: "app"})

        assert config.mqtt.username == "app"
        assert config.mqtt.host == "127.0.0.1"

    def test_other_environment_is_ignored(self) -> None:
        """Unrelated variables change nothing."""
        config = parse_config(example(), env={"HOME": "/root", "SE3_OTHER": "x"})

        assert config.mqtt.username == "bridge"

    def test_load_config_reads_the_environment(self, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        """load_config applies the process environment's overrides."""
        path = tmp_path / "se3.toml"
        path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
        monkeypatch.setenv(ENV_MQTT_USERNAME, "debug")

        assert load_config(path).mqtt.username == "debug"


class TestSecretsAndFiles:
    def test_password_from_file(self, tmp_path: Path) -> None:
        """password() reads the password file, whitespace stripped."""
        secret = tmp_path / "bridge.pass"
        secret.write_text("s3cret\n", encoding="utf-8")

        config = parse_config({"mqtt": {"password_file": str(secret)}})

        assert config.mqtt.password() == "s3cret"

    def test_no_password_file_is_no_auth(self) -> None:
        """Without password_file, password() is None."""
        assert parse_config({}).mqtt.password() is None

    def test_missing_password_file(self, tmp_path: Path) -> None:
        """An unreadable password file is a ConfigError naming mqtt.password_file."""
        config = parse_config({"mqtt": {"password_file": str(tmp_path / "nope")}})

        with pytest.raises(ConfigError, match=r"^mqtt\.password_file: cannot read"):
            config.mqtt.password()

    def test_serial_from_sn_file(self, tmp_path: Path) -> None:
        """serial() reads sn_file when sn is empty."""
        sn = tmp_path / "serial"
        sn.write_text("  SZCCKQRAIJBAH0009\n", encoding="utf-8")

        assert parse_config({"gateway": {"sn_file": str(sn)}}).gateway.serial() == (
            "SZCCKQRAIJBAH0009")

    def test_sn_wins_over_sn_file(self, tmp_path: Path) -> None:
        """When both are given, sn is used and the file is not read."""
        config = parse_config({"gateway": {"sn": "A", "sn_file": str(tmp_path / "missing")}})

        assert config.gateway.serial() == "A"

    def test_unreadable_sn_file(self, tmp_path: Path) -> None:
        """An unreadable sn_file is a ConfigError naming gateway.sn_file."""
        config = parse_config({"gateway": {"sn_file": str(tmp_path / "missing")}})

        with pytest.raises(ConfigError, match=r"^gateway\.sn_file"):
            config.gateway.serial()


class TestRequire:
    def test_present_keys_pass(self) -> None:
        """require() is silent when every key has a value."""
        parse_config(example()).require("gateway.sn", "gateway.dev_sno", "platform.report_url")

    def test_missing_keys_are_named(self) -> None:
        """require() names every empty key."""
        config = parse_config({})

        with pytest.raises(ConfigError) as info:
            config.require("gateway.sn", "gateway.dev_sno", "mqtt.host")

        message = str(info.value)
        assert "gateway.sn: required by this program" in message
        assert "gateway.dev_sno: required by this program" in message
        assert "mqtt.host" not in message

    def test_sn_file_satisfies_gateway_sn(self) -> None:
        """gateway.sn is satisfied by sn_file as well."""
        parse_config({"gateway": {"sn_file": "/etc/serial"}}).require("gateway.sn")

    def test_empty_list_is_missing(self) -> None:
        """An empty report_url list does not satisfy require()."""
        with pytest.raises(ConfigError, match=r"platform\.report_url"):
            parse_config({}).require("platform.report_url")


class TestLoadConfig:
    def test_reads_a_file(self, tmp_path: Path) -> None:
        """load_config reads and validates a TOML file."""
        path = tmp_path / "se3.toml"
        path.write_text(EXAMPLE_CONFIG, encoding="utf-8")

        assert isinstance(load_config(path), Config)
        assert isinstance(load_config(str(path)), Config)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming it."""
        path = tmp_path / "absent.toml"

        with pytest.raises(ConfigError, match="cannot read") as info:
            load_config(path)

        assert str(path) in str(info.value)

    def test_bad_toml(self, tmp_path: Path) -> None:
        """A file that is not TOML is a ConfigError naming it."""
        path = tmp_path / "bad.toml"
        path.write_text("[platform\ninterval = ", encoding="utf-8")

        with pytest.raises(ConfigError, match="not valid TOML") as info:
            load_config(path)

        assert str(path) in str(info.value)

    def test_errors_name_the_file(self, tmp_path: Path) -> None:
        """A validation error names the file and the key."""
        path = tmp_path / "se3.toml"
        path.write_text("[platform]\ninterval = 0\n", encoding="utf-8")

        with pytest.raises(ConfigError, match=rf"^{path}: platform\.interval: "):
            load_config(path)

    def test_no_path_and_no_environment(self) -> None:
        """Without --config and $SE3_CONFIG there is a ConfigError saying how to give one."""
        with pytest.raises(ConfigError, match=ENV_CONFIG):
            load_config(None)

    def test_path_from_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """$SE3_CONFIG names the file when no path is given."""
        path = tmp_path / "se3.toml"
        path.write_text('[gateway]\nsn = "FROM-ENV"\n', encoding="utf-8")
        monkeypatch.setenv(ENV_CONFIG, str(path))

        assert load_config().gateway.sn == "FROM-ENV"



def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "se3.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


class TestShippedConfigs:
    @pytest.mark.parametrize("name", ["example.toml", "demo.toml"])
    def test_shipped_config_is_valid(self, name: str) -> None:
        """config/example.toml (every key) and config/demo.toml parse as they are."""
        path = Path(__file__).resolve().parents[2] / "config" / name
        raw = tomllib.loads(path.read_text(encoding="utf-8"))

        config = parse_config(raw, source=name)

        assert config.receiver.port == 9528


@pytest.mark.usefixtures("restore_logging")
class TestCheckCommand:
    def test_valid_config_exits_0(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`se3-bridge check` on a valid file exits 0 and says so on stdout."""
        secret = tmp_path / "bridge.pass"
        secret.write_text("pw\n", encoding="utf-8")
        text = EXAMPLE_CONFIG.replace("var/mqtt/bridge.pass", str(secret))

        code = main(["--config", write(tmp_path, text), "check"])

        out, err = capsys.readouterr()
        assert code == 0
        assert "config OK" in out
        assert "SZCCKQRAIJBAH0002" in out
        assert "release V2R2C01 (F2)" in out
        assert "sub-device report" not in out
        assert err == ""

    def test_a_two_report_release_names_both(self, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
        """Under V6 `check` names both reports and where each goes."""
        secret = tmp_path / "bridge.pass"
        secret.write_text("pw\n", encoding="utf-8")
        text = EXAMPLE_CONFIG.replace("var/mqtt/bridge.pass", str(secret)).replace(
            "[platform]\n", '[platform]\nrelease = "V6R1C01"\n'
            'devices_report_url = "http://user:pw@127.0.0.1:9528/media"\n')

        code = main(["--config", write(tmp_path, text), "check"])

        out, _ = capsys.readouterr()
        assert code == 0
        assert "release V6R1C01 (F7)" in out
        assert "sub-device report (F8) to http://127.0.0.1:9528/media" in out
        assert "pw@" not in out

    def test_unknown_key_exits_2(self, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown key exits 2 with a message on stderr naming it."""
        code = main(["--config", write(tmp_path, '[gateway]\nsn = "A"\n[platform]\nfoo = 1\n'),
                     "check"])

        out, err = capsys.readouterr()
        assert code == 2
        assert "platform.foo: unknown key" in err
        assert out == ""

    def test_bad_value_exits_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A bad value exits 2 naming the key."""
        text = ('[gateway]\nsn = "A"\n[[devices]]\nip = "10.0.0.1"\nlocation = "L"\n'
                'type = "7"\n')

        code = main(["--config", write(tmp_path, text), "check"])

        assert code == 2
        assert "devices.0.type" in capsys.readouterr().err

    def test_missing_serial_exits_2(self, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        """The bridge needs gateway.sn: without it check exits 2 naming it."""
        code = main(["--config", write(tmp_path, ""), "check"])

        assert code == 2
        assert "gateway.sn: required" in capsys.readouterr().err

    def test_unreadable_password_file_exits_2(self, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
        """A password file that cannot be read exits 2 naming mqtt.password_file."""
        text = f'[gateway]\nsn = "A"\n[mqtt]\npassword_file = "{tmp_path / "nope"}"\n'

        code = main(["--config", write(tmp_path, text), "check"])

        assert code == 2
        assert "mqtt.password_file" in capsys.readouterr().err

    def test_missing_file_exits_2(self, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
        """A config file that does not exist exits 2."""
        code = main(["--config", str(tmp_path / "absent.toml"), "check"])

        assert code == 2
        assert "cannot read" in capsys.readouterr().err

    def test_config_from_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """Without --config, check uses $SE3_CONFIG."""
        monkeypatch.setenv(ENV_CONFIG, write(tmp_path, '[gateway]\nsn = "ENV-SN"\n'))

        assert main(["check"]) == 0
        assert "ENV-SN" in capsys.readouterr().out


    def test_options_after_the_command(self, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        """`se3-bridge check --config PATH` works as `se3-bridge --config PATH check` does."""
        code = main(["check", "--config", write(tmp_path, '[gateway]\nsn = "AFTER"\n'),
                     "--log-level", "warning"])

        assert code == 0
        assert "AFTER" in capsys.readouterr().out

    def test_option_before_the_command_is_not_undone_after_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A subcommand without --config keeps the one given before it."""
        monkeypatch.setenv(ENV_CONFIG, write(tmp_path, '[gateway]\nsn = "ENV-SN"\n'))
        before = tmp_path / "before.toml"
        before.write_text('[gateway]\nsn = "BEFORE"\n', encoding="utf-8")

        assert main(["--config", str(before), "check"]) == 0
        assert "BEFORE" in capsys.readouterr().out


class TestSerialAndFiles:
    @pytest.mark.parametrize("sn", ["SZ/1", "SZ+", "SZ#", "a b", "x" * 65])
    def test_serial_that_cannot_be_a_topic_level_is_refused(self, sn: str) -> None:
        """gateway.sn must be safe as a topic level and in X-Report-Id."""
        with pytest.raises(ConfigError, match=r"gateway\.sn"):
            parse_config({"gateway": {"sn": sn}})

    def test_serial_file_is_checked_too(self, tmp_path: Path) -> None:
        """An sn_file whose content is not a serial is a ConfigError naming the key."""
        path = tmp_path / "sn"
        path.write_text("bad/serial\n", encoding="utf-8")
        config = parse_config({"gateway": {"sn_file": str(path)}})

        with pytest.raises(ConfigError, match=r"gateway\.sn_file"):
            config.gateway.serial()

    def test_missing_ca_file_is_refused(self, tmp_path: Path) -> None:
        """platform.ca_file must exist: a typo stops the program instead of every delivery."""
        with pytest.raises(ConfigError, match=r"platform\.ca_file: no such file"):
            parse_config({"platform": {"ca_file": str(tmp_path / "nope.pem")}})

    def test_bad_log_level_exits_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown --log-level is a usage error (exit 2), not a traceback."""
        with pytest.raises(SystemExit) as err:
            main(["--log-level", "bogus", "check"])

        assert err.value.code == 2
        assert "--log-level" in capsys.readouterr().err


class TestDeviceEntryControlCharacters:
    """`[[devices]]` strings have the records' rule for control characters, so a device
    the bridge would refuse never passes `check`."""

    @pytest.mark.parametrize("key", ["name", "location", "url", "group_name"])
    @pytest.mark.parametrize("char", ["\x00", "\n", "\x1b", "\x85", "\u202e"])
    def test_refused_naming_the_key(self, key: str, char: str) -> None:
        entry = {"ip": "10.0.0.1", "location": "loc", "type": "2", key: f"a{char}b"}
        message = config_error({"devices": [entry]})
        assert f"devices.0.{key}: control character U+{ord(char):04X} not allowed" in message

    def test_sw_version_keeps_line_breaks_as_in_records(self) -> None:
        entry = {"ip": "10.0.0.1", "location": "loc", "type": "2", "sw_version": "V2\nR1"}
        assert parse_config({"devices": [entry]}).devices[0].sw_version == "V2\nR1"
        entry["sw_version"] = "V2\x00"
        assert "devices.0.sw_version: control character U+0000" in config_error(
            {"devices": [entry]})

    def test_check_fails_where_the_bridge_refuses(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "c.toml"
        path.write_text('[gateway]\nsn = "SN1"\n\n[[devices]]\nip = "10.0.0.1"\n'
                        'location = "loc"\ntype = "2"\nname = "door\\u202e"\n', encoding="utf-8")
        assert main(["--config", str(path), "check"]) == 2
        assert "devices.0.name: control character U+202E" in capsys.readouterr().err
        entry = parse_config({"devices": [{"ip": "10.0.0.1", "location": "loc",
                                            "type": "2"}]}).devices[0]
        record = device_record(entry, True, 1.0, 30.0)
        with pytest.raises(RecordError, match="U\\+202E"):
            parse_as(DeviceState, orjson.dumps({**record, "ep_name": "door\u202e"}), "10.0.0.1")
