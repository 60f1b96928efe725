"""The platform login: where reports go, how often, and the token they carry.

`GET login_url?dev_sno=...&hex_mac=0x...` (the V6 login, L4:
`?mq_license_key=...&device_sn=...`, plus `dev_sno` and `hex_mac` as its example
sends; the variants are in bridge.releases) answers, on 200, a JSON object
whose `deviceMonitorAddr` (L4: `device_monitor_url`) is the report address,
possibly a comma-separated list of absolute or relative URLs (without one, the
next source of report URLs stays in force), and whose `deviceMonitorPeriod`
(L4: `device_monitor_report_period`) is the interval. L4 also names the
sub-device report's own address and period (`media_device_monitor_url`,
`media_device_monitor_report_period`), and its token `mq_login_token`. Every
variant's names are accepted in any answer, the variant's own first.
Anything else is a failed login, retried with backoff by `LoginWorker`.

A relative address is joined to the login URL's scheme and host (never its
user:password); `//host/path` takes the login's scheme; an address that is
still no usable URL (`http://` alone, `http://[::1`) is refused with a warning,
and so is a period that is not whole seconds from 1 to 86400 (a number, or a
number as text; bridge.rules): the next source is used instead.

The answer's `token` is, in the vendor's login document (sophonai/bm1682,
V2R1C01), the parameter every call to the platform must carry: reports to the
addresses this login issued carry it. It is a secret, never logged nor published.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson

from bridge import rules
from bridge.channel import DEVICES
from bridge.delivery import Backoff
from bridge.errors import DeliveryError
from bridge.releases import LOGINS, LoginVariant
from bridge.slot import LatestSlot
from bridge.urls import Refused, screen, split_urls
from bridge.urltext import printable, redact, without_query_values

logger = logging.getLogger(__name__)

# Every variant's names are accepted on input, its own first (bridge.releases.LOGINS).
_ADDRESS_KEYS = tuple(dict.fromkeys(k for v in LOGINS.values() for k in v.address_keys))
_PERIOD_KEYS = tuple(dict.fromkeys(k for v in LOGINS.values() for k in v.period_keys))
_TOKEN_KEYS = tuple(dict.fromkeys(k for v in LOGINS.values() for k in v.token_keys))


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A successful login: the report URLs it issued (checked), its period, its token."""

    urls: tuple[str, ...]
    period: float | None
    token: str = dataclasses.field(default="", repr=False)
    refused: tuple[Refused, ...] = ()
    login_url: str = dataclasses.field(default="", repr=False)
    dev_sno: str = ""
    variant: str = ""  # the login variant asked (L0-L4)
    devices_urls: tuple[str, ...] = ()  # the sub-device report's, where the variant has one
    devices_period: float | None = None

    def issued(self, report: str) -> tuple[tuple[str, ...], float | None]:
        """The URLs and period this login issued for `report` (gateway or devices)."""
        if report == DEVICES:
            return self.devices_urls, self.devices_period
        return self.urls, self.period


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """A login to make: where, as which gateway, in which variant."""

    login_url: str = dataclasses.field(repr=False)
    dev_sno: str
    params: tuple[tuple[str, str], ...] = dataclasses.field(repr=False)  # the query
    variant: LoginVariant


def login_request(login_url: str, dev_sno: str, variant: LoginVariant, sn: str,
                  mac: str | None) -> LoginRequest | None:
    """The request of `variant` for this gateway; None when a value it requires is unknown
    (the MAC for `hex_mac`). A variant's first two parameters are the ones its table
    requires; the others (L4 still sends `dev_sno` and `hex_mac`, as its example does) are
    left out when unknown."""
    values = {"dev_sno": dev_sno, "sn": sn, "hex_mac": hex_mac(mac) if mac else ""}
    params = []
    for n, (param, value_name) in enumerate(variant.params):
        value = values[value_name]
        if not value and n < 2:
            return None
        if value:
            params.append((param, value))
    return LoginRequest(login_url, dev_sno, tuple(params), variant)


@dataclass(frozen=True, slots=True)
class LoginFailed:
    """A login attempt that failed (it is retried): what the settings show."""

    login_url: str = dataclasses.field(repr=False)
    dev_sno: str
    error: str
    variant: str = ""


def hex_mac(mac: str) -> str:
    """`0x` + the MAC without separators, lower case."""
    return "0x" + mac.replace(":", "").replace("-", "").lower()


def absolute(login_url: str, address: str) -> str:
    """An address as issued, joined to the login URL's scheme and host when relative.

    The scheme is recognised in any case (`HTTPS://` is absolute); the login
    URL's user:password is never copied into a joined address.
    """
    try:
        parts = urlsplit(address)
    except ValueError:  # e.g. `http://[::1`: as given, for the check to refuse
        return address
    if parts.scheme:
        return urlunsplit(parts)  # the scheme in lower case, the rest as given
    base = urlsplit(login_url)
    if address.startswith("//"):
        return f"{base.scheme}:{address}"
    host = base.netloc.rpartition("@")[2]
    return f"{base.scheme}://{host}/{address.lstrip('/')}"


def parse_answer(login_url: str, status: int, text: str,
                 variant: LoginVariant = LOGINS["L1"]) -> LoginResult:
    """The report URLs, periods and token from a login answer in `variant`; DeliveryError
    when it failed."""
    if status != 200:
        shown = printable(without_query_values(text, login_url))  # a key in the login URL
        raise DeliveryError(f"login answered HTTP {status}", status, shown)
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise DeliveryError("login answer is not JSON", status) from None
    if not isinstance(doc, dict):
        raise DeliveryError("login answer is not a JSON object", status)
    # The vendor's login document marks the address optional: without one,
    # reports go where the next source says.
    refused: list[Refused] = []
    urls = _addresses(doc, login_url, _keys(variant.address_keys, _ADDRESS_KEYS), refused)
    period = _period(doc, _keys(variant.period_keys, _PERIOD_KEYS), "report_period", refused)
    devices_urls = _addresses(doc, login_url, variant.devices_address_keys, refused)
    devices_period = _period(doc, variant.devices_period_keys, "devices_report_period",
                             refused)
    token = next((doc[k] for k in _keys(variant.token_keys, _TOKEN_KEYS)
                  if isinstance(doc.get(k), str)), "")
    return LoginResult(tuple(urls), period, token, tuple(refused),
                       devices_urls=tuple(devices_urls), devices_period=devices_period)


def _keys(own: tuple[str, ...], every: tuple[str, ...]) -> tuple[str, ...]:
    return own + tuple(k for k in every if k not in own)


def _addresses(doc: dict[str, object], login_url: str, keys: tuple[str, ...],
               refused: list[Refused]) -> list[str]:
    """The first non-blank address list of `keys`, joined to the login URL and checked."""
    address = next((v for k in keys if isinstance(v := doc.get(k), str) and v.strip()), "")
    urls, bad = screen(absolute(login_url, part) for part in split_urls(address))
    refused.extend(bad)
    return urls


def _period(doc: dict[str, object], keys: tuple[str, ...], setting: str,
            refusals: list[Refused]) -> float | None:
    """The first usable period of `keys` (a number, or a number as text), else None and
    the refusal of the first one given (absent, null or blank: not given);
    bridge.rules.report_period."""
    refused = None
    for key in keys:
        value = doc.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            return float(rules.report_period(value))
        except ValueError as exc:
            if refused is None:
                refused = Refused(printable(str(value), 32), rules.refusal(key, exc), setting)
    if refused is not None:
        refusals.append(refused)
    return None


def refusals_line(refused: tuple[Refused, ...], shown: int = 3) -> str:
    """The values a login answer had refused, in one line: the first few, and how many
    more (a platform answering 1,500 addresses makes one WARNING, not 1,492)."""
    first = "; ".join(f"{r.shown!r}: {r.reason}" for r in refused[:shown])
    more = f" and {len(refused) - shown} more" if len(refused) > shown else ""
    return f"refused {len(refused)} value{'s' if len(refused) != 1 else ''}: {first}{more}"


class Fetcher(Protocol):
    """What a login needs of HTTP (bridge.http.HttpSender; fakes in unit tests)."""

    def get(self, url: str, params: dict[str, str]) -> tuple[int, str]: ...

    def close(self) -> None: ...


class LoginWorker:
    """Logs in on its own thread whenever asked, retrying with backoff until it works.

    A new `request` (the gateway's identity or the login URL changed, or the
    platform refused our reports) replaces one still being retried and cuts its
    backoff short. Results carry the login URL and dev_sno they were for, so the
    caller can tell a late answer to an old request.
    """

    def __init__(
        self,
        fetcher: Fetcher,
        backoff: Backoff,
        on_result: Callable[[LoginResult], None],
        on_event: Callable[[dict[str, object]], None],
        wall: Callable[[], float] = time.time,
        on_failure: Callable[[LoginFailed], None] | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._backoff = backoff
        self._on_result = on_result
        self._on_failure = on_failure
        self._on_event = on_event
        self._wall = wall
        self._slot: LatestSlot[LoginRequest] = LatestSlot()
        self._generation = itertools.count(1).__next__
        self._thread = threading.Thread(target=self._run, name="login", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self, request: LoginRequest) -> None:
        """Log in (again) at `request.login_url` as this gateway."""
        self._slot.put(self._generation(), request)

    def stop(self) -> None:
        self._slot.stop()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        failing: tuple[str, str] | None = None  # what `failures` counts the failures of
        try:
            while (job := self._slot.take()) is not None:
                generation, request = job
                login_url, dev_sno = request.login_url, request.dev_sno
                name = redact(login_url)
                if failing != (login_url, dev_sno):  # a new login starts from the first try
                    failures, failing = 0, (login_url, dev_sno)
                try:
                    status, text = self._fetcher.get(login_url, dict(request.params))
                    result = parse_answer(login_url, status, text, request.variant)
                except Exception as exc:  # a bug must not end the logins for good
                    if not isinstance(exc, DeliveryError):
                        logger.exception("login at %s failed unexpectedly", name)
                        exc = DeliveryError(f"login failed: {type(exc).__name__}")
                    failures += 1
                    delay = self._backoff.delay(failures, exc)
                    if failures == 1:
                        answer = f"; answer: {exc.body}" if exc.body else ""
                        logger.warning("login at %s failed: %s%s (retrying)", name, exc, answer)
                    self._event(name, False, exc.status, str(exc), failures, delay)
                    if self._on_failure is not None:
                        self._on_failure(LoginFailed(login_url, dev_sno, str(exc),
                                                     request.variant.name))
                    self._slot.pause(delay, newer_than=generation)
                    continue
                self._slot.done(generation)
                if result.refused:
                    logger.warning("login at %s: %s", name, refusals_line(result.refused))
                where = ", ".join(redact(u) for u in result.urls) or "the next source's URLs"
                logger.info("logged in at %s: reporting to %s every %s s", name, where,
                            result.period or "default")
                self._event(name, True, 200, None, failures + 1, None)
                failures = 0
                self._on_result(dataclasses.replace(
                    result, login_url=login_url, dev_sno=dev_sno, variant=request.variant.name))
        except Exception:
            logger.exception("login worker stopped by a bug")
        finally:
            self._fetcher.close()

    def _event(self, name: str, ok: bool, status: int | None, error: str | None, attempt: int,
               retry_in: float | None) -> None:
        self._on_event({
            "ts": round(self._wall(), 3), "login": name, "ok": ok, "status": status,
            "error": error, "attempt": attempt,
            "retry_in": None if retry_in is None else round(retry_in, 3),
        })
