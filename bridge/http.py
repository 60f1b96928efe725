"""The one place that speaks HTTP to the platform, through requests.

requests' exceptions are translated here, and only here, into DeliveryError
(or RetryAfter), so the delivery logic never sees a library type. TLS
verification is always on and an https target never falls back to http: the
trusted CAs are the system's store (what `update-ca-certificates` installs),
certifi's bundle, and `ca_file` on top of both. Redirects are not followed: a
POST answered with 3xx has not been delivered.

A platform is not trusted to be quick or brief: every request has a total
deadline (a server trickling a byte at a time is cut off when it passes, not
only one that stops), and at most a few KiB of its answer are read, never the
whole body. A report's answer is escaped before it reaches a log line, and the
values of the request's query (the login's token) are hidden in it.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import certifi
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from bridge.errors import DeliveryError, RetryAfter
from bridge.hide import without_credentials
from bridge.urltext import BODY_LIMIT, printable, without_query_values

logger = logging.getLogger(__name__)

USER_AGENT = "se3-bridge/0.1"
LOGIN_BODY_LIMIT = 65536  # bytes of a login answer read; a longer one is refused
CONNECT_TIMEOUT = 5.0  # seconds to make a connection, at most (the request's own limit)


def trust_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A verifying TLS context: the system's CAs, certifi's, and `ca_file`'s on top.

    The system store is OpenSSL's default (it honours SSL_CERT_FILE and
    SSL_CERT_DIR); certifi keeps a box without one working. Loading them takes
    a good part of a second on a small box, so one context is shared by all.
    """
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    return _trust_context(ca_file, env)


@functools.lru_cache(maxsize=4)
def _trust_context(ca_file: Path | None, _env: tuple[str | None, str | None]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


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


class _Watch:
    """The connection one request uses, so that its deadline can cut it off."""

    def __init__(self) -> None:
        self.conn: HTTPConnection | None = None
        self.expired = False
        self._lock = threading.Lock()

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self.conn.sock if self.conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread at once


_watching = threading.local()  # the _Watch of the request on this thread, if any


class _WatchedConnectionMixin:
    """Tells the request's _Watch which connection it uses: at `connect` (a new https
    connection shakes hands before its request is sent) and at `request`."""

    def connect(self) -> None:
        _watched(self)
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


def _watched(conn: Any) -> None:
    watch = getattr(_watching, "watch", None)
    if watch is not None:
        watch.conn = conn


class _HTTPConnection(_WatchedConnectionMixin, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnectionMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    """requests' adapter with our trust store (https) and connections a deadline can cut off."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._context is not None:
            kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        # The context holds the trusted CAs; requests would add certifi's file to it
        # on every connection.
        conn.ca_certs = conn.ca_cert_dir = None


class HttpSender:
    """POSTs report bodies over one keep-alive session (one sender per target thread)."""

    def __init__(self, timeout: float, ca_file: Path | None = None) -> None:
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._ca_file = ca_file
        self._tls_ready = False  # the https adapter is made at the first https request
        self._session.mount("http://", _Adapter(None))

    def post(self, url: str, body: bytes, report_id: str, timeout: float | None = None) -> int:
        """POST `body`; return the 2xx status or raise DeliveryError."""
        limit = self.timeout if timeout is None else min(timeout, self.timeout)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Report-Id": report_id,
        }
        status, text, answer_headers = self._request(
            "POST", url, limit, BODY_LIMIT, data=body, headers=headers
        )
        text = printable(without_query_values(text, url).strip())
        if 200 <= status < 300:
            logger.debug("platform answered %s: %s", status, text)
            return status
        delay = retry_after(answer_headers.get("Retry-After"))
        if delay is not None:  # 429 and 503 above all, but the platform's word goes
            raise RetryAfter(f"HTTP {status}, retry after {delay:g} s", status, delay, text)
        raise DeliveryError(f"HTTP {status}", status, text)

    def get(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        """GET `url` with `params`; return (status, body text) or raise DeliveryError,
        also when the body is longer than LOGIN_BODY_LIMIT."""
        status, text, _ = self._request(
            "GET", url, self.timeout, LOGIN_BODY_LIMIT, refuse_longer=True, params=params
        )
        return status, text

    def _request(
        self, method: str, url: str, limit: float, max_body: int, refuse_longer: bool = False,
        **kwargs: Any,
    ) -> tuple[int, str, Mapping[str, str]]:
        """One request within `limit` seconds in all, reading at most `max_body` bytes."""
        if not self._tls_ready and url[:6].lower() == "https:":
            try:
                context = trust_context(self._ca_file)
            except (OSError, ssl.SSLError) as exc:
                # Every https request fails so, not the worker thread.
                raise DeliveryError(f"request failed: cannot load the CAs: {_reason(exc)}") from exc
            self._session.mount("https://", _Adapter(context))
            self._tls_ready = True
        watch = _Watch()
        timer = threading.Timer(limit, watch.expire)
        timer.daemon = True
        _watching.watch = watch
        timer.start()
        try:
            connect = min(limit, CONNECT_TIMEOUT)
            with _translated(limit, watch, url, connect):
                response = self._session.request(
                    method, url, timeout=(connect, limit), verify=True,
                    allow_redirects=False, stream=True, **kwargs,
                )
                try:
                    raw = response.raw.read(max_body + 1, decode_content=True)
                    complete = len(raw) <= max_body
                    if complete:
                        response.raw.release_conn()  # read to the end: keep the connection
                finally:
                    response.close()  # a no-op after release_conn, else drops the connection
        finally:
            timer.cancel()
            _watching.watch = None
        if refuse_longer and not complete:
            raise DeliveryError(f"answer longer than {max_body} bytes", response.status_code)
        text = raw[:max_body].decode(response.encoding or "utf-8", errors="replace")
        return response.status_code, text, response.headers

    def close(self) -> None:
        self._session.close()


@contextlib.contextmanager
def _translated(timeout: float, watch: _Watch | None = None, url: str = "",
                connect: float | None = None) -> Iterator[None]:
    """requests' (and urllib3's) exceptions in, DeliveryError out: the one boundary.

    The message never carries the URL's query (a token may be in it)."""
    try:
        yield
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError,
            ValueError) as exc:  # ValueError: e.g. a header not Latin-1
        if watch is not None and watch.expired:
            raise DeliveryError(f"timed out after {timeout:g} s") from exc
        error = _translate(exc, timeout, timeout if connect is None else connect)
        shown = without_credentials(without_query_values(str(error), url))
        if shown != str(error):
            error = DeliveryError(shown)
        raise error from exc


def _translate(exc: Exception, timeout: float, connect: float) -> DeliveryError:
    """The DeliveryError of one of requests' errors; a timeout names the limit that ran
    out (`connect` for making the connection, `timeout` for the answer)."""
    if isinstance(exc, requests.exceptions.SSLError | urllib3.exceptions.SSLError):
        return DeliveryError(f"TLS failure: {_reason(exc)}")
    if connect < timeout and isinstance(
            exc, requests.exceptions.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError):
        return DeliveryError(f"connection timed out after {connect:g} s")
    if isinstance(exc, requests.exceptions.Timeout | urllib3.exceptions.TimeoutError):
        return DeliveryError(f"timed out after {timeout:g} s")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return DeliveryError(f"connection failed: {_reason(exc)}")
    return DeliveryError(f"request failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """The innermost cause's message, without the URL requests puts in front."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return (str(exc) or type(exc).__name__)[:200]
