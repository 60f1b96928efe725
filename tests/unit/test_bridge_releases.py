"""Tests for bridge.releases: the table of platform releases and `[platform] release`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import parse_config
from bridge.errors import ConfigError
from bridge.releases import (
    CARRIES,
    LOGINS,
    RELEASE_NAMES,
    RELEASES,
    REPORT_FORMATS,
    check_format,
    login_variant,
    release,
)


class TestTable:
    @pytest.mark.parametrize(("name", "reports", "login"), [
        ("V2R1C01", ("F1",), "L0"),
        ("V2R2C01", ("F2",), "L1"),
        ("V2R3C01", ("F2",), "L2"),
        ("V2R4C01", ("F2",), "L2"),
        ("V2R6C01", ("F4",), "L3"),
        ("V5R2C01", ("F2",), "L3"),
        ("V5R3C01", ("F2",), "L3"),
        ("V5R4C01", ("F2",), "L3"),
        ("V5R5C01", ("F2",), "L3"),
        ("V5R6C01", ("F4",), "L3"),
        ("V5R7C01", ("F5", "F6"), "L3"),
        ("V6R1C01", ("F7", "F8"), "L4"),
        ("V6R2C01", ("F7", "F8"), "L4"),
    ])
    def test_each_release(self, name: str, reports: tuple[str, ...], login: str) -> None:
        """Each release sends the vendor's linked report(s) and logs in its variant."""
        found = release(name)

        assert (found.reports, found.login) == (reports, login)

    def test_every_release_is_in_the_table_in_order(self) -> None:
        """The table holds every release name, in the vendor's order."""
        assert tuple(RELEASES) == RELEASE_NAMES

    def test_two_report_releases_split_gateway_and_devices(self) -> None:
        """A separate sub-device report carries only devices, its gateway report no devices;
        a one-report release's report carries both."""
        for found in RELEASES.values():
            if found.devices is None:
                assert CARRIES[found.gateway] == "both"
            else:
                assert (CARRIES[found.gateway], CARRIES[found.devices]) == ("gateway", "devices")

    def test_every_format_says_what_it_carries(self) -> None:
        assert set(CARRIES) == set(REPORT_FORMATS)

    @pytest.mark.parametrize(("name", "fmt", "sent"), [
        ("V2R1C01", "v1", "F1"),
        ("V2R1C01", "v2", "F1-MQ"),
        ("V2R2C01", "v1", "F2"),
        ("V2R6C01", "port", "F3"),
        ("V5R6C01", "port", "F3"),
        ("V5R6C01", "v1", "F4"),
        ("V6R1C01", "v1", "F7"),
    ])
    def test_format_variants(self, name: str, fmt: str, sent: str) -> None:
        """`[platform] format` picks a variant the release offers."""
        assert release(name).gateway_format(fmt) == sent

    def test_variant_not_offered(self) -> None:
        """A format the release does not ship is refused, naming what it offers."""
        with pytest.raises(ValueError, match=r"not offered by release V2R2C01 .*'v1'"):
            check_format("V2R2C01", "port")

    def test_unknown_release(self) -> None:
        with pytest.raises(ValueError, match="unknown release 'V3R1C01'; known: V2R1C01"):
            release("V3R1C01")


class TestLogins:
    def test_se3_logins_send_dev_sno_and_hex_mac(self) -> None:
        """L0-L3 ask with the authorisation code and the 0x MAC, and answer
        deviceMonitorAddr / deviceMonitorPeriod / token."""
        for name in ("L0", "L1", "L2", "L3"):
            variant = LOGINS[name]
            assert variant.params == (("dev_sno", "dev_sno"), ("hex_mac", "hex_mac"))
            assert (variant.address_keys, variant.period_keys, variant.token_keys) == (
                ("deviceMonitorAddr",), ("deviceMonitorPeriod",), ("token",))
            assert variant.devices_address_keys == ()

    def test_v6_login_renames(self) -> None:
        """L4 sends mq_license_key and device_sn (plus its example's dev_sno and hex_mac),
        and its answer names two report addresses and mq_login_token."""
        variant = login_variant("V6R2C01")

        assert [p for p, _ in variant.params] == [
            "mq_license_key", "device_sn", "dev_sno", "hex_mac"]
        assert variant.token_keys == ("mq_login_token",)
        assert variant.address_keys == ("device_monitor_url",)
        assert variant.devices_address_keys == ("media_device_monitor_url",)
        assert variant.devices_period_keys == ("media_device_monitor_report_period",)


class TestConfig:
    def test_default_release_is_the_seed(self) -> None:
        """Without [platform] release the platform is V2R2C01 and gets the seed report."""
        platform = parse_config({}).platform

        assert (platform.release, platform.format, platform.gateway_format) == (
            "V2R2C01", "v1", "F2")

    def test_v2_alone_names_v2r1c01(self) -> None:
        """A config from before releases, `format = "v2"`, keeps its meaning."""
        platform = parse_config({"platform": {"format": "v2"}}).platform

        assert (platform.release, platform.gateway_format) == ("V2R1C01", "F1-MQ")

    def test_format_not_offered_names_the_key(self) -> None:
        with pytest.raises(ConfigError, match=r"platform\.format: format 'v2' is not offered"):
            parse_config({"platform": {"release": "V6R1C01", "format": "v2"}})

    def test_unknown_release_exits_2(self, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown release stops `check` with exit 2, naming platform.release."""
        path = tmp_path / "c.toml"
        path.write_text('[gateway]\nsn = "A"\n[platform]\nrelease = "V9R9C01"\n', encoding="utf-8")

        code = main(["--config", str(path), "check"])

        assert code == 2
        assert "platform.release: " in capsys.readouterr().err


class TestGatewayPort:
    def test_defaults_to_the_consoles_port(self) -> None:
        """gateway_port is the console's port unless [gateway] port says otherwise."""
        assert parse_config({"console": {"listen": "0.0.0.0:8080"}}).gateway_port() == 8080
        assert parse_config({"gateway": {"port": 80}}).gateway_port() == 80

    def test_none_without_a_fixed_port(self) -> None:
        assert parse_config({"console": {"listen": "127.0.0.1:0"}}).gateway_port() is None

    def test_reporter_id_checked_by_its_rule(self) -> None:
        with pytest.raises(ConfigError, match=r"gateway\.reporter_id: "):
            parse_config({"gateway": {"reporter_id": "  "}})
