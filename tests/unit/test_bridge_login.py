"""Tests for bridge.login: reading the platform's login answer, and the login worker.

The worker runs on a real thread against a fake fetcher; waits end on events.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import orjson
import pytest

from bridge.delivery import Backoff
from bridge.errors import DeliveryError
from bridge.login import (
    LoginFailed,
    LoginRequest,
    LoginResult,
    LoginWorker,
    absolute,
    hex_mac,
    login_request,
    parse_answer,
)
from bridge.releases import LOGINS, LoginName
from bridge.urls import MAX_TARGETS
from tests.fakes import Recorder

LOGIN = "http://127.0.0.1:9528/Login?key=secret"
WAIT = 10.0  # upper bound for any handshake; a pass never waits this long


def answer(**doc: object) -> str:
    return orjson.dumps(doc).decode()


class TestAnswer:
    def test_spec_field_names(self) -> None:
        """deviceMonitorAddr and deviceMonitorPeriod, as the spec's login answers."""
        text = answer(deviceMonitorAddr="http://127.0.0.1:9528/DeviceStatus",
                      deviceMonitorPeriod=30, token="t0k3n")

        assert parse_answer(LOGIN, 200, text) == LoginResult(
            ("http://127.0.0.1:9528/DeviceStatus",), 30.0, "t0k3n")

    def test_later_field_names_and_a_period_as_text(self) -> None:
        text = answer(device_monitor_url="/api/status", device_monitor_report_period=" 45 ")

        assert parse_answer(LOGIN, 200, text) == LoginResult(
            ("http://127.0.0.1:9528/api/status",), 45.0)

    def test_comma_separated_addresses_mixed_relative_and_absolute(self) -> None:
        text = answer(deviceMonitorAddr="DeviceStatus, https://127.0.0.2/Other,")

        result = parse_answer(LOGIN, 200, text)

        assert result.urls == ("http://127.0.0.1:9528/DeviceStatus", "https://127.0.0.2/Other")
        assert result.period is None

    @pytest.mark.parametrize("period", [0, -5, True, "soon", 0.5, None, [30]])
    def test_unusable_period_leaves_the_configured_interval(self, period: object) -> None:
        text = answer(deviceMonitorAddr="/DeviceStatus", deviceMonitorPeriod=period)

        assert parse_answer(LOGIN, 200, text).period is None

    @pytest.mark.parametrize(
        ("status", "text", "message"),
        [
            (401, "bad key", "login answered HTTP 401"),
            (200, "<html>", "login answer is not JSON"),
            (200, "[1, 2]", "login answer is not a JSON object"),
        ],
    )
    def test_failed_logins_say_why(self, status: int, text: str, message: str) -> None:
        with pytest.raises(DeliveryError) as caught:
            parse_answer(LOGIN, status, text)

        assert str(caught.value) == message
        assert caught.value.status == status

    @pytest.mark.parametrize(
        "doc", [{"token": "x"}, {"deviceMonitorAddr": " , "}, {"deviceMonitorAddr": 42}]
    )
    def test_answer_without_an_address_keeps_the_configured_url(
        self, doc: dict[str, object]
    ) -> None:
        """The platform's login document marks the address optional: a login that names
        none succeeds, and platform.report_url stays in force (no URLs from the login)."""
        text = answer(**doc, deviceMonitorPeriod=25)

        result = parse_answer(LOGIN, 200, text)

        assert (result.urls, result.period) == ((), 25.0)

    def test_refusal_keeps_the_platform_body_for_the_log(self) -> None:
        with pytest.raises(DeliveryError) as caught:
            parse_answer(LOGIN, 403, "unknown device " + "x" * 1000)

        assert caught.value.body is not None
        assert caught.value.body.startswith("unknown device")
        assert len(caught.value.body) == 512

    def test_refusal_echoing_the_login_urls_key_does_not_keep_it(self) -> None:
        """A refusal repeating the request shows the login URL's query values as `...`."""
        login = "http://127.0.0.1:9528/Login?key=s3cr3t-k3y"
        with pytest.raises(DeliveryError) as caught:
            parse_answer(login, 403, "bad key s3cr3t-k3y for /Login?key=s3cr3t-k3y")

        assert caught.value.body == "bad key ... for /Login?key=..."

    def test_answer_naming_the_request_values_is_read_as_it_is(self) -> None:
        """A successful answer is parsed untouched: an address may name the dev_sno."""
        login = "http://127.0.0.1:9528/Login?key=s3cr3t-k3y"
        text = answer(deviceMonitorAddr="/r/s3cr3t-k3y/ZKZCPI000120190807142601")

        assert parse_answer(login, 200, text).urls == (
            "http://127.0.0.1:9528/r/s3cr3t-k3y/ZKZCPI000120190807142601",)

    def test_token_is_kept_but_never_shown(self) -> None:
        """The token is kept for the reports, and is not in the result's repr (log lines)."""
        text = answer(deviceMonitorAddr="/DeviceStatus", token="t0k3n")

        result = parse_answer(LOGIN, 200, text)

        assert result.token == "t0k3n"
        assert "t0k3n" not in repr(result)
        assert "secret" not in repr(result)  # nor the login URL's query

    def test_empty_spec_name_does_not_hide_the_later_name(self) -> None:
        """`deviceMonitorAddr: ""` next to a non-empty `device_monitor_url`: the latter counts."""
        text = answer(deviceMonitorAddr="", device_monitor_url="/Status2")

        assert parse_answer(LOGIN, 200, text).urls == ("http://127.0.0.1:9528/Status2",)

    @pytest.mark.parametrize(
        ("address", "url"),
        [
            ("HTTPS://127.0.0.5/Up", "https://127.0.0.5/Up"),
            ("Http://127.0.0.5:81/Up?x=1", "http://127.0.0.5:81/Up?x=1"),
            ("//127.0.0.6/rel", "http://127.0.0.6/rel"),
        ],
    )
    def test_absolute_addresses_in_any_spelling_are_not_joined(
        self, address: str, url: str
    ) -> None:
        """An upper-case scheme is absolute; `//host/path` takes the login's scheme only."""
        assert parse_answer(LOGIN, 200, answer(deviceMonitorAddr=address)).urls == (url,)

    @pytest.mark.parametrize("address", ["http://", "https://", "ftp://127.0.0.1/r", "http://:80/"])
    def test_unusable_address_is_refused_and_the_next_source_used(self, address: str) -> None:
        """An address that is no usable URL is refused (named in `refused`), not a target."""
        result = parse_answer(LOGIN, 200, answer(deviceMonitorAddr=address))

        assert result.urls == ()
        assert len(result.refused) == 1
        assert "is not an http:// or https:// URL" in result.refused[0].reason

    def test_login_credentials_are_not_copied_into_joined_addresses(self) -> None:
        """The login URL's user:password stays with the login."""
        result = parse_answer("https://gw:pw@127.0.0.1:8443/Login", 200,
                              answer(deviceMonitorAddr="/DeviceStatus"))

        assert result.urls == ("https://127.0.0.1:8443/DeviceStatus",)

    def test_addresses_are_deduplicated_and_capped(self) -> None:
        """A login naming 1,500 addresses gets at most MAX_TARGETS targets, each once."""
        many = ",".join(["/same", "/same", "HTTP://127.0.0.1:9528/same"]
                        + [f"/r{n}" for n in range(1500)])

        result = parse_answer(LOGIN, 200, answer(deviceMonitorAddr=many))

        assert len(result.urls) == MAX_TARGETS
        assert result.urls[0] == "http://127.0.0.1:9528/same"
        assert len(set(result.urls)) == MAX_TARGETS
        assert all("more than" in r.reason for r in result.refused)

    @pytest.mark.parametrize("period", [1e9, 86401, "100000"])
    def test_period_beyond_a_day_is_refused(self, period: object) -> None:
        """The login's period is bounded like the config's: 1e9 s is refused, not used."""
        text = answer(deviceMonitorAddr="/r", deviceMonitorPeriod=period)

        result = parse_answer(LOGIN, 200, text)

        assert result.period is None
        assert [r.setting for r in result.refused] == ["report_period"]


    @pytest.mark.parametrize(("period", "seconds"), [(" 90 ", 90.0), (45.0, 45.0)])
    def test_period_as_text_or_a_whole_float(self, period: object, seconds: float) -> None:
        text = answer(deviceMonitorAddr="/r", deviceMonitorPeriod=period)

        assert parse_answer(LOGIN, 200, text).period == seconds

    @pytest.mark.parametrize("period", ["1e9", "soon", "nan", "0.5", "30.5", 30.5])
    def test_period_text_that_is_not_usable_is_refused_visibly(self, period: str) -> None:
        """A period given as text is read as a number; one not usable is refused (named in
        `refused`, so it shows in bridge/settings), never dropped silently."""
        text = answer(deviceMonitorAddr="/r", deviceMonitorPeriod=period)

        result = parse_answer(LOGIN, 200, text)

        assert result.period is None
        assert [r.setting for r in result.refused] == ["report_period"]

    def test_an_unusable_spec_period_does_not_hide_the_later_name(self) -> None:
        """As for the address: both names, the first not usable, the second counts."""
        text = answer(deviceMonitorAddr="/r", deviceMonitorPeriod=0,
                      device_monitor_report_period=30)

        assert parse_answer(LOGIN, 200, text).period == 30.0

    def test_malformed_address_is_refused_and_the_others_used(self) -> None:
        """An address urllib cannot even split (`http://[::1`) is refused like any bad one;
        the login still succeeds with the other addresses."""
        text = answer(deviceMonitorAddr="http://[::1/r, //[::1:9/x, /ok")

        result = parse_answer(LOGIN, 200, text)

        assert result.urls == ("http://127.0.0.1:9528/ok",)
        assert len(result.refused) == 2
        assert all("not an http:// or https:// URL" in r.reason for r in result.refused)


class TestVariants:
    """The login variants of bridge.releases: what each asks with, what its answer names."""

    def test_the_v6_login_asks_by_license_key_and_serial(self) -> None:
        """L4: mq_license_key and device_sn, then dev_sno and hex_mac as its example sends."""
        request = login_request(LOGIN, "A1", LOGINS["L4"], "HQDZKE5BJJFJH0042",
                                "e0:a5:09:00:06:2b")

        assert request is not None
        assert request.params == (("mq_license_key", "A1"), ("device_sn", "HQDZKE5BJJFJH0042"),
                                  ("dev_sno", "A1"), ("hex_mac", "0xe0a50900062b"))

    def test_the_v6_login_goes_without_a_mac(self) -> None:
        """hex_mac is no parameter L4's table requires: left out when the MAC is unknown."""
        request = login_request(LOGIN, "A1", LOGINS["L4"], "SN1", None)

        assert request is not None
        assert [name for name, _ in request.params] == ["mq_license_key", "device_sn", "dev_sno"]

    @pytest.mark.parametrize("variant", ["L0", "L1", "L2", "L3"])
    def test_the_se3_logins_need_the_mac(self, variant: LoginName) -> None:
        """L0-L3 require hex_mac: without a MAC there is no login to make."""
        assert login_request(LOGIN, "A1", LOGINS[variant], "SN1", None) is None
        request = login_request(LOGIN, "A1", LOGINS[variant], "SN1", "e0:a5:09:00:06:2b")
        assert request is not None
        assert request.params == (("dev_sno", "A1"), ("hex_mac", "0xe0a50900062b"))

    def test_the_v6_answer_names_both_reports_and_its_token(self) -> None:
        """L4's answer: device_monitor_url (the system report), media_device_monitor_url (the
        sub-device report), their periods, and mq_login_token, in the vendor's example."""
        text = answer(mq_login_status=0, mq_login_token="T6",
                      device_monitor_url="/box/monitor/status/report",
                      device_monitor_report_period=20,
                      media_device_monitor_url="/box/media/monitor/status/report",
                      media_device_monitor_report_period=30, mq_server_configs={})

        result = parse_answer(LOGIN, 200, text, LOGINS["L4"])

        assert result.urls == ("http://127.0.0.1:9528/box/monitor/status/report",)
        assert result.period == 20.0
        assert result.issued("devices") == (
            ("http://127.0.0.1:9528/box/media/monitor/status/report",), 30.0)
        assert result.token == "T6"

    def test_an_se3_answer_issues_no_sub_device_report(self) -> None:
        """L3 names no address for V5R7C01's sub-device report (it comes from the box's
        config calls): a media_device_monitor_url in an L3 answer is not taken."""
        text = answer(deviceMonitorAddr="/status", deviceMonitorPeriod=20, token="T",
                      media_device_monitor_url="/media")

        result = parse_answer(LOGIN, 200, text, LOGINS["L3"])

        assert result.issued("devices") == ((), None)
        assert result.token == "T"

    def test_a_bad_sub_device_period_is_refused_by_name(self) -> None:
        text = answer(device_monitor_url="/s", media_device_monitor_url="/m",
                      media_device_monitor_report_period=0)

        result = parse_answer(LOGIN, 200, text, LOGINS["L4"])

        assert result.devices_period is None
        assert [r.setting for r in result.refused] == ["devices_report_period"]


class TestAddressing:
    @pytest.mark.parametrize(
        ("mac", "expected"),
        [("E0:A5:09:00:0E:6D", "0xe0a509000e6d"), ("e0-a5-09-00-0e-6d", "0xe0a509000e6d"),
         ("e0a509000e6d", "0xe0a509000e6d")],
    )
    def test_hex_mac(self, mac: str, expected: str) -> None:
        assert hex_mac(mac) == expected

    def test_joined_address_has_no_user_info(self) -> None:
        assert absolute("http://u:p@127.0.0.1/Login", "r") == "http://127.0.0.1/r"

    def test_relative_address_joins_scheme_and_host_not_path_or_query(self) -> None:
        assert absolute("https://127.0.0.1:8443/api/v1/Login?k=1", "report") == (
            "https://127.0.0.1:8443/report")

    def test_absolute_address_is_kept(self) -> None:
        assert absolute(LOGIN, "http://127.0.0.3/x") == "http://127.0.0.3/x"

    @pytest.mark.parametrize(
        ("login", "address", "url"),
        [("http://[::1]:9528/Login", "/r", "http://[::1]:9528/r"),
         ("https://u:p%40w@[fe80::1%25eth0]:8443/Login", "r", "https://[fe80::1%25eth0]:8443/r"),
         ("http://[::1]/Login", "//[2001:db8::2]:81/r", "http://[2001:db8::2]:81/r")],
    )
    def test_ipv6_hosts_are_joined_whole(self, login: str, address: str, url: str) -> None:
        """An IPv6 login host (with a port, a scope or user:password) is joined in brackets."""
        assert absolute(login, address) == url
        assert parse_answer(login, 200, answer(deviceMonitorAddr=address)).urls == (url,)


Step = tuple[int, str] | threading.Event


class FakeFetcher:
    """Stands in for HttpSender.get: records each login, plays a script of answers.

    A (status, text) step is answered; an Event is waited for, then answers
    200 with the default address. An empty script answers the default too.
    """

    OK = (200, answer(deviceMonitorAddr="/DeviceStatus", deviceMonitorPeriod=20))

    def __init__(self, *script: Step) -> None:
        self._cond = threading.Condition()
        self._script: deque[Step] = deque(script)
        self.calls: list[dict[str, str]] = []
        self.closed = threading.Event()

    def get(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        with self._cond:
            self.calls.append(params)
            self._cond.notify_all()
            step = self._script.popleft() if self._script else self.OK
        if isinstance(step, threading.Event):
            assert step.wait(WAIT)
            return self.OK
        return step

    def close(self) -> None:
        self.closed.set()

    def wait_calls(self, count: int) -> list[dict[str, str]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.calls) >= count, WAIT), self.calls
            return list(self.calls)


class LoginRig:
    def __init__(self, fetcher: FakeFetcher, backoff: Backoff | None = None) -> None:
        self.fetcher = fetcher
        self.results: Recorder[LoginResult] = Recorder()
        self.events: Recorder[dict[str, object]] = Recorder()
        self.failures: Recorder[LoginFailed] = Recorder()
        self.worker = LoginWorker(fetcher, backoff or Backoff(0.01, 0.01),
                                  self.results, self.events, wall=lambda: 1_700_000_000.25,
                                  on_failure=self.failures)
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        self.worker.join(WAIT)



def ask(dev_sno: str, mac: str, login_url: str = LOGIN) -> LoginRequest:
    """The SE3 login (L1) of gateway SN with this code and MAC."""
    request = login_request(login_url, dev_sno, LOGINS["L1"], "SZCCKQRAIJBAH0002", mac)
    assert request is not None
    return request


class TestLoginWorker:
    def test_logs_in_once_per_request_and_hands_over_the_result(self) -> None:
        rig = LoginRig(FakeFetcher())
        try:
            rig.worker.request(ask("A1", "E0:A5:09:00:0E:6D"))
            results = rig.results.wait(1)
            events = rig.events.wait(1)
        finally:
            rig.stop()

        assert rig.fetcher.calls == [{"dev_sno": "A1", "hex_mac": "0xe0a509000e6d"}]
        assert results == [LoginResult(("http://127.0.0.1:9528/DeviceStatus",), 20.0,
                                       login_url=LOGIN, dev_sno="A1", variant="L1")]
        event = events[0]
        assert event["ok"] is True
        assert event["attempt"] == 1
        assert event["login"] == "http://127.0.0.1:9528/Login"  # the key is not shown
        assert event["ts"] == 1_700_000_000.25  # the bridge's clock, as its other events
        assert rig.fetcher.closed.is_set()

    def test_failures_are_retried_with_backoff_and_counted(self) -> None:
        top = Backoff(0.01, 1.0, rng=lambda low, high: high)
        rig = LoginRig(FakeFetcher((503, "busy"), (200, "not json")), backoff=top)
        try:
            rig.worker.request(ask("A1", "e0a509000e6d"))
            rig.results.wait(1)
            events = rig.events.wait(3)
        finally:
            rig.stop()

        assert [(e["ok"], e["status"], e["attempt"]) for e in events] == [
            (False, 503, 1), (False, 200, 2), (True, 200, 3)]
        assert [e["retry_in"] for e in events] == [0.01, 0.02, None]
        assert len(rig.fetcher.calls) == 3

    def test_a_new_login_url_counts_its_failures_from_one(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Failures of an old login URL do not carry over: the new one starts at attempt 1,
        its first failure is logged, and its backoff starts from the shortest."""
        rig = LoginRig(FakeFetcher((500, "down"), (500, "down"), (500, "down"), (500, "down")),
                       backoff=Backoff(0.01, 1.0, rng=lambda low, high: high))
        try:
            with caplog.at_level(logging.WARNING, "bridge.login"):
                rig.worker.request(ask("A1", "e0a509000e6d"))
                rig.events.wait(2)
                rig.worker.request(ask("A1", "e0a509000e6d", "http://127.0.0.2:9528/Other"))
                events = rig.events.wait(5)
        finally:
            rig.stop()

        other = [e for e in events if e["login"] == "http://127.0.0.2:9528/Other"]
        assert [(e["attempt"], e["retry_in"]) for e in other[:2]] == [(1, 0.01), (2, 0.02)]
        assert [r.getMessage() for r in caplog.records if "127.0.0.2" in r.getMessage()] == [
            "login at http://127.0.0.2:9528/Other failed: login answered HTTP 500; "
            "answer: down (retrying)"]

    def test_one_warning_for_an_answer_of_1500_addresses(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        addresses = ",".join(f"http://127.0.0.1:9528/r{n}" for n in range(1500))
        rig = LoginRig(FakeFetcher((200, answer(deviceMonitorAddr=addresses))))
        try:
            with caplog.at_level(logging.WARNING, "bridge.login"):
                rig.worker.request(ask("A1", "e0a509000e6d"))
                (result,) = rig.results.wait(1)
        finally:
            rig.stop()

        assert len(result.refused) == 1500 - MAX_TARGETS
        (line,) = [r.getMessage() for r in caplog.records]
        assert line.startswith(f"login at http://127.0.0.1:9528/Login: refused "
                               f"{1500 - MAX_TARGETS} values: 'http://127.0.0.1:9528/r8': more "
                               "than 8 report URLs;")
        assert line.endswith(f" and {1500 - MAX_TARGETS - 3} more")

    def test_new_request_cuts_a_long_backoff_short(self) -> None:
        """A new identity (or a relogin) is tried at once, not after the backoff."""
        rig = LoginRig(FakeFetcher((500, "down")), backoff=Backoff(3600, 3600))
        try:
            rig.worker.request(ask("A1", "e0a509000e6d"))
            rig.events.wait(1)
            rig.worker.request(ask("B2", "e0a509000e6e"))
            rig.results.wait(1)
        finally:
            rig.stop()

        assert [c["dev_sno"] for c in rig.fetcher.calls] == ["A1", "B2"]

    def test_request_during_a_login_is_done_after_it(self) -> None:
        """A request that arrives while a login is in flight is not lost."""
        gate = threading.Event()
        rig = LoginRig(FakeFetcher(gate))
        try:
            rig.worker.request(ask("A1", "e0a509000e6d"))
            rig.fetcher.wait_calls(1)
            rig.worker.request(ask("B2", "e0a509000e6e"))
            gate.set()
            rig.results.wait(2)
        finally:
            rig.stop()

        assert [c["dev_sno"] for c in rig.fetcher.calls] == ["A1", "B2"]

    def test_a_bug_in_a_login_is_logged_and_retried(self) -> None:
        """An unexpected exception is a failed attempt, not the end of the worker."""

        class Broken(FakeFetcher):
            def get(self, url: str, params: dict[str, str]) -> tuple[int, str]:
                if not self.calls:
                    self.calls.append(params)
                    raise KeyError("bug")
                return super().get(url, params)

        rig = LoginRig(Broken())
        try:
            rig.worker.request(ask("A1", "e0a509000e6d"))
            rig.results.wait(1)
            events = rig.events.wait(2)
        finally:
            rig.stop()

        assert events[0]["error"] == "login failed: KeyError"

    def test_stop_ends_a_long_backoff(self) -> None:
        rig = LoginRig(FakeFetcher((500, "down")), backoff=Backoff(3600, 3600))
        rig.worker.request(ask("A1", "e0a509000e6d"))
        rig.events.wait(1)

        rig.stop()

        assert rig.fetcher.closed.is_set()
