"""The platform login (CONTRACT section 4): where reports go and how often.

`GET login_url?dev_sno=...&hex_mac=0x...` answers, on 200, a JSON object
whose `deviceMonitorAddr` (later `device_monitor_url`) is the report address,
possibly a comma-separated list of absolute or relative URLs (without one, the
config file's `report_url` stays in force), and whose
`deviceMonitorPeriod` (later `device_monitor_report_period`) is the interval.
Anything else is a failed login, retried with backoff by `LoginWorker`.

The answer also carries a `token`: a secret, never logged nor published.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import orjson

from bridge.config import split_urls
from bridge.delivery import Backoff
from bridge.errors import DeliveryError
from bridge.http import redact
from bridge.slot import LatestSlot

logger = logging.getLogger(__name__)

_ADDRESS_KEYS = ("deviceMonitorAddr", "device_monitor_url")
_PERIOD_KEYS = ("deviceMonitorPeriod", "device_monitor_report_period")


@dataclass(frozen=True, slots=True)
class LoginResult:
    urls: tuple[str, ...]
    period: float | None


def hex_mac(mac: str) -> str:
    """`0x` + the MAC without separators, lower case."""
    return "0x" + mac.replace(":", "").replace("-", "").lower()


def absolute(login_url: str, address: str) -> str:
    """An address as issued, joined to the login URL's scheme and host when relative."""
    if address.startswith(("http://", "https://")):
        return address
    parts = urlsplit(login_url)
    return f"{parts.scheme}://{parts.netloc}/{address.lstrip('/')}"


def parse_answer(login_url: str, status: int, text: str) -> LoginResult:
    """The report URLs and period from a login answer; DeliveryError when it failed."""
    if status != 200:
        raise DeliveryError(f"login answered HTTP {status}", status, text[:512])
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise DeliveryError("login answer is not JSON", status) from None
    if not isinstance(doc, dict):
        raise DeliveryError("login answer is not a JSON object", status)
    # The platform's login document marks the address optional: without one,
    # reports go where the config file says (CONTRACT section 4, item 3).
    address = next((doc[k] for k in _ADDRESS_KEYS if isinstance(doc.get(k), str)), "")
    urls = tuple(absolute(login_url, part) for part in split_urls(address))
    period: float | None = None
    for key in _PERIOD_KEYS:
        value = doc.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 1:
            period = float(value)
            break
    return LoginResult(urls, period)


class Fetcher(Protocol):
    """What a login needs of HTTP (bridge.http.HttpSender; fakes in unit tests)."""

    def get(self, url: str, params: dict[str, str]) -> tuple[int, str]: ...

    def close(self) -> None: ...


class LoginWorker:
    """Logs in on its own thread whenever asked, retrying with backoff until it works.

    A new `request` (the gateway's identity changed, or the platform refused our
    reports) replaces one still being retried and cuts its backoff short.
    """

    def __init__(
        self,
        login_url: str,
        fetcher: Fetcher,
        backoff: Backoff,
        on_result: Callable[[LoginResult], None],
        on_event: Callable[[dict[str, object]], None],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.login_url = login_url
        self.name = redact(login_url)
        self._fetcher = fetcher
        self._backoff = backoff
        self._on_result = on_result
        self._on_event = on_event
        self._wall = wall
        self._slot: LatestSlot[tuple[str, str]] = LatestSlot()
        self._generation = itertools.count(1).__next__
        self._thread = threading.Thread(target=self._run, name="login", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self, dev_sno: str, mac: str) -> None:
        """Log in (again) as this gateway."""
        self._slot.put(self._generation(), (dev_sno, mac))

    def stop(self) -> None:
        self._slot.stop()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        try:
            while (job := self._slot.take()) is not None:
                generation, (dev_sno, mac) = job
                try:
                    status, text = self._fetcher.get(
                        self.login_url, {"dev_sno": dev_sno, "hex_mac": hex_mac(mac)}
                    )
                    result = parse_answer(self.login_url, status, text)
                except Exception as exc:  # a bug must not end the logins for good
                    if not isinstance(exc, DeliveryError):
                        logger.exception("login at %s failed unexpectedly", self.name)
                        exc = DeliveryError(f"login failed: {type(exc).__name__}")
                    failures += 1
                    delay = self._backoff.delay(failures, exc)
                    if failures == 1:
                        logger.warning("login at %s failed: %s (retrying)", self.name, exc)
                    self._event(False, exc.status, str(exc), failures, delay)
                    self._slot.pause(delay, newer_than=generation)
                    continue
                self._slot.done(generation)
                where = ", ".join(redact(u) for u in result.urls) or "platform.report_url"
                logger.info("logged in at %s: reporting to %s every %s s", self.name, where,
                            result.period or "default")
                self._event(True, 200, None, failures + 1, None)
                failures = 0
                self._on_result(result)
        except Exception:
            logger.exception("login worker stopped by a bug")
        finally:
            self._fetcher.close()

    def _event(self, ok: bool, status: int | None, error: str | None, attempt: int,
               retry_in: float | None) -> None:
        self._on_event({
            "ts": round(self._wall(), 3), "login": self.name, "ok": ok, "status": status,
            "error": error, "attempt": attempt,
            "retry_in": None if retry_in is None else round(retry_in, 3),
        })
