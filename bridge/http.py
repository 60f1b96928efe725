"""The one place that speaks HTTP to the platform, through requests.

requests' exceptions are translated here, and only here, into DeliveryError
(or RetryAfter), so the delivery logic never sees a library type. TLS
verification is always on: `ca_file` adds a private CA, nothing turns it off,
and an https target never falls back to http. Redirects are not followed: a
POST answered with 3xx has not been delivered.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from bridge.errors import DeliveryError, RetryAfter

logger = logging.getLogger(__name__)

USER_AGENT = "se3-bridge/0.1"
_BODY_LIMIT = 512


def redact(url: str) -> str:
    """The URL without user info and query string, fit for logs and events."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # still show where, less credentials and query
        head = re.split(r"[?#]", url, maxsplit=1)[0]
        return re.sub(r"//[^/@]*@", "//", head, count=1)[:200]
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpSender:
    """POSTs report bodies over one keep-alive session (one sender per target thread)."""

    def __init__(self, timeout: float, ca_file: Path | None = None) -> None:
        self.timeout = timeout
        self._verify: bool | str = str(ca_file) if ca_file else True
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT

    def post(self, url: str, body: bytes, report_id: str, timeout: float | None = None) -> int:
        """POST `body`; return the 2xx status or raise DeliveryError."""
        limit = self.timeout if timeout is None else min(timeout, self.timeout)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Report-Id": report_id,
        }
        with _translated(limit):
            response = self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=(min(limit, 5.0), limit),
                verify=self._verify,
                allow_redirects=False,
            )
            text = response.text[:_BODY_LIMIT]
        status = response.status_code
        if 200 <= status < 300:
            logger.debug("platform answered %s: %s", status, text)
            return status
        delay = retry_after(response.headers.get("Retry-After"))
        if delay is not None:  # 429 and 503 above all, but the platform's word goes
            raise RetryAfter(f"HTTP {status}, retry after {delay:g} s", status, delay, text)
        raise DeliveryError(f"HTTP {status}", status, text)

    def get(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        """GET `url` with `params`; return (status, body text) or raise DeliveryError."""
        with _translated(self.timeout):
            response = self._session.get(
                url, params=params, timeout=(min(self.timeout, 5.0), self.timeout),
                verify=self._verify, allow_redirects=False,
            )
            return response.status_code, response.text[:65536]

    def close(self) -> None:
        self._session.close()


@contextlib.contextmanager
def _translated(timeout: float) -> Iterator[None]:
    """requests' exceptions in, DeliveryError out: the one translation boundary."""
    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise DeliveryError(f"TLS failure: {_reason(exc)}") from exc
    except requests.exceptions.Timeout as exc:
        raise DeliveryError(f"timed out after {timeout:g} s") from exc
    except requests.exceptions.ConnectionError as exc:
        raise DeliveryError(f"connection failed: {_reason(exc)}") from exc
    except requests.exceptions.RequestException as exc:
        raise DeliveryError(f"request failed: {_reason(exc)}") from exc
    except (OSError, ValueError) as exc:  # e.g. an unreadable CA bundle, a header not Latin-1
        raise DeliveryError(f"request failed: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """The innermost cause's message, without the URL requests puts in front."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return (str(exc) or type(exc).__name__)[:200]
