"""What the bridge uses, and where each setting came from.

Each setting comes from the first source that has a usable value:

    report URLs    config/report_url topic > login answer > platform.report_url
    report period  config/report_period    > login answer > platform.interval
    login URL      config/login_url        > platform.login_url
    dev_sno        config/dev_sno          > gateway/info
    release        config/release          > platform.release
    reporter_id    config/reporter_id      > gateway.reporter_id > dev_sno

and, for the releases with a separate sub-device report (bridge.releases), its own

    URLs           config/devices_report_url    > login answer > platform.devices_report_url
    period         config/devices_report_period > login answer > platform.devices_interval
                                                                 (else platform.interval)

A config topic's value that is not usable (a bad URL, a period outside
1-86400 s) is refused as a whole: the previous value stays in force and the
refusal is remembered (the newest few), for `bridge/settings`. Clearing a
topic (an empty retained payload) falls back to the next source.

`document()` is the retained `bridge/settings` record: what is in force, its
source, the login's state and the latest refusals. URLs in it are redacted, and
the login's token never appears in it.

Pure: no I/O, the wall clock passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from bridge import rules
from bridge.channel import DEVICES, GATEWAY
from bridge.config import PlatformSection
from bridge.errors import RecordError
from bridge.login import LoginFailed, LoginResult
from bridge.releases import Release, release
from bridge.topics import Kind
from bridge.urls import split_urls
from bridge.urltext import printable, redact

CONFIG_KINDS = frozenset({
    Kind.REPORT_URL, Kind.REPORT_PERIOD, Kind.LOGIN_URL, Kind.DEV_SNO,
    Kind.DEVICES_REPORT_URL, Kind.DEVICES_REPORT_PERIOD, Kind.REPORTER_ID, Kind.RELEASE,
})
_SETTING = {kind: kind.value.partition("/")[2] for kind in CONFIG_KINDS}
_URL_KINDS = {GATEWAY: Kind.REPORT_URL, DEVICES: Kind.DEVICES_REPORT_URL}
_PERIOD_KINDS = {GATEWAY: Kind.REPORT_PERIOD, DEVICES: Kind.DEVICES_REPORT_PERIOD}
_KEEP_REFUSED = 10

Json = dict[str, object]


class Settings:
    """The four settings' sources, and the login's state; fed by the bridge's main loop."""

    def __init__(self, platform: PlatformSection, wall: Callable[[], float],
                 reporter_id: str = "") -> None:
        self._file_urls = {GATEWAY: list(platform.report_url),
                           DEVICES: list(platform.devices_report_url)}
        interval = platform.interval
        self._file_period = {GATEWAY: interval, DEVICES: platform.devices_interval or interval}
        self._file_login = platform.login_url
        self._file_release = platform.release
        self._format = platform.format  # `[platform] format`: kept where a release offers it
        self._file_reporter_id = reporter_id  # [gateway] reporter_id
        self._send_token = platform.send_token
        self._wall = wall
        self._topic: dict[Kind, object] = {}  # a config kind's value in force, if set
        self.gateway_dev_sno = ""
        self._login: LoginResult | None = None  # the latest success for login_target()
        self._login_state = "off"
        self._login_at: float | None = None
        self._login_error: str | None = None
        self._refused: deque[Json] = deque(maxlen=_KEEP_REFUSED)

    # -- input ---------------------------------------------------------------

    def apply(self, kind: Kind, payload: bytes) -> bool:
        """Take a config topic's payload; True when its value changed.

        RecordError (and the refusal remembered) when the value is not usable.
        """
        try:
            value = _parse(kind, payload)
        except RecordError as exc:
            shown = payload.decode("utf-8", "replace").strip()
            if kind in (Kind.REPORT_URL, Kind.DEVICES_REPORT_URL, Kind.LOGIN_URL):
                shown = ", ".join(redact(url) for url in split_urls(shown))
            self.refuse(_SETTING[kind], printable(shown, 200), str(exc))
            raise
        if value == self._topic.get(kind):
            return False
        if value is None:
            del self._topic[kind]
        else:
            self._topic[kind] = value
        self._forget_stale_login()
        return True

    def forget_unseen(self, seen: set[Kind]) -> bool:
        """After a replay: a config topic the broker no longer holds was cleared meanwhile."""
        gone = [kind for kind in self._topic if kind not in seen]
        for kind in gone:
            del self._topic[kind]
        if gone:
            self._forget_stale_login()
        return bool(gone)

    def refuse(self, setting: str, shown: str, reason: str) -> None:
        """Remember a refused value (`shown` already redacted)."""
        self._refused.append({"setting": setting, "value": shown, "reason": reason,
                              "at": round(self._wall(), 3)})

    def login_requested(self) -> None:
        self._login_state, self._login_error = "pending", None

    def logged_in(self, result: LoginResult) -> bool:
        """Take a login's answer; False when it answers a login no longer in force."""
        if (result.login_url, result.dev_sno, result.variant) != self.login_target():
            return False
        self._login = result
        self._login_state, self._login_at, self._login_error = "ok", self._wall(), None
        for refused in result.refused:
            self.refuse(refused.setting, refused.shown, f"login answer: {refused.reason}")
        return True

    def login_failed(self, failure: LoginFailed) -> None:
        if (failure.login_url, failure.dev_sno, failure.variant) == self.login_target():
            self._login_state, self._login_at = "failed", self._wall()
            self._login_error = failure.error

    def _forget_stale_login(self) -> None:
        """A login for another URL, dev_sno or variant no longer counts: its addresses,
        periods and token go (the new login brings its own)."""
        target = self.login_target()
        login = self._login
        if login is not None and (login.login_url, login.dev_sno, login.variant) != target:
            self._login = None
        if target is None:
            self._login_state, self._login_at, self._login_error = "off", None, None

    # -- what is in force ----------------------------------------------------

    def report_urls(self, report: str = GATEWAY) -> tuple[list[str], str]:
        """The URLs in force for `report` (gateway or devices) and their source: topic,
        login, file or none."""
        topic = self._topic.get(_URL_KINDS[report])
        if isinstance(topic, list):
            return list(topic), "topic"
        issued = self._login.issued(report)[0] if self._login is not None else ()
        if issued:
            return list(issued), "login"
        if self._file_urls[report]:
            return list(self._file_urls[report]), "file"
        return [], "none"

    def period(self, report: str = GATEWAY) -> tuple[float, str]:
        topic = self._topic.get(_PERIOD_KINDS[report])
        if isinstance(topic, int):
            return float(topic), "topic"
        issued = self._login.issued(report)[1] if self._login is not None else None
        if issued is not None:
            return issued, "login"
        return self._file_period[report], "file"

    def release(self) -> tuple[Release, str]:
        """The platform release in force (its reports, its login) and its source."""
        topic = self._topic.get(Kind.RELEASE)
        if isinstance(topic, str):
            return release(topic), "topic"
        return release(self._file_release), "file"

    def reporter_id(self) -> tuple[str, str]:
        topic = self._topic.get(Kind.REPORTER_ID)
        if isinstance(topic, str):
            return topic, "topic"
        if self._file_reporter_id:
            return self._file_reporter_id, "file"
        return self.dev_sno()[0], "dev_sno"

    def login_url(self) -> tuple[str, str]:
        topic = self._topic.get(Kind.LOGIN_URL)
        if isinstance(topic, str):
            return topic, "topic"
        return (self._file_login, "file") if self._file_login else ("", "none")

    def dev_sno(self) -> tuple[str, str]:
        topic = self._topic.get(Kind.DEV_SNO)
        if isinstance(topic, str):
            return topic, "topic"
        return (self.gateway_dev_sno, "gateway") if self.gateway_dev_sno else ("", "none")

    def login_target(self) -> tuple[str, str, str] | None:
        """(login URL, dev_sno, login variant) to log in with, or None without a login URL."""
        url = self.login_url()[0]
        return (url, self.dev_sno()[0], self.release()[0].login) if url else None

    def auth(self) -> Mapping[str, str]:
        """Query parameters for the login's targets: its token and dev_sno (or none)."""
        login = self._login
        if not self._send_token or login is None or not login.token:
            return {}
        return {"token": login.token, "dev_sno": login.dev_sno}

    def document(self) -> Json:
        """The `bridge/settings` record, without `ts` (added when published)."""
        chosen, release_source = self.release()
        login_url, login_source = self.login_url()
        dev_sno, dev_sno_source = self.dev_sno()
        reporter_id, reporter_id_source = self.reporter_id()
        reports: Json = {}
        for report, prefix in ((GATEWAY, ""), (DEVICES, "devices_")):
            if report == DEVICES and chosen.devices is None:
                continue  # a one-report release
            urls, url_source = self.report_urls(report)
            period, period_source = self.period(report)
            reports[f"{prefix}report_url"] = {"value": [redact(u) for u in urls],
                                              "source": url_source}
            reports[f"{prefix}report_period"] = {"value": period, "source": period_source}
        return {
            **reports,
            "release": {"value": chosen.name, "source": release_source,
                        "reports": list(chosen.sent_under(self._format)),
                        "login": chosen.login},
            "reporter_id": {"value": reporter_id, "source": reporter_id_source},
            "login_url": {"value": redact(login_url) if login_url else "",
                          "source": login_source},
            "dev_sno": {"value": dev_sno, "source": dev_sno_source},
            "login": {"state": self._login_state,
                      "at": None if self._login_at is None else round(self._login_at, 3),
                      "error": self._login_error},
            "refused": list(self._refused),
        }


def dev_sno_value(payload: bytes) -> str | None:
    """The `config/dev_sno` topic's code (None: cleared); RecordError when not usable.
    The gateway collector reads the topic by this same rule."""
    value = _parse(Kind.DEV_SNO, payload)
    return value if isinstance(value, str) else None


def _parse(kind: Kind, payload: bytes) -> object:
    """A config topic's value (None: cleared); RecordError when not usable."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise RecordError(f"{_SETTING[kind]} is not UTF-8 text", code="config") from None
    if kind in _URL_KINDS.values():
        urls = split_urls(text)
        if not urls:  # empty, or only commas: cleared
            return None
        try:
            return rules.report_urls(urls)
        except ValueError as exc:
            raise RecordError(str(exc), code="url") from None
    if not text:
        return None
    rule, code = _RULES[kind]
    try:
        return rule(text)
    except ValueError as exc:
        raise RecordError(rules.refusal(_SETTING[kind], exc), code=code) from None


_RULES: dict[Kind, tuple[Callable[[str], object], str]] = {
    Kind.REPORT_PERIOD: (rules.report_period, "period"),
    Kind.LOGIN_URL: (rules.login_url, "url"),
    Kind.DEV_SNO: (rules.dev_sno, "dev_sno"),
    Kind.DEVICES_REPORT_PERIOD: (rules.report_period, "period"),
    Kind.REPORTER_ID: (rules.reporter_id, "reporter_id"),
    Kind.RELEASE: (rules.release, "release"),
}

