"""Tests for bridge.settings, bridge.urls and bridge.targets: what is in force, from where."""

from __future__ import annotations

import logging
import queue
import re
from collections.abc import Callable, Mapping

import orjson
import pytest

from bridge.config import PlatformSection
from bridge.delivery import Backoff, Target
from bridge.errors import DeliveryError, RecordError
from bridge.login import LoginFailed, LoginResult
from bridge.settings import Settings
from bridge.targets import TargetSet
from bridge.topics import Kind
from bridge.urls import MAX_TARGETS, Refused, report_urls, screen

FILE_URL = "http://127.0.0.1:9528/DeviceStatus"
LOGIN = "http://127.0.0.1:9528/api/gateway/login"
WALL = 1_700_000_000.0


def settings(**platform: object) -> Settings:
    section = PlatformSection.model_validate({"report_url": [FILE_URL], **platform})
    return Settings(section, lambda: WALL)


def login_result(s: Settings, *urls: str, period: float | None = None,
                 token: str = "t0k3n") -> LoginResult:  # noqa: S107 - a test token
    target = s.login_target()
    assert target is not None
    return LoginResult(urls, period, token, (), *target)


class TestUrls:
    def test_duplicates_in_any_spelling_are_one(self) -> None:
        """Scheme and host case and the default port do not make a second target."""
        kept, refused = screen(["http://h/r", "HTTP://H:80/r", "http://h/r"])

        assert kept == ["http://h/r"]
        assert refused == []

    def test_more_than_the_cap_is_refused(self) -> None:
        """At most MAX_TARGETS distinct URLs; the rest are refused, each named."""
        kept, refused = screen(f"http://h/r{n}" for n in range(20))

        assert len(kept) == MAX_TARGETS
        assert len(refused) == 20 - MAX_TARGETS

    def test_refused_url_shows_no_secret(self) -> None:
        """A refused URL's reason shows neither credentials nor query (a token)."""
        with pytest.raises(ValueError, match="not an http") as info:
            report_urls(["ftp://user:pw@h/r?token=s3cret"])

        assert "s3cret" not in str(info.value)
        assert "pw" not in str(info.value)

    @pytest.mark.parametrize("url", [
        "http://h/r\x00<b>", "http://h/r\nINFO forged line", "http://h\t/r", "http://h/\x7f",
        "http://h/\x85", "http://h/\u202egnp.r", "http://h/r\u2028x",
    ])
    def test_control_characters_are_refused(self, url: str) -> None:
        """A URL with a control character (a NUL, a line break that forges a log line, a bidi
        mark) is refused wherever it comes from: urllib passes a NUL and drops a newline."""
        kept, refused = screen([url])

        assert kept == []
        assert len(refused) == 1
        assert "is not an http:// or https:// URL" in refused[0].reason
        for shown in (refused[0].reason, refused[0].shown):
            assert not re.search("[\x00-\x1f\x7f-\x9f\u202e\u2028]", shown)

    def test_config_file_has_the_same_cap(self) -> None:
        """The config file's report_url is checked by the same rule."""
        with pytest.raises(ValueError, match="more than 8"):
            PlatformSection.model_validate({"report_url": [f"http://h/r{n}" for n in range(9)]})


class TestPrecedence:
    def test_file_alone(self) -> None:
        """Without topic or login, the file's URL and interval are in force."""
        s = settings(interval=20.0)

        assert s.report_urls() == ([FILE_URL], "file")
        assert s.period() == (20.0, "file")
        assert s.login_url() == ("", "none")
        assert s.login_target() is None

    def test_login_over_file_and_topic_over_login(self) -> None:
        """Login answer beats the file; the config topic beats the login."""
        s = settings(login_url=LOGIN)
        s.gateway_dev_sno = "D1"
        assert s.logged_in(login_result(s, "http://127.0.0.2/r", period=5.0))

        assert s.report_urls() == (["http://127.0.0.2/r"], "login")
        assert s.period() == (5.0, "login")

        s.apply(Kind.REPORT_URL, b"http://127.0.0.3/r")
        s.apply(Kind.REPORT_PERIOD, b"7")

        assert s.report_urls() == (["http://127.0.0.3/r"], "topic")
        assert s.period() == (7.0, "topic")

    def test_clearing_a_topic_falls_back(self) -> None:
        """An empty payload clears the topic's value: the next source is in force again."""
        s = settings()
        s.apply(Kind.REPORT_URL, b"http://127.0.0.3/r")

        assert s.apply(Kind.REPORT_URL, b"")
        assert s.report_urls() == ([FILE_URL], "file")
        assert not s.apply(Kind.REPORT_URL, b" , ")  # only commas: nothing set, no change

    def test_later_login_without_period_reverts_to_the_file(self) -> None:
        """A login that gives no period after one that did: the file's interval again."""
        s = settings(login_url=LOGIN, interval=30.0)
        s.gateway_dev_sno = "D1"
        s.logged_in(login_result(s, "http://127.0.0.2/r", period=5.0))
        s.logged_in(login_result(s, "http://127.0.0.2/r"))

        assert s.period() == (30.0, "file")

    def test_login_url_and_dev_sno_topics(self) -> None:
        """config/login_url beats the file's; config/dev_sno beats gateway/info's."""
        s = settings(login_url=LOGIN)
        s.gateway_dev_sno = "GW"
        assert s.login_target() == (LOGIN, "GW", "L1")

        s.apply(Kind.LOGIN_URL, b"https://127.0.0.9/Login")
        s.apply(Kind.DEV_SNO, b"TOPIC1")

        assert s.login_target() == ("https://127.0.0.9/Login", "TOPIC1", "L1")
        assert s.dev_sno() == ("TOPIC1", "topic")

    def test_a_new_login_target_drops_the_old_login(self) -> None:
        """Another login URL or dev_sno: the old login's addresses and token go."""
        s = settings(login_url=LOGIN)
        s.gateway_dev_sno = "GW"
        s.logged_in(login_result(s, "http://127.0.0.2/r"))

        s.apply(Kind.DEV_SNO, b"OTHER")

        assert s.report_urls() == ([FILE_URL], "file")
        assert s.auth() == {}

    def test_a_late_answer_to_an_old_login_is_ignored(self) -> None:
        """A login result for a login URL no longer in force changes nothing."""
        s = settings(login_url=LOGIN)
        s.gateway_dev_sno = "GW"
        old = login_result(s, "http://127.0.0.2/r")
        s.apply(Kind.LOGIN_URL, b"http://127.0.0.7/Login")

        assert not s.logged_in(old)
        assert s.report_urls() == ([FILE_URL], "file")

    def test_forget_unseen_clears_topics_gone_while_away(self) -> None:
        """After a replay without a config topic, its value no longer applies."""
        s = settings()
        s.apply(Kind.REPORT_PERIOD, b"9")

        assert s.forget_unseen({Kind.REPORT_URL})
        assert s.period()[1] == "file"


class TestRefusals:
    @pytest.mark.parametrize(
        ("kind", "bad"),
        [
            (Kind.REPORT_URL, b"ftp://127.0.0.1/r"),
            (Kind.REPORT_URL, b"http://"),
            (Kind.REPORT_PERIOD, b"0"),
            (Kind.REPORT_PERIOD, b"86401"),
            (Kind.REPORT_PERIOD, b"2.5"),
            (Kind.REPORT_PERIOD, b"soon"),
            (Kind.LOGIN_URL, b"mailto:x@y"),
            (Kind.DEV_SNO, b"has space"),
            (Kind.DEV_SNO, b"\xff"),
        ],
    )
    def test_refused_value_keeps_the_previous_one(self, kind: Kind, bad: bytes) -> None:
        """A refused value raises RecordError, is remembered, and the previous value stays."""
        s = settings()
        good = {Kind.REPORT_URL: b"http://127.0.0.3/r", Kind.REPORT_PERIOD: b"15",
                Kind.LOGIN_URL: b"http://127.0.0.4/Login", Kind.DEV_SNO: b"ABC"}[kind]
        s.apply(kind, good)
        before = s.document()

        with pytest.raises(RecordError):
            s.apply(kind, bad)

        after = s.document()
        assert after["refused"][-1]["setting"] == kind.value.partition("/")[2]  # type: ignore[index]
        assert {k: v for k, v in after.items() if k != "refused"} == {
            k: v for k, v in before.items() if k != "refused"}

    def test_refused_url_is_shown_redacted(self) -> None:
        """A refused URL with a token in its query is remembered without it."""
        s = settings()
        with pytest.raises(RecordError):
            s.apply(Kind.REPORT_URL, b"ftp://u:pw@127.0.0.1/r?token=s3cret")

        assert b"s3cret" not in orjson.dumps(s.document())
        assert b"pw" not in orjson.dumps(s.document())

    def test_each_url_of_a_refused_list_is_redacted(self) -> None:
        """In a refused list, the second URL's credentials and query are hidden too."""
        s = settings()
        with pytest.raises(RecordError):
            s.apply(Kind.REPORT_URL, b"http://127.0.0.1/r, ftp://u:pw2@127.0.0.2/x?token=s3")

        shown = s.document()["refused"][-1]["value"]  # type: ignore[index]
        assert shown == "http://127.0.0.1/r, ftp://127.0.0.2/x"

    def test_login_refusals_are_remembered(self) -> None:
        """Addresses and periods the login answer gave but the bridge refused are listed."""
        s = settings(login_url=LOGIN)
        s.gateway_dev_sno = "GW"
        target = s.login_target()
        assert target is not None
        result = LoginResult((), None, "", (Refused("http:", "bad"),
                                            Refused("1e9", "too long", "report_period")),
                             *target)
        s.logged_in(result)

        refused = s.document()["refused"]
        assert isinstance(refused, list)
        assert [r["setting"] for r in refused] == ["report_url", "report_period"]


class TestDocument:
    def test_shape_and_no_token(self) -> None:
        """The bridge/settings record has every field, URLs redacted, no token anywhere."""
        s = settings(login_url="http://gw:pw@127.0.0.1:9528/Login?key=k3y")
        s.gateway_dev_sno = "GW"
        s.login_requested()
        s.logged_in(login_result(s, "http://127.0.0.2/r?site=1", period=5.0, token="T0K"))

        doc = s.document()

        assert doc == {
            "report_url": {"value": ["http://127.0.0.2/r"], "source": "login"},
            "report_period": {"value": 5.0, "source": "login"},
            "release": {"value": "V2R2C01", "source": "file", "reports": ["F2"],
                        "login": "L1"},
            "reporter_id": {"value": "GW", "source": "dev_sno"},
            "login_url": {"value": "http://127.0.0.1:9528/Login", "source": "file"},
            "dev_sno": {"value": "GW", "source": "gateway"},
            "login": {"state": "ok", "at": WALL, "error": None},
            "refused": [],
        }
        assert s.auth() == {"token": "T0K", "dev_sno": "GW"}
        assert b"T0K" not in orjson.dumps(doc)

    def test_login_states(self) -> None:
        """off without a login URL, pending when asked, failed with its error."""
        s = settings()
        assert s.document()["login"] == {"state": "off", "at": None, "error": None}
        s.apply(Kind.LOGIN_URL, b"http://127.0.0.4/Login")
        s.gateway_dev_sno = "GW"
        s.login_requested()
        assert s.document()["login"]["state"] == "pending"  # type: ignore[index]

        s.login_failed(LoginFailed("http://127.0.0.4/Login", "GW", "login answered HTTP 500",
                                  "L1"))

        assert s.document()["login"] == {"state": "failed", "at": WALL,
                                         "error": "login answered HTTP 500"}

    def test_send_token_off(self) -> None:
        """platform.send_token = false: no parameters for the login's targets."""
        s = settings(login_url=LOGIN, send_token=False)
        s.gateway_dev_sno = "GW"
        s.logged_in(login_result(s, "http://127.0.0.2/r"))

        assert s.auth() == {}


class _Made:
    def __init__(self) -> None:
        self.made: list[tuple[str, Callable[[], Mapping[str, str]] | None]] = []

    def __call__(self, url: str, params: Callable[[], Mapping[str, str]] | None) -> Target:
        self.made.append((url, params))
        return Target(url, "SN-b", _NoSender, Backoff(1, 1), lambda a: None, params=params)


class _NoSender:
    def post(self, url: str, body: bytes, report_id: str, timeout: float | None = None) -> int:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


class TestTargetSet:
    def test_login_targets_read_the_current_token_others_none(self) -> None:
        """Targets the login issued see the newest token at each POST; others get no params."""
        made = _Made()
        targets = TargetSet(made)
        try:
            targets.update(["http://127.0.0.2/r"], issued_by_login=True)
            targets.set_auth({"token": "one", "dev_sno": "D"})
            params = made.made[0][1]
            assert params is not None
            assert params() == {"token": "one", "dev_sno": "D"}
            targets.set_auth({"token": "two", "dev_sno": "D"})
            assert params()["token"] == "two"
            targets.update(["http://127.0.0.3/r"], issued_by_login=False)

            assert made.made[1] == ("http://127.0.0.3/r", None)
            assert len(targets) == 1
            assert targets.login_names == frozenset()
        finally:
            for target in targets.all():
                target.stop()

    def test_the_file_url_issued_by_the_login_stays_one_target(
            self, caplog: pytest.LogCaptureFixture) -> None:
        """The login issuing the file's own URL neither drops nor re-adds it: the same
        target posts with the token from then on, and without it once the file's URL
        is back; nothing is logged at INFO."""
        posted: queue.Queue[str] = queue.Queue()

        class Recording:
            def post(self, url: str, body: bytes, report_id: str,
                     timeout: float | None = None) -> int:
                posted.put(url)
                return 200

            def close(self) -> None:
                pass

        made: list[str] = []

        def make(url: str, params: Callable[[], Mapping[str, str]] | None) -> Target:
            made.append(url)
            return Target(url, "SN-b", Recording, Backoff(1, 1), lambda a: None, params=params)

        targets = TargetSet(make)
        try:
            (target,) = targets.update([FILE_URL], issued_by_login=False)
            target.offer(b"{}", 0)
            assert posted.get(timeout=5) == FILE_URL
            caplog.clear()  # its "reporting to", logged when an earlier test left INFO on

            with caplog.at_level(logging.INFO, logger="bridge.targets"):
                targets.set_auth({"token": "t", "dev_sno": "D"})
                assert targets.update([FILE_URL], issued_by_login=True) == []
            target.offer(b"{}", 0)
            assert posted.get(timeout=5) == f"{FILE_URL}?token=t&dev_sno=D"
            assert targets.login_names == frozenset({target.name})

            with caplog.at_level(logging.INFO, logger="bridge.targets"):
                assert targets.update([FILE_URL], issued_by_login=False) == []
            target.offer(b"{}", 0)
            assert posted.get(timeout=5) == FILE_URL

            assert made == [FILE_URL]
            assert targets.all() == [target]
            assert targets.login_names == frozenset()
            assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
        finally:
            for each in targets.all():
                each.stop()

    def test_a_new_token_cuts_the_backoff_of_a_refused_login_target_short(self) -> None:
        """A login target refused (401: backoff at its cap) retries at once with a new token,
        not after the rest of a long backoff."""
        posted: queue.Queue[str] = queue.Queue()

        class Refusing:
            def post(self, url: str, body: bytes, report_id: str,
                     timeout: float | None = None) -> int:
                posted.put(url)
                if "token=one" in url:
                    raise DeliveryError("HTTP 401", 401)
                return 200

            def close(self) -> None:
                pass

        def make(url: str, params: Callable[[], Mapping[str, str]] | None) -> Target:
            return Target(url, "SN-b", Refusing, Backoff(30, 30), lambda a: None, params=params)

        targets = TargetSet(make)
        targets.set_auth({"token": "one", "dev_sno": "D"})
        try:
            (target,) = targets.update(["http://127.0.0.2/r"], issued_by_login=True)
            target.offer(b"{}", 0)
            assert "token=one" in posted.get(timeout=5)
            targets.set_auth({"token": "two", "dev_sno": "D"})
            assert "token=two" in posted.get(timeout=5)
        finally:
            for each in targets.all():
                each.stop()


class TestTwoReports:
    """The sub-device report of V5R7C01 and V6: its own URLs and period, by the same
    precedence (topic, login, file) as the gateway's, and the release in force."""

    def test_each_report_has_its_own_sources(self) -> None:
        s = settings(release="V6R1C01", login_url=LOGIN, interval=20.0,
                     devices_report_url="http://127.0.0.3/media", devices_interval=60.0)
        s.gateway_dev_sno = "GW"
        assert s.report_urls("devices") == (["http://127.0.0.3/media"], "file")
        assert s.period("devices") == (60.0, "file")

        target = s.login_target()
        assert target == (LOGIN, "GW", "L4")
        s.logged_in(LoginResult(("http://127.0.0.2/sys",), 25.0, "T", (), *target,
                                devices_urls=("http://127.0.0.2/media",), devices_period=30.0))
        assert s.report_urls("devices") == (["http://127.0.0.2/media"], "login")
        assert s.period("devices") == (30.0, "login")

        s.apply(Kind.DEVICES_REPORT_URL, b"http://127.0.0.4/m1,http://127.0.0.4/m2")
        s.apply(Kind.DEVICES_REPORT_PERIOD, b"7")
        assert s.report_urls("devices") == (["http://127.0.0.4/m1", "http://127.0.0.4/m2"],
                                            "topic")
        assert s.period("devices") == (7.0, "topic")
        # the gateway report's own sources are untouched
        assert s.report_urls() == (["http://127.0.0.2/sys"], "login")
        assert s.period() == (25.0, "login")

    def test_devices_period_defaults_to_the_interval(self) -> None:
        s = settings(release="V6R1C01", interval=15.0)

        assert s.period("devices") == (15.0, "file")
        assert s.report_urls("devices") == ([], "none")

class TestRelease:
    """config/release and the release's login variant; reporter_id."""

    def test_release_topic_switches_release_and_login_variant(self) -> None:
        """config/release beats the file's; a login of the old variant no longer counts."""
        s = settings(release="V2R1C01", format="v2", login_url=LOGIN)
        s.gateway_dev_sno = "GW"
        assert s.login_target() == (LOGIN, "GW", "L0")
        s.logged_in(login_result(s, "http://127.0.0.2/r"))
        assert s.report_urls()[1] == "login"

        assert s.apply(Kind.RELEASE, b"V2R2C01") is True

        assert s.release()[0].name == "V2R2C01"
        assert s.release()[1] == "topic"
        assert s.login_target() == (LOGIN, "GW", "L1")
        assert s.report_urls() == ([FILE_URL], "file")  # the L0 login's address is gone
        assert s.document()["release"] == {"value": "V2R2C01", "source": "topic",
                                           "reports": ["F2"], "login": "L1"}

        s.apply(Kind.RELEASE, b"")
        assert s.release()[0].name == "V2R1C01"
        assert s.release()[1] == "file"

    def test_the_reports_named_are_those_sent_under_the_file_s_format(self) -> None:
        """V2R6C01 with format "port" sends F3, and so does V5R6C01 switched to on
        config/release (it offers "port" too); V6R1C01 offers no variant: its own."""
        s = settings(release="V2R6C01", format="port")
        assert s.document()["release"] == {"value": "V2R6C01", "source": "file",
                                           "reports": ["F3"], "login": "L3"}

        s.apply(Kind.RELEASE, b"V5R6C01")
        assert s.document()["release"] == {"value": "V5R6C01", "source": "topic",
                                           "reports": ["F3"], "login": "L3"}

        s.apply(Kind.RELEASE, b"V6R1C01")
        assert s.document()["release"] == {"value": "V6R1C01", "source": "topic",
                                           "reports": ["F7", "F8"], "login": "L4"}

    @pytest.mark.parametrize("payload", [b"V9R9C09", b"v2r2c01 x"])
    def test_unknown_release_is_refused_and_the_old_kept(self, payload: bytes) -> None:
        s = settings()

        with pytest.raises(RecordError) as info:
            s.apply(Kind.RELEASE, payload)

        assert info.value.code == "release"
        assert s.release()[0].name == "V2R2C01"
        refused = s.document()["refused"]
        assert isinstance(refused, list)
        assert refused[0]["setting"] == "release"

    def test_reporter_id_is_the_topic_the_file_or_dev_sno(self) -> None:
        section = PlatformSection.model_validate({"report_url": [FILE_URL]})
        s = Settings(section, lambda: WALL, reporter_id="FILE-ID")
        s.gateway_dev_sno = "GW"
        assert s.reporter_id() == ("FILE-ID", "file")
        s.apply(Kind.REPORTER_ID, b"site-7")
        assert s.reporter_id() == ("site-7", "topic")
        assert Settings(section, lambda: WALL).reporter_id()[1] == "dev_sno"
