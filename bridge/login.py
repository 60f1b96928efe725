"""The platform login (CONTRACT section 4): where reports go and how often.

`GET login_url?dev_sno=...&hex_mac=0x...` answers, on 200, a JSON object
whose `deviceMonitorAddr` (later `device_monitor_url`) is the report address,
possibly a comma-separated list of absolute or relative URLs, and whose
`deviceMonitorPeriod` (later `device_monitor_report_period`) is the interval.
Anything else is a failed login, retried with backoff by `LoginWorker`.

The answer also carries a `token`: a secret, never logged nor published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from bridge.config import split_urls
from bridge.delivery import Backoff
from bridge.errors import DeliveryError
from bridge.http import HttpSender, redact

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
    address = next((doc[k] for k in _ADDRESS_KEYS if isinstance(doc.get(k), str)), "")
    urls = tuple(absolute(login_url, part) for part in split_urls(address))
    if not urls:
        raise DeliveryError("login answer has no deviceMonitorAddr", status)
    period: float | None = None
    for key in _PERIOD_KEYS:
        value = doc.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 1:
            period = float(value)
            break
    return LoginResult(urls, period)


class LoginWorker:
    """Logs in on its own thread whenever asked, retrying with backoff until it works."""

    def __init__(
        self,
        login_url: str,
        sender: HttpSender,
        backoff: Backoff,
        on_result: Callable[[LoginResult], None],
        on_event: Callable[[dict[str, object]], None],
    ) -> None:
        self.login_url = login_url
        self.name = redact(login_url)
        self._sender = sender
        self._backoff = backoff
        self._on_result = on_result
        self._on_event = on_event
        self._cond = threading.Condition()
        self._wanted: tuple[str, str] | None = None
        self._generation = 0
        self._done = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="login", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self, dev_sno: str, mac: str) -> None:
        """Log in (again) as this gateway."""
        with self._cond:
            self._wanted = (dev_sno, mac)
            self._generation += 1
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _next(self) -> tuple[int, tuple[str, str]] | None:
        with self._cond:
            while not self._stopping:
                if self._wanted is not None and self._generation != self._done:
                    return self._generation, self._wanted
                self._cond.wait()
            return None

    def _run(self) -> None:
        failures = 0
        try:
            while (job := self._next()) is not None:
                generation, (dev_sno, mac) = job
                try:
                    status, text = self._sender.get(
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
                    self._pause(delay, generation)
                    continue
                with self._cond:
                    self._done = generation
                logger.info("logged in at %s: reporting to %s every %s s", self.name,
                            ", ".join(redact(u) for u in result.urls), result.period or "default")
                self._event(True, 200, None, failures + 1, None)
                failures = 0
                self._on_result(result)
        except Exception:
            logger.exception("login worker stopped by a bug")
        finally:
            self._sender.close()

    def _event(self, ok: bool, status: int | None, error: str | None, attempt: int,
               retry_in: float | None) -> None:
        self._on_event({
            "ts": round(time.time(), 3), "login": self.name, "ok": ok, "status": status,
            "error": error, "attempt": attempt,
            "retry_in": None if retry_in is None else round(retry_in, 3),
        })

    def _pause(self, delay: float, generation: int) -> None:
        end = time.monotonic() + delay
        with self._cond:
            while not self._stopping and self._generation == generation:
                left = end - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)
