"""Tests for bridge.http: URL redaction, Retry-After, and HttpSender against a real local server.

The server is a `ThreadingHTTPServer` on 127.0.0.1, port 0, in a thread; the
path chosen by each test decides how it answers. The "slow" path waits on an
event that the fixture sets at teardown, so no test sleeps.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

import bridge.http
from bridge.errors import DeliveryError, RetryAfter
from bridge.hide import hide, spellings, url_secrets, without_credentials
from bridge.http import LOGIN_BODY_LIMIT, USER_AGENT, HttpSender, retry_after
from bridge.urltext import printable, redact, with_query, without_query_values

NOW = 1_700_000_000.0


class TestRedact:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("http://user:pw@example.com/DeviceStatus", "http://example.com/DeviceStatus"),
            ("https://user@example.com:8443/a?token=s3cret&x=1", "https://example.com:8443/a"),
            ("http://example.com/a#frag", "http://example.com/a"),
            ("http://127.0.0.1:9528/DeviceStatus", "http://127.0.0.1:9528/DeviceStatus"),
            ("http://[::1]:9528/r?k=v", "http://[::1]:9528/r"),
            ("http://u:p@[2001:db8::1]/r", "http://[2001:db8::1]/r"),
            ("http://EXAMPLE.com/Path", "http://example.com/Path"),
        ],
    )
    def test_strips_user_info_and_query(self, url: str, shown: str) -> None:
        """User info, query string and fragment are dropped; scheme, host, port, path kept."""
        assert redact(url) == shown

    def test_no_secret_survives(self) -> None:
        """Neither password nor token appears in the redacted URL."""
        shown = redact("https://admin:hunter2@example.com/r?access_token=tok123")

        assert "hunter2" not in shown
        assert "tok123" not in shown
        assert "admin" not in shown

    @pytest.mark.parametrize("url", ["http://example.com:99999/r", "http://[::1/r"])
    def test_unparseable_url_does_not_raise(self, url: str) -> None:
        """redact, used for log lines, never raises: it shows something for any string."""
        assert "example.com" in redact(url) or "::1" in redact(url)


class TestRetryAfter:
    @pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), (" 7 ", 7.0), ("0", 0.0)])
    def test_delta_seconds(self, value: str, seconds: float) -> None:
        """A number of seconds is read as such."""
        assert retry_after(value) == seconds

    def test_http_date(self) -> None:
        """An HTTP date is read as the seconds from now until then."""
        value = email.utils.formatdate(NOW + 90, usegmt=True)

        assert retry_after(value, now=NOW) == pytest.approx(90.0)

    def test_http_date_in_the_past_is_zero(self) -> None:
        """A date already past means no wait."""
        value = email.utils.formatdate(NOW - 600, usegmt=True)

        assert retry_after(value, now=NOW) == 0.0

    @pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2023"])
    def test_unreadable_is_none(self, value: str | None) -> None:
        """A missing or unreadable header gives None (ordinary backoff applies)."""
        assert retry_after(value) is None

    @pytest.mark.parametrize("value", ["²", "³0", "¹"])
    def test_digit_like_characters_are_unreadable(self, value: str) -> None:
        """Characters that isdigit() accepts but that are not a number give None, not an error."""
        assert retry_after(value) is None


# -- against a real server ---------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Platform:
    """The test server's address and what it received."""

    base: str
    release: threading.Event
    received: list[Received] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    platform: Platform  # set on the per-fixture subclass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.platform.received.append(Received(self.path, dict(self.headers.items()), body))
        path = self.path.partition("?")[0]
        if path == "/slow":
            self.platform.release.wait(30)
        if path == "/fail":
            self._answer(500, b"internal trouble")
        elif path == "/busy":
            self._answer(503, b"busy", {"Retry-After": "7"})
        elif path == "/busy-date":
            self._answer(429, b"", {"Retry-After": email.utils.formatdate(usegmt=True)})
        elif path == "/busy-garbled":
            self._answer(503, b"busy", {"Retry-After": "\xb2"})  # one Latin-1 byte
        elif path == "/busy-no-header":
            self._answer(503, b"busy")
        elif path == "/redirect":
            self._answer(302, b"", {"Location": f"{self.platform.base}/ok"})
        elif path == "/refuse":
            self._answer(404, b"no such report endpoint")
        elif path == "/retry-after-on-500":
            self._answer(500, b"", {"Retry-After": "3"})
        elif path == "/big-answer":
            self._answer(500, b"x" * 10_000)
        elif path == "/echo-json":  # repeats the token JSON-escaped and upper-cased
            token = parse_qs(urlsplit(self.path).query)["token"][0]
            self._answer(401, orjson.dumps({"error": "bad token", "token": token,
                                            "ascii": json.dumps(token),
                                            "upper": token.upper()}))
        elif path.startswith("/echo"):  # a platform whose answer repeats the request
            status = int(path.rpartition("/")[2])
            self._answer(status, f"no report accepted at {self.path}".encode())
        elif path == "/created":
            self._answer(201, b"")
        else:
            self._answer(200, b'{"status":0,"message":"SUCCESS"}')

    def do_GET(self) -> None:  # the login
        self.platform.received.append(Received(self.path, dict(self.headers.items()), b""))
        if self.path.partition("?")[0] == "/redirect":
            self._answer(307, b"", {"Location": f"{self.platform.base}/ok"})
        else:  # an address naming the gateway, as a platform may issue
            self._answer(200, b'{"deviceMonitorAddr":"/r/%s"}' % self.path.encode())

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests look at `received`, not at the access log."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (the timeout test) is expected, not worth a traceback."""


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    """A real HTTP server on 127.0.0.1 with an ephemeral port, for this module."""
    release = threading.Event()
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    plat = Platform(f"http://{host!s}:{port}", release)
    server.RequestHandlerClass = type("Handler", (_Handler,), {"platform": plat})
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test platform",
                              daemon=True)
    thread.start()
    try:
        yield plat
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def sender() -> Iterator[HttpSender]:
    made = HttpSender(timeout=5.0)
    yield made
    made.close()


@contextlib.contextmanager
def full_listener() -> Iterator[int]:
    """A loopback port whose listen queue is full: a new connection is never accepted
    (Linux drops the SYN), so connecting times out."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port: int = server.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):  # fill the queue; later connects hang until a timeout
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def refused_port() -> int:
    """A loopback port that nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestHttpSender:
    def test_200_returns_the_status(self, platform: Platform, sender: HttpSender) -> None:
        """A 200 answer returns 200."""
        assert sender.post(f"{platform.base}/ok", b"{}", "sn-boot-1") == 200

    def test_any_2xx_is_delivered(self, platform: Platform, sender: HttpSender) -> None:
        """A 201 answer counts as delivered."""
        assert sender.post(f"{platform.base}/created", b"{}", "sn-boot-1") == 201

    def test_request_headers_and_body(self, platform: Platform, sender: HttpSender) -> None:
        """The POST carries the JSON content type with charset, X-Report-Id, and the body as is."""
        body = '{"sw_version":"2019年"}'.encode()
        sender.post(f"{platform.base}/headers", body, "SN-abc-42")

        got = next(r for r in platform.received if r.path == "/headers")
        headers = {k.lower(): v for k, v in got.headers.items()}

        assert headers["content-type"] == "application/json; charset=utf-8"
        assert headers["x-report-id"] == "SN-abc-42"
        assert headers["user-agent"] == USER_AGENT
        assert got.body == body

    def test_500_raises_with_status_and_body(self, platform: Platform,
                                             sender: HttpSender) -> None:
        """A 500 answer raises DeliveryError carrying the status and the answer's body."""
        with pytest.raises(DeliveryError) as info:
            sender.post(f"{platform.base}/fail", b"{}", "id")

        assert not isinstance(info.value, RetryAfter)
        assert info.value.status == 500
        assert info.value.body == "internal trouble"
        assert "500" in str(info.value)

    def test_404_raises_with_status(self, platform: Platform, sender: HttpSender) -> None:
        """A 4xx answer raises DeliveryError with its status."""
        with pytest.raises(DeliveryError) as info:
            sender.post(f"{platform.base}/refuse", b"{}", "id")

        assert info.value.status == 404

    def test_answer_body_is_truncated(self, platform: Platform, sender: HttpSender) -> None:
        """A long error answer is kept only in part."""
        with pytest.raises(DeliveryError) as info:
            sender.post(f"{platform.base}/big-answer", b"{}", "id")

        assert 0 < len(info.value.body) <= 512

    def test_503_with_retry_after(self, platform: Platform, sender: HttpSender) -> None:
        """A 503 with Retry-After raises RetryAfter with the delay."""
        with pytest.raises(RetryAfter) as info:
            sender.post(f"{platform.base}/busy", b"{}", "id")

        assert info.value.status == 503
        assert info.value.delay == 7.0
        assert info.value.body == "busy"

    def test_429_with_retry_after_date(self, platform: Platform, sender: HttpSender) -> None:
        """A 429 with an HTTP-date Retry-After raises RetryAfter."""
        with pytest.raises(RetryAfter) as info:
            sender.post(f"{platform.base}/busy-date", b"{}", "id")

        assert info.value.status == 429
        assert 0.0 <= info.value.delay <= 2.0

    def test_garbled_retry_after_is_a_delivery_error(self, platform: Platform,
                                                     sender: HttpSender) -> None:
        """A 503 whose Retry-After is a stray Latin-1 digit-like byte is still a DeliveryError."""
        with pytest.raises(DeliveryError) as info:
            sender.post(f"{platform.base}/busy-garbled", b"{}", "id")

        assert info.value.status == 503

    def test_503_without_retry_after(self, platform: Platform, sender: HttpSender) -> None:
        """A 503 without Retry-After is a plain DeliveryError."""
        with pytest.raises(DeliveryError) as info:
            sender.post(f"{platform.base}/busy-no-header", b"{}", "id")

        assert not isinstance(info.value, RetryAfter)
        assert info.value.status == 503

    def test_retry_after_on_any_failure_is_honoured(self, platform: Platform,
                                                   sender: HttpSender) -> None:
        """A Retry-After on a 500 is honoured too (docs/protocol.md: "honouring a Retry-After")."""
        with pytest.raises(RetryAfter) as info:
            sender.post(f"{platform.base}/retry-after-on-500", b"{}", "id")

        assert (info.value.status, info.value.delay) == (500, 3.0)

    def test_302_is_not_followed(self, platform: Platform, sender: HttpSender) -> None:
        """A redirect is a failed delivery, and the Location is not POSTed to."""
        before = len(platform.received)

        with pytest.raises(DeliveryError) as info:
            sender.post(f"{platform.base}/redirect", b"{}", "id")

        assert info.value.status == 302
        assert [r.path for r in platform.received[before:]] == ["/redirect"]

    def test_login_redirect_is_not_followed(self, platform: Platform,
                                            sender: HttpSender) -> None:
        """A login answered 3xx is answered as it is (a failed login); the Location is not
        asked, so nothing of ours goes where the platform points."""
        before = len(platform.received)

        status, _ = sender.get(f"{platform.base}/redirect", {"dev_sno": "D"})

        assert status == 307
        assert [r.path for r in platform.received[before:]] == ["/redirect?dev_sno=D"]

    def test_login_answer_is_read_as_it_is(self, platform: Platform,
                                           sender: HttpSender) -> None:
        """A login's answer is parsed, not shown: what it repeats of the request stays."""
        dev_sno = "ZKZCPI000120190807142601"

        status, text = sender.get(f"{platform.base}/login", {"dev_sno": dev_sno})

        assert status == 200
        assert text == f'{{"deviceMonitorAddr":"/r//login?dev_sno={dev_sno}"}}'

    def test_query_echoed_in_the_answer_is_not_kept(
        self, platform: Platform, sender: HttpSender, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A platform that repeats the request URL in its answer (an error page, a debug
        echo) gets the query's values (the login's token) hidden in what is kept and logged."""
        token = "6165c0dd049a1313feccc5e9804234c9"
        url = f"{platform.base}/echo/401?site=7&token={token}&dev_sno=D"
        with pytest.raises(DeliveryError) as info:
            sender.post(url, b"{}", "id")
        assert token not in info.value.body
        assert info.value.body.startswith("no report accepted at /echo/401?site=7&token=...")
        with caplog.at_level(logging.DEBUG, logger="bridge.http"):
            sender.post(url.replace("/401", "/200"), b"{}", "id")
        assert "platform answered 200" in caplog.text
        assert token not in caplog.text

    def test_connection_refused(self, sender: HttpSender) -> None:
        """Nobody listening raises DeliveryError with no status."""
        with pytest.raises(DeliveryError) as info:
            sender.post(f"http://127.0.0.1:{refused_port()}/DeviceStatus", b"{}", "id")

        assert info.value.status is None
        assert str(info.value).startswith("connection failed")

    def test_slow_server_times_out(self, platform: Platform) -> None:
        """A server slower than the timeout raises a timeout DeliveryError with no status."""
        sender = HttpSender(timeout=0.3)
        try:
            with pytest.raises(DeliveryError) as info:
                sender.post(f"{platform.base}/slow", b"{}", "id")
        finally:
            sender.close()

        assert info.value.status is None
        assert "timed out" in str(info.value)

    def test_per_call_timeout_is_never_longer(self, platform: Platform) -> None:
        """A per-call timeout (the shutdown deadline) shortens the configured one."""
        sender = HttpSender(timeout=60.0)
        try:
            with pytest.raises(DeliveryError, match=r"timed out after 0\.2 s"):
                sender.post(f"{platform.base}/slow", b"{}", "id", timeout=0.2)
        finally:
            sender.close()

    def test_a_connect_timeout_names_the_connect_limit(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A connection that is never made is reported with the limit that ran out (the
        connect one, shorter than the request's), not the request's."""
        monkeypatch.setattr(bridge.http, "CONNECT_TIMEOUT", 0.3)
        with full_listener() as port:
            sender = HttpSender(timeout=8.0)
            try:
                with pytest.raises(DeliveryError) as info:
                    sender.post(f"http://127.0.0.1:{port}/r", b"{}", "id")
            finally:
                sender.close()

        assert str(info.value) == "connection timed out after 0.3 s"

    def test_bad_url_is_a_delivery_error(self, sender: HttpSender) -> None:
        """A URL requests cannot use is a DeliveryError, not a library exception."""
        with pytest.raises(DeliveryError):
            sender.post("http://", b"{}", "id")

    def test_keeps_working_after_a_failure(self, platform: Platform,
                                           sender: HttpSender) -> None:
        """The same sender delivers again after a failed POST."""
        with pytest.raises(DeliveryError):
            sender.post(f"{platform.base}/fail", b"{}", "id")

        assert sender.post(f"{platform.base}/ok", b"{}", "id") == 200


class TestBoundary:
    def test_unreadable_ca_bundle_is_a_delivery_error(self, tmp_path: Path) -> None:
        """An OSError from below requests (a CA bundle gone since start) is a DeliveryError."""
        sender = HttpSender(timeout=2.0, ca_file=tmp_path / "gone.pem")
        try:
            with pytest.raises(DeliveryError):
                sender.post("https://127.0.0.1:9/r", b"{}", "sn-boot-1")
        finally:
            sender.close()

    def test_header_that_is_not_latin_1_is_a_delivery_error(self, platform: Platform,
                                                            sender: HttpSender) -> None:
        """A report id the HTTP layer cannot encode fails as a DeliveryError, not a crash."""
        with pytest.raises(DeliveryError):
            sender.post(f"{platform.base}/ok", b"{}", "SN-\u4e2d-1")


class TestWithQuery:
    def test_adds_params_after_the_address_own(self) -> None:
        """The address's own query stays first, the added parameters follow."""
        url = with_query("http://h/r?a=1&b=2", {"token": "t", "dev_sno": "D"})

        assert url == "http://h/r?a=1&b=2&token=t&dev_sno=D"

    def test_replaces_a_parameter_of_the_same_name(self) -> None:
        """A `token` already in the address is replaced, never sent twice."""
        url = with_query("http://h/r?token=old&x=1&dev_sno=old", {"token": "new", "dev_sno": "D"})

        assert parse_qs(urlsplit(url).query) == {"x": ["1"], "token": ["new"], "dev_sno": ["D"]}

    @pytest.mark.parametrize("query", ["sig=a%20b&x=1", "sig=a+b%2F%7e&x=%E9&flag&y=",
                                       "a=%2fB&a=2"])
    def test_the_issued_query_is_kept_byte_for_byte(self, query: str) -> None:
        """The platform's query is not decoded and encoded again: a signature over it
        still matches."""
        url = with_query(f"http://h/r?{query}#f", {"token": "t k", "dev_sno": "D"})

        assert url == f"http://h/r?{query}&token=t+k&dev_sno=D#f"

    def test_the_issued_query_reaches_the_platform_as_issued(
        self, sender: HttpSender, platform: Platform
    ) -> None:
        url = with_query(f"{platform.base}/ok?sig=a%20b&m=x%2By", {"token": "t"})
        sender.post(url, b"{}", "id-q")

        assert platform.received[-1].path == "/ok?sig=a%20b&m=x%2By&token=t"

    def test_nothing_to_add_leaves_the_url_as_it_is(self) -> None:
        """Without parameters the URL is returned untouched."""
        assert with_query("http://u:p@h/r?a=%20", {}) == "http://u:p@h/r?a=%20"

    def test_values_needing_encoding_arrive_as_they_are(self) -> None:
        """A dev_sno or token with `&`, `+`, `=`, spaces or non-ASCII is encoded, so the
        platform reads back exactly it, and the address's own parameters are kept."""
        params = {"token": "a+b/c==&d", "dev_sno": "ZK 01&x=é"}
        url = with_query("http://[::1]:8/r?site=7&x=a%2Bb", params)

        assert parse_qs(urlsplit(url).query) == {
            "site": ["7"], "x": ["a+b"], "token": ["a+b/c==&d"], "dev_sno": ["ZK 01&x=é"]}


class TestSecretsByValue:
    """A secret is hidden whatever its length and however an answer spells it."""

    @pytest.mark.parametrize("token", ["t0k", "Ab/c\"d+é", "a b&c=d"])
    def test_an_echoed_token_in_any_spelling(
        self, sender: HttpSender, platform: Platform, token: str
    ) -> None:
        url = with_query(f"{platform.base}/echo-json", {"token": token, "dev_sno": "ZK01"})
        with pytest.raises(DeliveryError) as info:
            sender.post(url, b"{}", "id-1")

        shown = info.value.body.casefold()
        assert "bad token" in shown
        for spelling in spellings(token):
            assert spelling.casefold() not in shown

    def test_url_credentials_in_free_text(self) -> None:
        text = "ep_url: got 'rtsp://admin:Secr3t@10.0.0.1:554/ch1' and http://u:p@h/x"
        assert without_credentials(text) == (
            "ep_url: got 'rtsp://...@10.0.0.1:554/ch1' and http://...@h/x")

    def test_the_password_and_secret_names_at_any_length(self) -> None:
        url = "http://user:pw@h/r?sig=a%20b&key=k1&site=7"
        assert url_secrets(url) >= {"pw", "a%20b", "a b", "k1"}
        assert "7" not in url_secrets(url)
        assert hide("PW a+b A%20B k1 site=7", url_secrets(url)) == "... ... ... ... site=7"


class TestPrintable:
    def test_query_values_are_hidden_in_an_answer_also_encoded_or_cut(self) -> None:
        url = "http://p/r?site=7&token=a%2Bb%2Fsecret%3D&dev_sno=ZK01"
        assert without_query_values("t=a+b/secret= site=7", url) == "t=... site=7"
        assert without_query_values("echo a%2Bb%2Fsecret%3D", url) == "echo ..."
        assert without_query_values("cut at a+b/sec", url) == "cut at ..."
        assert without_query_values("site=7 dev_sno=ZK01", url) == "site=7 dev_sno=ZK01"

    def test_line_breaks_and_escapes_are_escaped(self) -> None:
        """A platform's answer cannot start a log line of its own nor colour the terminal."""
        shown = printable("ok\n2026-11-28 ERROR forged\r\x1b[31m")

        assert not any(c in shown for c in "\n\r\x1b")
        assert shown == "ok\\n2026-11-28 ERROR forged\\r\\x1b[31m"

    def test_text_kept_as_it_is_when_printable(self) -> None:
        """Printable text, Chinese included, is not changed."""
        assert printable("成功 SUCCESS") == "成功 SUCCESS"


class _RawServer:
    """A TCP server on 127.0.0.1 that answers each connection with `answer(conn)`."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._answer = answer
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._sock.accept()
        with conn:
            conn.recv(65536)  # the request (small)
            with contextlib.suppress(OSError):  # the client gave up: that is the point
                self._answer(conn)
        self.done.set()

    def close(self) -> None:
        self._sock.close()
        self._thread.join(10)


class TestHostilePlatform:
    def test_trickling_answer_is_cut_off_at_the_total_deadline(self) -> None:
        """One byte every 50 ms never trips a per-read timeout; the total deadline stops it."""
        stop = threading.Event()

        def trickle(conn: socket.socket) -> None:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                conn.sendall(bytes([byte]))
                if stop.wait(0.05):
                    return

        server = _RawServer(trickle)
        sender = HttpSender(timeout=0.5)
        started = time.monotonic()
        try:
            with pytest.raises(DeliveryError, match=r"timed out after 0\.5 s"):
                sender.post(f"{server.url}/r", b"{}", "id")
            took = time.monotonic() - started
        finally:
            stop.set()
            sender.close()
            server.close()
        assert took < 2.0

    def test_trickling_tls_handshake_is_cut_off_too(self) -> None:
        """An https platform trickling its TLS handshake is cut off at the deadline as well
        (Python bounds a handshake in all too; the deadline watches the connection from its
        connect on, so neither alone is relied on)."""
        stop = threading.Event()

        def trickle(conn: socket.socket) -> None:
            # A TLS record header announcing 1 KiB, then its bytes one at a time.
            for byte in b"\x16\x03\x03\x04\x00" + b"\x02" * 1024:
                conn.sendall(bytes([byte]))
                if stop.wait(0.05):
                    return

        server = _RawServer(trickle)
        sender = HttpSender(timeout=0.5)
        started = time.monotonic()
        try:
            with pytest.raises(DeliveryError):
                sender.post(server.url.replace("http:", "https:") + "/r", b"{}", "id")
            took = time.monotonic() - started
        finally:
            stop.set()
            sender.close()
            server.close()
        assert took < 2.0

    def test_huge_answer_body_is_not_read_whole(self) -> None:
        """Of a 64 MB error answer only the first bytes are read, then the connection dropped."""
        sent = [0]

        def flood(conn: socket.socket) -> None:
            size = 64 << 20
            conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % size)
            chunk = b"x" * 65536
            while sent[0] < size:
                conn.sendall(chunk)
                sent[0] += len(chunk)

        server = _RawServer(flood)
        sender = HttpSender(timeout=5.0)
        try:
            with pytest.raises(DeliveryError) as info:
                sender.post(f"{server.url}/r", b"{}", "id")
            assert server.done.wait(5)
        finally:
            sender.close()
            server.close()
        assert info.value.status == 500
        assert info.value.body == "x" * 512
        assert sent[0] < 16 << 20  # the socket buffers, not the body

    def test_answer_with_control_characters_is_escaped(self) -> None:
        """The kept answer (logged, put in events) has its line breaks escaped."""

        def forge(conn: socket.socket) -> None:
            body = b"no\nERROR bridge: forged"
            conn.sendall(b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

        server = _RawServer(forge)
        sender = HttpSender(timeout=5.0)
        try:
            with pytest.raises(DeliveryError) as info:
                sender.post(f"{server.url}/r", b"{}", "id")
        finally:
            sender.close()
            server.close()
        assert info.value.body == "no\\nERROR bridge: forged"

    def test_login_answer_longer_than_the_limit_is_refused(self) -> None:
        """A GET (the login) whose answer passes the limit fails instead of being cut."""

        def flood(conn: socket.socket) -> None:
            body = b"{" + b" " * (LOGIN_BODY_LIMIT + 10) + b"}"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

        server = _RawServer(flood)
        sender = HttpSender(timeout=5.0)
        try:
            with pytest.raises(DeliveryError, match="longer than"):
                sender.get(f"{server.url}/login", {"dev_sno": "D"})
        finally:
            sender.close()
            server.close()
