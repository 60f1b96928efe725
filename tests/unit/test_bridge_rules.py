"""One rule per setting (bridge.rules): every way a setting enters gives one verdict.

For each setting, each value is put through every entry point that takes it:
the config file, the retained config topic (the bridge and the gateway
collector), a login answer, a record, the console's call and the reference
platform's login. A value one of them takes and another refuses is a call that
answers success while nothing changes, or a file that passes `check` with a
value the bridge drops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from bridge import rules
from bridge.config import PlatformSection, parse_config
from bridge.errors import ConfigError, RecordError
from bridge.login import parse_answer
from bridge.records import GatewayInfo, parse_as
from bridge.settings import Settings
from bridge.topics import Kind
from console import calls
from console.errors import ApiError
from receiver.login import LoginRefused, check_login_args

LOGIN = "http://127.0.0.1:9528/api/gateway/login"
Entry = Callable[[Any], object]


def verdict(entry: Entry, value: object) -> bool:
    """True when `entry` takes `value`; False when it refuses it with its own error."""
    try:
        entry(value)
    except (ConfigError, RecordError, ApiError, LoginRefused, ValueError):
        return False
    return True


def topic(kind: Kind) -> Entry:
    def apply(value: str) -> object:
        return Settings(PlatformSection(), lambda: 0.0).apply(kind, value.encode())
    return apply


def info(**changes: str) -> bytes:
    record = {"gateway_ip": "10.0.0.254", "gateway_name": "gw", "dev_sno": "SNO",
              "sw_version": "V2R1C01"}
    return orjson.dumps({**record, **changes})


def login_period(value: object) -> object:
    result = parse_answer(LOGIN, 200, orjson.dumps({"deviceMonitorPeriod": value}).decode())
    if result.period is None:
        raise ValueError(result.refused)
    return result.period


def login_addresses(value: str) -> object:
    result = parse_answer(LOGIN, 200, orjson.dumps({"deviceMonitorAddr": value}).decode())
    if result.refused:
        raise ValueError(result.refused)
    return result.urls


DEV_SNO: dict[str, Entry] = {
    "rule": rules.dev_sno,
    "config file": lambda v: parse_config({"gateway": {"dev_sno": v}}),
    "config/dev_sno topic": topic(Kind.DEV_SNO),
    "gateway/info record": lambda v: parse_as(GatewayInfo, info(dev_sno=v)),
    "PUT DevSno": lambda v: calls.dev_sno({"dev_sno": v}),
    "receiver login": lambda v: check_login_args(v, "0xe0a509000e6d"),
}
PERIOD: dict[str, Entry] = {
    "rule": rules.report_period,
    "config/report_period topic": topic(Kind.REPORT_PERIOD),
    "login answer": login_period,
    "MonitorServerUrl": lambda v: calls.report_period(v, "reported_peroid"),
}
LOGIN_URL: dict[str, Entry] = {
    "rule": rules.login_url,
    "config file": lambda v: parse_config({"platform": {"login_url": v}}),
    "config/login_url topic": topic(Kind.LOGIN_URL),
    "PUT LoginUrl": lambda v: calls.login_url({"login_url": v}),
}
REPORT_URL: dict[str, Entry] = {
    "rule": lambda v: rules.report_urls([v]),
    "config file": lambda v: parse_config({"platform": {"report_url": v}}),
    "config/report_url topic": topic(Kind.REPORT_URL),
    "login answer": login_addresses,
    "MonitorServerUrl": lambda v: calls.report_urls(v, "monitor_server_url"),
}
GATEWAY_NAME: dict[str, Entry] = {
    "rule": rules.gateway_name,
    "config file": lambda v: parse_config({"gateway": {"name": v}}),
    "gateway/info record": lambda v: parse_as(GatewayInfo, info(gateway_name=v)),
}

CASES = [
    *[(DEV_SNO, v, ok) for v, ok in [
        ("ZKZCPI000120190807142601", True), ("A.b_c-1", True), ("a" * 128, True),
        ("ABC+123", False), ("ZKZC PI/0001", False), ("a" * 129, False), ("caf\u00e9", False),
        ("a\nb", False), ("se3/#", False)]],
    *[(PERIOD, v, ok) for v, ok in [
        ("30", True), ("1", True), ("86400", True), (" 45 ", True),
        ("0", False), ("86401", False), ("30.5", False), ("soon", False), ("-5", False)]],
    *[(LOGIN_URL, v, ok) for v, ok in [
        ("http://127.0.0.1:9528/api/gateway/login", True), ("https://h/x?k=v", True),
        ("ftp://h/x", False), ("http://", False), ("http://h/\x00", False),
        ("http://[::1", False)]],
    *[(REPORT_URL, v, ok) for v, ok in [
        ("http://127.0.0.1:9528/DeviceStatus", True), ("https://h:8443/r?site=1", True),
        ("ftp://h/x", False), ("http://h/\u202e", False), ("https://:80/x", False)]],
    *[(GATEWAY_NAME, v, ok) for v, ok in [
        ("box-1", True), ("盒子 1", True), ("x" * 256, True),
        ("   ", False), ("a\nb", False), ("x" * 257, False), ("a\u202eb", False)]],
]


@pytest.mark.parametrize(("entries", "value", "usable"), CASES)
def test_every_entry_point_gives_the_rules_verdict(
        entries: dict[str, Entry], value: str, usable: bool) -> None:
    verdicts = {name: verdict(entry, value) for name, entry in entries.items()}
    assert verdicts == dict.fromkeys(entries, usable)


class TestTheIssuesCases:
    def test_put_dev_sno_refuses_what_the_bridge_refuses(self) -> None:
        """`ABC+123` was answered success by the call and refused by the bridge."""
        with pytest.raises(ApiError) as info_:
            calls.dev_sno({"dev_sno": "ABC+123"})
        assert info_.value.message == "dev_sno: must be 1-128 letters, digits, '.', '_' or '-'"

    def test_the_file_refuses_a_dev_sno_naming_the_key(self) -> None:
        with pytest.raises(ConfigError, match=r"gateway\.dev_sno: must be 1-128 letters"):
            parse_config({"gateway": {"dev_sno": "ZKZC PI/0001"}})

    def test_one_text_for_one_refusal_everywhere(self) -> None:
        """The topic's refusal and the call's error say the same after the setting's name."""
        with pytest.raises(RecordError) as topic_error:
            topic(Kind.REPORT_PERIOD)("0")
        with pytest.raises(ApiError) as call_error:
            calls.report_period(0)
        assert str(topic_error.value) == call_error.value.message == (
            "report_period: must be a whole number of seconds from 1 to 86400")


class TestNewSettings:
    @pytest.mark.parametrize(("value", "usable"), [
        ("AFVKQF000120210604151110", True), ("站点 1", True), ("x" * 128, True),
        ("   ", False), ("a\nb", False), ("x" * 129, False), ("a\u202eb", False)])
    def test_reporter_id(self, value: str, usable: bool) -> None:
        assert verdict(rules.reporter_id, value) is usable

    @pytest.mark.parametrize(("value", "usable"), [
        ("V6R1C01", True), ("V2R2C01", True), (" V5R7C01 ", True),
        ("V6R3C01", False), ("v6r1c01", False), ("", False)])
    def test_release(self, value: str, usable: bool) -> None:
        assert verdict(rules.release, value) is usable

    def test_release_names_the_known_ones(self) -> None:
        with pytest.raises(ValueError, match="known: V2R1C01, V2R2C01"):
            rules.release("V9")
