"""The vendor's configuration calls as pure checks (console.calls) and the [console] config."""

from __future__ import annotations

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError
from console import calls
from console.calls import Change
from console.errors import ApiError


def refused(call: object, body: dict[str, object]) -> str:
    """The message of the 400 PARAM_ERROR the call raises for `body`."""
    assert callable(call)
    with pytest.raises(ApiError) as info:
        call(body)
    assert (info.value.http_status, info.value.kind) == (400, "PARAM_ERROR")
    return info.value.message


class TestMonitorServerUrl:
    def test_url_and_period(self) -> None:
        """A URL and a period become the two retained topics, period first."""
        body = {"monitor_server_url": "http://127.0.0.1:9528/DeviceStatus",
                "content-type": "json", "reported_peroid": 30}
        assert calls.monitor_server_url(body) == [
            Change("report_period", "30"),
            Change("report_url", "http://127.0.0.1:9528/DeviceStatus"),
        ]

    def test_form_data_strings_and_lists(self) -> None:
        """Form fields are text: digits are a period; a comma list of URLs is kept tidy."""
        body = {"monitor_server_url": " http://a:1/x , https://b/y ", "reported_peroid": "5"}
        assert calls.monitor_server_url(body) == [
            Change("report_period", "5"), Change("report_url", "http://a:1/x,https://b/y"),
        ]

    def test_empty_values_clear(self) -> None:
        """An empty URL or period clears the topic, so the next source is in force."""
        body = {"monitor_server_url": "", "reported_peroid": ""}
        assert calls.monitor_server_url(body) == [
            Change("report_period", ""), Change("report_url", ""),
        ]

    @pytest.mark.parametrize(("body", "field"), [
        ({"reported_peroid": 5}, "monitor_server_url"),
        ({"monitor_server_url": "http://a/x"}, "reported_peroid"),
    ])
    def test_missing_field_is_named(self, body: dict[str, object], field: str) -> None:
        """A missing field is a 400 that names it."""
        assert refused(calls.monitor_server_url, body) == f"{field}: required"

    @pytest.mark.parametrize("url", ["ftp://a/x", "a/x", "http://", "javascript:alert(1)",
                                     "http://a/x\x00<b>", "http://a/\nforged"])
    def test_not_http_url(self, url: str) -> None:
        """Only http:// and https:// URLs with a host are taken."""
        message = refused(calls.monitor_server_url,
                          {"monitor_server_url": url, "reported_peroid": 5})
        assert message.startswith("monitor_server_url: ")

    def test_as_many_targets_as_the_bridge_takes(self) -> None:
        """Nine distinct URLs: refused here, as the bridge would refuse them."""
        urls = ",".join(f"http://127.0.0.1:{9000 + n}/r" for n in range(9))
        message = refused(calls.monitor_server_url,
                          {"monitor_server_url": urls, "reported_peroid": 5})
        assert message == "monitor_server_url: more than 8 report URLs"

    def test_credentials_never_echoed(self) -> None:
        """A refused URL's user info does not come back in the message."""
        message = refused(calls.monitor_server_url,
                          {"monitor_server_url": "ftp://user:s3cret@a/x", "reported_peroid": 5})
        assert "s3cret" not in message

    @pytest.mark.parametrize("period", [0, 86401, -1, 2.5, "ten", True, [5]])
    def test_period_out_of_range_or_not_whole(self, period: object) -> None:
        """The period is whole seconds in 1..86400."""
        message = refused(calls.monitor_server_url,
                          {"monitor_server_url": "http://a/x", "reported_peroid": period})
        assert message.startswith("reported_peroid: ")

    @pytest.mark.parametrize("period", [1, 86400, 20.0, "60"])
    def test_period_bounds_taken(self, period: object) -> None:
        """1 and 86400 are in range; 20.0 and "60" are whole seconds."""
        calls.monitor_server_url({"monitor_server_url": "http://a/x", "reported_peroid": period})

    def test_form_data_content_type_unsupported(self) -> None:
        """content-type form-data is refused as unsupported, like the vendor's box."""
        message = refused(calls.monitor_server_url, {
            "monitor_server_url": "http://a/x", "reported_peroid": 5, "content-type": "form-data",
        })
        assert message == "content-type: form-data is not supported; only json"


class TestLoginUrlAndDevSno:
    def test_login_url(self) -> None:
        assert calls.login_url({"login_url": "http://xxx.com/login"}) == Change(
            "login_url", "http://xxx.com/login")

    def test_login_url_checked(self) -> None:
        assert refused(calls.login_url, {"login_url": "xxx.com/login"}).startswith("login_url: ")
        assert refused(calls.login_url, {}) == "login_url: required"
        assert refused(calls.login_url, {"login_url": 5}) == "login_url: must be a string"

    def test_dev_sno(self) -> None:
        assert calls.dev_sno({"dev_sno": "TJGSDX000120190726103455"}) == Change(
            "dev_sno", "TJGSDX000120190726103455")
        assert calls.dev_sno({"dev_sno": ""}) == Change("dev_sno", "")

    def test_dev_sno_checked(self) -> None:
        assert refused(calls.dev_sno, {}) == "dev_sno: required"
        assert refused(calls.dev_sno, {"dev_sno": "a b"}).startswith("dev_sno: ")
        assert refused(calls.dev_sno, {"dev_sno": "x" * 129}).startswith("dev_sno: ")


class TestConsoleConfig:
    def test_defaults(self) -> None:
        """[console] defaults: loopback ports 5555 and 8888 (the face and the system
        service), password in var/console/admin.pass."""
        config = parse_config({})
        assert config.console.listen == "127.0.0.1:5555"
        assert config.console.system_listen == "127.0.0.1:8888"
        assert str(config.console.password_file) == "var/console/admin.pass"

    @pytest.mark.parametrize("listen", ["5555", "127.0.0.1", "127.0.0.1:x", "h:70000"])
    def test_bad_listen_named(self, listen: str) -> None:
        with pytest.raises(ConfigError, match=r"console\.listen: must be HOST:PORT"):
            parse_config({"console": {"listen": listen}})
        with pytest.raises(ConfigError, match=r"console\.system_listen: must be HOST:PORT"):
            parse_config({"console": {"system_listen": listen}})

    def test_unknown_key(self) -> None:
        with pytest.raises(ConfigError, match=r"console\.port: unknown key"):
            parse_config({"console": {"port": 1}})
