"""The console's Flask app with a fake publisher: logins, CSRF, throttling, the calls'
answers and errors, and what the page shows (console.app, auth, api, pages)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import orjson
import pytest
import requests
from flask.testing import FlaskClient

from console.app import create_app
from console.errors import PublishError
from console.password import Password
from console.server import ConsoleServer
from console.sessions import Sessions
from console.state import ConsoleState
from console.throttle import LoginThrottle
from console.view import View
from tests.unit.console_kit import (
    BASE,
    BEARER,
    PASSWORD,
    Clock,
    FakePublisher,
    basic,
    make_config,
)

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def client(publisher: FakePublisher, view: View, clock: Clock) -> Iterator[FlaskClient]:
    state = ConsoleState(make_config(), view, publisher, Password(PASSWORD),
                         LoginThrottle(clock=clock, sleep=clock.sleep), Sessions(clock=clock),
                         clock=clock)
    app = create_app(state)
    with app.test_client() as test_client:
        yield test_client


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def log_in(client: FlaskClient) -> None:
    answer = client.post("/login", data={
        "username": "admin", "password": PASSWORD, "csrf_token": csrf_token(client)})
    assert answer.status_code == 303


class TestAuthentication:
    @pytest.mark.parametrize("path", ["/", "/status", "/api/view", "/nope",
                                      "/SophonFogSys/api/MonitorServerUrl",
                                      "/SophonMQ/api/LoginUrl", "/SophonMQ/api/DevSno"])
    def test_no_credentials_401(self, client: FlaskClient, path: str) -> None:
        """Every route but the login form answers 401 without credentials."""
        assert client.get(path).status_code == 401

    def test_api_401_is_vendor_shape_without_basic_challenge(self, client: FlaskClient) -> None:
        """A 401 says so in the vendor's shape and never asks the browser for Basic auth."""
        answer = client.get("/SophonMQ/api/DevSno")
        assert answer.json is not None
        assert answer.json["error"]["status"] == "UNAUTHORIZED"
        assert answer.json["error"]["code"] == 401
        assert "basic" not in answer.headers.get("WWW-Authenticate", "").lower()

    @pytest.mark.parametrize("headers", [BEARER, basic("admin", PASSWORD)])
    def test_basic_and_bearer(self, client: FlaskClient, headers: dict[str, str]) -> None:
        assert client.get("/SophonMQ/api/DevSno", headers=headers).status_code == 200

    @pytest.mark.parametrize("headers", [
        {"Authorization": "Bearer nope"}, basic("root", PASSWORD), basic("admin", "nope"),
        {"Authorization": "Basic !!!"}, {"Authorization": "Digest x"},
    ])
    def test_wrong_credentials_401(self, client: FlaskClient, headers: dict[str, str]) -> None:
        assert client.get("/SophonMQ/api/DevSno", headers=headers).status_code == 401

    def test_wrong_guesses_slowed_after_five_failures(
            self, client: FlaskClient, clock: Clock) -> None:
        """5 wrong passwords in a minute: then each attempt from the address waits its
        turn, 3 s after the one before (20 guesses a minute, not thousands)."""
        bad = {"Authorization": "Bearer nope"}
        codes = [client.get("/api/view", headers=bad).status_code for _ in range(5)]
        assert codes == [401] * 5
        assert clock.slept == []
        start = clock.now
        codes = [client.get("/api/view", headers=bad).status_code for _ in range(10)]
        assert codes == [401] * 10
        assert clock.now - start >= 9 * 3.0

    def test_the_right_password_is_not_refused_for_wrong_guesses(
            self, client: FlaskClient, clock: Clock) -> None:
        """Everyone behind one address (an SSH tunnel) is not locked out by five wrong
        guesses: the right password gets in, after its turn."""
        bad = {"Authorization": "Bearer nope"}
        for _ in range(8):
            client.get("/api/view", headers=bad)
        assert client.get("/api/view", headers=BEARER).status_code == 200
        token = csrf_token(client)
        answer = client.post("/login", data={
            "username": "admin", "password": PASSWORD, "csrf_token": token})
        assert answer.status_code == 303

    def test_login_form_counts_failures_too(self, client: FlaskClient, clock: Clock) -> None:
        token = csrf_token(client)
        for _ in range(7):
            answer = client.post("/login", data={
                "username": "admin", "password": "guess", "csrf_token": token})
            assert answer.status_code == 401
        assert clock.slept == [3.0]  # the 6th went at once, the 7th 3 s after it

    def test_login_sets_strict_httponly_cookie(self, client: FlaskClient) -> None:
        token = csrf_token(client)
        answer = client.post("/login", data={
            "username": "admin", "password": PASSWORD, "csrf_token": token})
        assert answer.status_code == 303
        cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert client.get("/").status_code == 200

    def test_a_session_cookie_is_dead_after_logout(self, client: FlaskClient) -> None:
        """Logging out ends the session on the server: the cookie, replayed (copied from
        the browser, sniffed on the LAN), no longer lets anyone in."""
        log_in(client)
        cookie = client.get_cookie("se3_console")
        assert cookie is not None
        answer = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
        assert answer.status_code == 303
        client.set_cookie("se3_console", cookie.value)
        assert client.get("/api/view").status_code == 401
        assert client.get("/").status_code == 401

    def test_a_new_login_ends_the_session_it_replaces(self, client: FlaskClient) -> None:
        """Logging in again from a browser with a session replaces that session: the
        old cookie is dead (no session left behind that nobody can log out)."""
        log_in(client)
        old = client.get_cookie("se3_console")
        assert old is not None
        log_in(client)
        assert client.get("/api/view").status_code == 200
        client.set_cookie("se3_console", old.value)
        assert client.get("/api/view").status_code == 401

    def test_a_session_ends_12_hours_after_its_login_however_busy(
            self, client: FlaskClient, clock: Clock) -> None:
        """A page polling every two seconds does not keep its session alive for ever:
        12 hours after the login it is over, and the cookie is not renewed meanwhile."""
        log_in(client)
        for _ in range(11):
            clock.now += 3600
            answer = client.get("/api/view")
            assert answer.status_code == 200
            assert "Set-Cookie" not in answer.headers
        clock.now += 3599
        assert client.get("/api/view").status_code == 200
        clock.now += 2
        assert client.get("/api/view").status_code == 401
        assert client.get("/").status_code == 401

    def test_login_without_csrf_403(self, client: FlaskClient) -> None:
        answer = client.post("/login", data={"username": "admin", "password": PASSWORD})
        assert answer.status_code == 403

    def test_form_without_csrf_403(self, client: FlaskClient, publisher: FakePublisher) -> None:
        """A logged-in form post without its token is refused, and nothing is published."""
        log_in(client)
        answer = client.post("/settings/report_url", data={"value": "http://127.0.0.1:1/x"})
        assert answer.status_code == 403
        assert publisher.sent == []

    def test_session_cannot_change_through_the_api(
        self, client: FlaskClient, publisher: FakePublisher
    ) -> None:
        """The calls that change something take only the Authorization header."""
        log_in(client)
        answer = client.put("/SophonMQ/api/DevSno", json={"dev_sno": "X1"})
        assert answer.status_code == 401
        assert client.get("/SophonMQ/api/DevSno").status_code == 200
        assert publisher.sent == []

    def test_signing_key_made_at_start(self, publisher: FakePublisher, view: View) -> None:
        """Two apps (two starts) never share a session key."""
        config = make_config()
        apps = [create_app(ConsoleState(config, view, publisher, Password(PASSWORD)))
                for _ in range(2)]
        assert apps[0].secret_key != apps[1].secret_key
        assert len(apps[0].secret_key or b"") >= 32


class TestCalls:
    def test_monitor_server_url_json(self, client: FlaskClient, publisher: FakePublisher) -> None:
        answer = client.post("/SophonFogSys/api/MonitorServerUrl", headers=BEARER, json={
            "monitor_server_url": "http://127.0.0.1:9528/DeviceStatus", "content-type": "json",
            "reported_peroid": 30})
        assert (answer.status_code, answer.json) == (200, {"data": "ok"})
        assert publisher.sent == [
            (f"{BASE}/config/report_period", "30", True),
            (f"{BASE}/config/report_url", "http://127.0.0.1:9528/DeviceStatus", True),
        ]

    def test_monitor_server_url_form_data(
        self, client: FlaskClient, publisher: FakePublisher
    ) -> None:
        answer = client.post("/SophonFogSys/api/MonitorServerUrl", headers=BEARER, data={
            "monitor_server_url": "http://127.0.0.1:9528/DeviceStatus", "content-type": "json",
            "reported_peroid": "30"})
        assert (answer.status_code, answer.json) == (200, {"data": "ok"})
        assert len(publisher.sent) == 2

    def test_json_sent_as_urlencoded(self, client: FlaskClient, publisher: FakePublisher) -> None:
        """`curl -d '{...}'` without a JSON content type is still read as JSON."""
        body = orjson.dumps({"monitor_server_url": "http://a:1/x", "reported_peroid": 9})
        answer = client.post("/SophonFogSys/api/MonitorServerUrl", headers=BEARER, data=body,
                             content_type="application/x-www-form-urlencoded")
        assert answer.status_code == 200

    def test_put_login_url_and_dev_sno(
        self, client: FlaskClient, publisher: FakePublisher
    ) -> None:
        answer = client.put("/SophonMQ/api/LoginUrl", headers=BEARER,
                            json={"login_url": "http://xxx.com/login"})
        assert answer.json == {"data": {"response": "http://xxx.com/login"}}
        answer = client.put("/SophonMQ/api/DevSno", headers=BEARER,
                            json={"dev_sno": "TJGSDX000120190726103455"})
        assert answer.json == {"data": {"response": "TJGSDX000120190726103455"}}
        assert publisher.sent == [
            (f"{BASE}/config/login_url", "http://xxx.com/login", True),
            (f"{BASE}/config/dev_sno", "TJGSDX000120190726103455", True),
        ]

    @pytest.mark.parametrize("code", ["ABC+123", "ZKZC PI/0001"])
    def test_put_dev_sno_the_bridge_would_refuse_is_a_400(
        self, client: FlaskClient, publisher: FakePublisher, code: str
    ) -> None:
        """The bridge's own rule: never a success for a code the bridge refuses."""
        answer = client.put("/SophonMQ/api/DevSno", headers=BEARER, json={"dev_sno": code})
        assert answer.status_code == 400
        assert answer.json is not None
        assert answer.json["error"]["message"].startswith("dev_sno: must be 1-128 letters")
        assert publisher.sent == []

    def test_login_url_credentials_not_echoed(self, client: FlaskClient) -> None:
        answer = client.put("/SophonMQ/api/LoginUrl", headers=BEARER,
                            json={"login_url": "http://u:s3cret@xxx.com/login?key=k3y"})
        assert answer.json == {"data": {"response": "http://xxx.com/login"}}

    @pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
        ("post", "/SophonFogSys/api/MonitorServerUrl", b"{not json", 400, "body: not valid JSON"),
        ("post", "/SophonFogSys/api/MonitorServerUrl", b"[1]", 400, "body: must be a JSON obj"),
        ("put", "/SophonMQ/api/LoginUrl", b"", 400, "body: empty"),
        ("put", "/SophonMQ/api/LoginUrl", b'{"login_url": "ftp://x/y"}', 400, "login_url: "),
        ("put", "/SophonMQ/api/DevSno", b'{"sno": "x"}', 400, "dev_sno: required"),
        ("delete", "/SophonMQ/api/DevSno", b"", 405, "/SophonMQ/api/DevSno: method DELETE"),
        ("post", "/SophonMQ/api/LoginUrl", b"{}", 405, "/SophonMQ/api/LoginUrl: method POST"),
        ("get", "/SophonMQ/api/Nothing", b"", 404, "/SophonMQ/api/Nothing: no such call"),
    ])
    def test_errors_in_vendor_shape(
        self, client: FlaskClient, publisher: FakePublisher, method: str, path: str,
        body: bytes, status: int, message: str,
    ) -> None:
        """Each failure: a 4xx with {"error": {"code", "message", "status"}}, nothing sent."""
        answer = getattr(client, method)(path, headers=BEARER, data=body,
                                         content_type="application/json")
        assert answer.status_code == status
        error = answer.json["error"]
        assert set(error) == {"code", "message", "status"}
        assert error["code"] == status
        assert error["message"].startswith(message)
        assert publisher.sent == []

    def test_oversized_body_413(self, client: FlaskClient, publisher: FakePublisher) -> None:
        answer = client.put("/SophonMQ/api/DevSno", headers=BEARER,
                            data=b'{"dev_sno": "' + b"x" * 70_000 + b'"}',
                            content_type="application/json")
        assert answer.status_code == 413
        assert answer.json is not None
        assert answer.json["error"]["status"] == "REQUEST_ENTITY_TOO_LARGE"
        assert publisher.sent == []

    def test_oversized_chunked_body_413(self, publisher: FakePublisher, view: View) -> None:
        """A body without Content-Length (chunked) over the cap is a 413 too, not cut to
        the cap and taken: a cut form is still a form, with other values in it."""
        body = b"monitor_server_url=http://127.0.0.1:9528/a&reported_peroid=20&pad="
        body += b"a" * 100_000
        app = create_app(ConsoleState(make_config(), view, publisher, Password(PASSWORD)))
        server = ConsoleServer(app).start()  # werkzeug's server: the test client never chunks
        try:
            small = requests.post(
                f"{server.url}/SophonFogSys/api/MonitorServerUrl", headers=BEARER,
                data=iter([b'{"monitor_server_url": "http://127.0.0.1:9528/a", ',
                           b'"reported_peroid": 20}']), timeout=5)
            assert (small.status_code, small.json()) == (200, {"data": "ok"})
            publisher.sent.clear()
            answer = requests.post(
                f"{server.url}/SophonFogSys/api/MonitorServerUrl", headers={
                    **BEARER, "Content-Type": "application/x-www-form-urlencoded"},
                data=iter([body[:1000], body[1000:]]), timeout=5)
        finally:
            server.stop()
        assert answer.request.headers.get("Transfer-Encoding") == "chunked"
        assert answer.status_code == 413
        assert publisher.sent == []

    def test_broker_refusal_is_not_success(
        self, client: FlaskClient, publisher: FakePublisher
    ) -> None:
        publisher.refuse = PublishError(502, "the MQTT broker refused se3/x: Not authorized")
        answer = client.put("/SophonMQ/api/DevSno", headers=BEARER, json={"dev_sno": "X"})
        assert answer.status_code == 502
        assert answer.json is not None
        assert answer.json["error"]["status"] == "BROKER_ERROR"


class TestInForce:
    def test_fallback_to_file_says_so(self, client: FlaskClient) -> None:
        """Before the bridge speaks: the file's values, redacted, and a header saying so."""
        answer = client.get("/SophonFogSys/api/MonitorServerUrl", headers=BEARER)
        assert answer.json == {"data": {
            "monitor_server_url": "http://127.0.0.1:9528/DeviceStatus", "reported_peroid": 20}}
        assert answer.headers["X-SE3-Settings"].startswith("fallback")
        answer = client.get("/SophonMQ/api/DevSno", headers=BEARER)
        assert answer.json == {"data": {"response": "FILESNO", "dev_sno": "FILESNO"}}

    def test_dev_sno_get_has_the_vendor_key_too(self, client: FlaskClient) -> None:
        """The vendor's GET DevSno (table and example) answers `data.dev_sno`, its PUT
        `data.response`: a script written for either finds the code."""
        answer = client.get("/SophonMQ/api/DevSno", headers=BEARER).json
        assert answer is not None
        data = answer["data"]
        assert data["dev_sno"] == data["response"] == "FILESNO"

    def test_config_topics_before_the_bridge(self, client: FlaskClient, view: View) -> None:
        view.apply(f"{BASE}/config/report_url", b"http://127.0.0.1:1/a,http://127.0.0.1:2/b")
        view.apply(f"{BASE}/config/report_period", b"7")
        view.apply(f"{BASE}/gateway/info", orjson.dumps({
            "gateway_ip": "127.0.0.1", "gateway_name": "box", "dev_sno": "GWSNO",
            "sw_version": "VERSION 1"}))
        answer = client.get("/SophonFogSys/api/MonitorServerUrl", headers=BEARER)
        assert answer.json == {"data": {
            "monitor_server_url": "http://127.0.0.1:1/a,http://127.0.0.1:2/b",
            "reported_peroid": 7}}
        assert client.get("/SophonMQ/api/DevSno", headers=BEARER).json == {
            "data": {"response": "GWSNO", "dev_sno": "GWSNO"}}
        view.apply(f"{BASE}/config/report_period", b"")
        answer = client.get("/SophonFogSys/api/MonitorServerUrl", headers=BEARER)
        assert answer.json is not None
        assert answer.json["data"]["reported_peroid"] == 20

    def test_bridge_settings_win(self, client: FlaskClient, view: View) -> None:
        """What the bridge says it uses is the answer, whatever the topics say."""
        view.apply(f"{BASE}/config/report_url", b"http://127.0.0.1:1/a")
        view.apply(f"{BASE}/bridge/settings", orjson.dumps({
            "ts": 1, "report_url": {"value": ["http://127.0.0.1:3/login-issued"],
                                    "source": "login"},
            "report_period": {"value": 15, "source": "login"},
            "login_url": {"value": "http://127.0.0.1:9/login", "source": "topic"},
            "dev_sno": {"value": "TOPICSNO", "source": "topic"},
            "login": {"state": "ok", "at": 1, "error": None},
            "refused": [{"setting": "report_period", "value": "0", "at": 2,
                         "reason": "report_period must be a whole number of seconds"}]}))
        answer = client.get("/SophonFogSys/api/MonitorServerUrl", headers=BEARER)
        assert answer.json == {"data": {
            "monitor_server_url": "http://127.0.0.1:3/login-issued", "reported_peroid": 15}}
        assert answer.headers["X-SE3-Settings"] == "bridge"
        assert client.get("/SophonMQ/api/LoginUrl", headers=BEARER).json == {
            "data": {"response": "http://127.0.0.1:9/login"}}
        page = client.get("/status", headers=BEARER).get_data(as_text=True)
        assert "report_period = 0: report_period must be a whole number of seconds" in page
        assert "settings-note" not in page  # the bridge said so: no fallback note


class TestPage:
    def test_devices_escaped_and_secrets_absent(self, client: FlaskClient, view: View) -> None:
        """A device name is text; no password, URL credential or token is on the page or API."""
        view.apply(f"{BASE}/devices/127.0.0.11/state", orjson.dumps({
            "ep_status": "online", "ep_type": "2", "ep_location": "gate", "ep_name": EVIL,
            "ep_url": "rtsp://cam:campw@127.0.0.11:554/ch2?auth=abc", "source": "devices"}))
        log_in(client)
        for path in ("/", "/status", "/api/view"):
            answer = client.get(path)
            text = answer.get_data(as_text=True)
            if answer.mimetype == "text/html":
                assert EVIL not in text
            for secret in (PASSWORD, "campw", "auth=abc", "t0p", ":pw@"):
                assert secret not in text, (path, secret)
        page = client.get("/status").get_data(as_text=True)
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        assert "rtsp://127.0.0.11:554/ch2" in page
        assert "IPC static (2)" in page

    def test_a_refusal_reason_shows_no_url_credentials(
        self, client: FlaskClient, view: View
    ) -> None:
        """A bridge/errors reason quoting a refused ep_url shows it without user info."""
        view.apply(f"{BASE}/bridge/errors", orjson.dumps({
            "ts": 990.0, "topic": f"{BASE}/devices/127.0.0.11/state", "code": "ep_url",
            "reason": "ep_url: control character U+0000 not allowed "
                      "(got 'rtsp://cam:campw@127.0.0.11/ch2\\x00')"}))
        log_in(client)
        model = client.get("/api/view").json
        assert model is not None
        (error,) = model["errors"]
        assert "rtsp://...@127.0.0.11/ch2" in error["reason"]
        assert "campw" not in client.get("/api/view").get_data(as_text=True)

    def test_topics_no_address_can_have_are_not_kept(self, view: View) -> None:
        """A device topic whose level is no IP address (too long, a junk scope) is
        refused by the bridge, so the console keeps nothing of it either: an app
        sending thousands of them, not even retained, cannot fill its memory."""
        record = orjson.dumps({"ep_status": "online", "ep_type": "2", "ep_location": "x"})
        for level in ("fe80::1%<b>x", "fe80::1%" + "a" * 300, "1" * 9000, "not-an-ip"):
            view.apply(f"{BASE}/devices/{level}/state", record)
        view.apply(f"{BASE}/devices/fe80::1%eth0/state", record)
        view.apply(f"{BASE}/devices/127.0.0.9/state", record)
        assert sorted(view.snapshot().devices) == ["127.0.0.9", "fe80::1%eth0"]

    def test_only_what_the_bridge_takes_is_kept_and_only_its_fields(self) -> None:
        """The console shows what the bridge reports: a record the bridge refuses (a
        control character, over `max_payload`) is not shown, a refused update leaves
        the record before it, and a padded record is kept as its fields only (an app
        padding records with `[{},...]` took the console to 2.1 GB)."""
        view = View(BASE, max_devices=3, max_payload=4096)
        good = {"ep_status": "online", "ep_type": "2", "ep_location": "gate"}
        view.apply(f"{BASE}/devices/10.0.0.1/state",
                   orjson.dumps({**good, "pad": [{}] * 1000}))
        view.apply(f"{BASE}/devices/10.0.0.2/state",
                   orjson.dumps({**good, "ep_name": "bell\u0007"}))
        view.apply(f"{BASE}/devices/10.0.0.3/state", orjson.dumps({**good, "pad": "x" * 5000}))
        devices = view.snapshot().devices
        assert sorted(devices) == ["10.0.0.1"]
        assert devices["10.0.0.1"].data == {**good, "ep_name": ""}
        view.apply(f"{BASE}/devices/10.0.0.1/state", orjson.dumps({**good, "ep_type": 2}))
        assert view.snapshot().devices["10.0.0.1"].data["ep_type"] == "2"

    def test_no_more_devices_than_the_bridge_takes(self) -> None:
        view = View(BASE, max_devices=3)
        record = orjson.dumps({"ep_status": "online", "ep_type": "2", "ep_location": "x"})
        for n in range(1, 10):
            view.apply(f"{BASE}/devices/10.0.0.{n}/state", record)
        assert sorted(view.snapshot().devices) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        view.apply(f"{BASE}/devices/10.0.0.2/state", b"")
        view.apply(f"{BASE}/devices/10.0.0.9/state", record)
        assert sorted(view.snapshot().devices) == ["10.0.0.1", "10.0.0.3", "10.0.0.9"]

    def test_the_bridge_s_own_messages_are_bounded(self) -> None:
        """Events, settings, collectors and config values are kept up to a size."""
        view = View(BASE)
        view.apply(f"{BASE}/bridge/errors", orjson.dumps(
            {"ts": 1.0, "topic": "t" * 10_000, "reason": "r" * 10_000, "pad": [{}] * 1000}))
        view.apply(f"{BASE}/bridge/settings", orjson.dumps({"pad": "x" * 100_000}))
        view.apply(f"{BASE}/bridge/report", orjson.dumps(
            {"target": "http://x/" + "a" * 5000, "ok": True}))
        for n in range(2000):
            view.apply(f"{BASE}/collectors/c{n}/status", b"online")
        view.apply(f"{BASE}/collectors/{'c' * 200}/status", b"online")
        view.apply(f"{BASE}/config/login_url", b"http://x/" + b"a" * 100_000)
        snap = view.snapshot()
        (error,) = snap.errors
        assert error == {"ts": 1.0, "topic": "t" * 300, "reason": "r" * 300}
        assert snap.settings is None
        assert snap.targets == {}
        assert len(snap.collectors) == 1024
        assert "c" * 200 not in snap.collectors
        assert len(snap.config["login_url"]) <= 4096

    def test_csp_header(self, client: FlaskClient) -> None:
        answer = client.get("/login")
        csp = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp

    def test_form_publishes(self, client: FlaskClient, publisher: FakePublisher) -> None:
        log_in(client)
        token = csrf_token(client, "/")
        answer = client.post("/settings/report_period", data={"value": "12", "csrf_token": token})
        assert answer.status_code == 303
        answer = client.post("/settings/login_url", data={"clear": "1", "csrf_token": token})
        answer = client.post("/report-now", data={"csrf_token": token})
        assert [(t.rsplit("/", 1)[1], p, r) for t, p, r in publisher.sent[:2]] == [
            ("report_period", "12", True), ("login_url", "", True)]
        assert publisher.sent[2][0] == f"{BASE}/config/report_now"
        assert publisher.sent[2][2] is False

    def test_form_bad_value_flashed(self, client: FlaskClient, publisher: FakePublisher) -> None:
        log_in(client)
        token = csrf_token(client, "/")
        answer = client.post("/settings/report_period", data={"value": "0", "csrf_token": token},
                             follow_redirects=True)
        assert ("Report period not changed: report_period: must be a whole number of seconds "
                "from 1 to 86400") in answer.get_data(as_text=True)
        assert publisher.sent == []

    def test_targets_from_delivery_events(self, client: FlaskClient, view: View) -> None:
        view.apply(f"{BASE}/bridge/report", orjson.dumps({
            "ts": 990.0, "target": "http://127.0.0.1:9528/DeviceStatus", "ok": False,
            "status": 503, "error": "HTTP 503", "attempt": 1, "retry_in": 4.0}))
        view.apply(f"{BASE}/bridge/report", orjson.dumps({
            "ts": 995.0, "target": "http://127.0.0.1:9528/DeviceStatus", "ok": True,
            "status": 200, "error": None, "attempt": 2, "devices": 3, "retry_in": None}))
        log_in(client)
        model = client.get("/api/view").json
        assert model is not None
        (target,) = model["targets"]
        assert target["url"] == "http://127.0.0.1:9528/DeviceStatus"
        assert (target["last_ok_at"], target["last_fail_at"]) == (995.0, 990.0)
        assert target["last_error"] == "HTTP 503"
        assert target["retry_at"] is None

    def test_device_status_as_the_bridge_reports_it(
        self, client: FlaskClient, view: View, clock: Clock
    ) -> None:
        """Expired records and devices of an offline publisher show offline, with the reason."""
        def record(ts: float, ttl: float, source: str) -> bytes:
            return orjson.dumps({"ep_status": "online", "ep_type": "0", "ep_location": "L",
                                 "ts": ts, "ttl": ttl, "source": source})

        view.apply(f"{BASE}/devices/10.0.0.1/state", record(clock.now - 5, 60, "devices"))
        view.apply(f"{BASE}/devices/10.0.0.2/state", record(clock.now - 50, 60, "devices"))
        view.apply(f"{BASE}/devices/10.0.0.3/state", record(clock.now - 70, 60, "devices"))
        view.apply(f"{BASE}/devices/10.0.0.4/state", record(clock.now, 60, "door-app"))
        view.apply(f"{BASE}/collectors/door-app/status", b"offline")
        model = client.get("/api/view", headers=BEARER).json
        assert model is not None
        rows = {d["ip"]: d for d in model["devices"]}
        assert [rows[ip]["status"] for ip in sorted(rows)] == [
            "online", "online", "offline", "offline"]
        assert rows["10.0.0.1"]["type"] == "turnstile (0)"
        assert (rows["10.0.0.1"]["expiring_soon"], rows["10.0.0.2"]["expiring_soon"]) == (
            False, True)
        assert rows["10.0.0.3"]["note"] == "expired"
        assert rows["10.0.0.4"]["note"] == "publisher door-app is offline"
        view.apply(f"{BASE}/devices/10.0.0.4/state", b"")
        model = client.get("/api/view", headers=BEARER).json
        assert model is not None
        assert [d["ip"] for d in model["devices"]] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


class TestNotMeasured:
    def test_the_page_names_what_the_release_cannot_fill(
        self, client: FlaskClient, view: View
    ) -> None:
        """Under V6R1C01 (set on config/release) the page and /api/view name what no record
        gives, and a hardware record makes those fields known."""
        view.apply(f"{BASE}/gateway/info", orjson.dumps({
            "gateway_ip": "10.0.0.5", "gateway_name": "box", "dev_sno": "DEV1",
            "sw_version": "V6R1C01", "gateway_mac": "e0:a5:09:00:0e:6d"}))
        view.apply(f"{BASE}/config/release", b"V6R1C01")
        model = client.get("/api/view", headers=BEARER).json
        assert model is not None
        missing = model["release"]["missing"]
        assert "gateway_ext_data.tpu_info.tpu_usage" in missing
        assert "gateway_ext_data.tpu_info.tpu_usage" in client.get(
            "/", headers=BEARER).get_data(as_text=True)

        view.apply(f"{BASE}/gateway/hardware", orjson.dumps({"tpu_usage": 0.2}))
        model = client.get("/api/view", headers=BEARER).json
        assert model is not None
        assert "gateway_ext_data.tpu_info.tpu_usage" not in model["release"]["missing"]

    def test_a_switched_release_keeps_the_file_s_variant_as_the_bridge_does(
        self, publisher: FakePublisher, view: View, clock: Clock
    ) -> None:
        """The file says V2R6C01 with format "port" (F3); config/release switches to V5R6C01,
        which offers "port" too, so the bridge goes on sending F3: the page names F3 and
        what F3 misses, not F4's nested fields."""
        config = make_config(release="V2R6C01", format="port")
        state = ConsoleState(config, view, publisher, Password(PASSWORD),
                             LoginThrottle(clock=clock, sleep=clock.sleep),
                             Sessions(clock=clock), clock=clock)
        view.apply(f"{BASE}/gateway/info", orjson.dumps({
            "gateway_ip": "10.0.0.5", "gateway_name": "box", "dev_sno": "DEV1",
            "sw_version": "V5R6C01", "gateway_mac": "e0:a5:09:00:0e:6d"}))
        view.apply(f"{BASE}/config/release", b"V5R6C01")
        with create_app(state).test_client() as switched:
            model = switched.get("/api/view", headers=BEARER).json
        assert model is not None
        assert model["release"]["name"] == "V5R6C01"
        assert model["release"]["reports"] == ["F3"]
        missing = model["release"]["missing"]
        assert "gateway_ext_data.cpu_usage" in missing
        assert [name for name in missing if "cpu_info" in name] == []
