"""The box calls of the later releases with Flask's test client and a fake publisher:
the system service's monitor calls, the face service's config calls, the login and
password-change calls, each with its answers and its release's error shape
(console.system, console.face, console.keys, console.boxlogin)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient

from bridge.config import parse_config
from console.app import create_app
from console.errors import PublishError
from console.password import Password, read_password
from console.sessions import Sessions
from console.state import ConsoleState
from console.throttle import LoginThrottle
from console.view import View
from tests.unit.console_kit import (
    BASE,
    BEARER,
    PASSWORD,
    SN,
    Clock,
    FakePublisher,
    basic,
    make_config,
)

MONITOR = "/SophonSystem/api/monitor"
SET_SYSTEM = "/sophon/v2/system/setsystemmonitorconfig"
GET_SYSTEM = "/sophon/v2/system/getsystemmonitorconfig"
CONFIGS = "/SophonConfig/api/Configs"
GET_CONFIGS = "/sophon/v2/face/getconfigs"
SET_CONFIGS = "/sophon/v2/face/setconfigs"
NEW_PASSWORD = "linaro123456"


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "admin.pass"
    path.write_text(PASSWORD + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def state(publisher: FakePublisher, view: View, clock: Clock,
          password_file: Path) -> ConsoleState:
    return ConsoleState(make_config(), view, publisher,
                        Password(read_password(password_file), store=password_file),
                        LoginThrottle(clock=clock, sleep=clock.sleep), Sessions(clock=clock),
                        clock=clock)


# Two apps on one state, as the two listeners: clients outside `with` (whose kept
# request contexts would interleave).
@pytest.fixture
def system(state: ConsoleState) -> FlaskClient:
    return create_app(state, "system").test_client()


@pytest.fixture
def face(state: ConsoleState) -> FlaskClient:
    return create_app(state, "face").test_client()


def sent(publisher: FakePublisher) -> dict[str, str]:
    """setting -> payload of what was published (all retained)."""
    assert all(retain for _topic, _payload, retain in publisher.sent)
    return {topic.removeprefix(f"{BASE}/config/"): payload
            for topic, payload, _retain in publisher.sent}


def body(answer: Any) -> dict[str, Any]:
    found = answer.json
    assert isinstance(found, dict), answer.get_data(as_text=True)
    return found


def error(answer: Any) -> dict[str, Any]:
    found = body(answer)["error"]
    assert isinstance(found, dict)
    return found


def settings_record(view: View, **extra: object) -> None:
    view.apply(f"{BASE}/bridge/settings", orjson.dumps({
        "ts": 1, "report_url": {"value": ["http://127.0.0.1:3/r"], "source": "topic"},
        "report_period": {"value": 15, "source": "topic"},
        "login_url": {"value": "http://127.0.0.1:9/login", "source": "file"},
        "dev_sno": {"value": "TOPICSNO", "source": "topic"},
        "login": {"state": "ok", "at": 1, "error": None}, "refused": [], **extra}))


class TestServices:
    @pytest.mark.parametrize("path", [MONITOR, GET_SYSTEM, "/SophonSystem/api/login"])
    def test_system_calls_only_on_the_system_service(
            self, face: FlaskClient, system: FlaskClient, path: str) -> None:
        """The face listener does not serve the system service's calls (as the vendor's
        port 5555 does not), and says so in the call's error shape."""
        assert face.post(path, headers=BEARER, json={}).status_code == 404
        assert system.post(path, headers=BEARER, json={}).status_code != 404

    @pytest.mark.parametrize("path", ["/", "/SophonMQ/api/DevSno", CONFIGS, "/api/view"])
    def test_face_calls_and_page_only_on_the_face_service(
            self, system: FlaskClient, path: str) -> None:
        assert system.get(path, headers=BEARER).status_code == 404

    @pytest.mark.parametrize(("client", "path"), [
        ("system", MONITOR), ("system", GET_SYSTEM), ("system", SET_SYSTEM),
        ("face", CONFIGS), ("face", f"{CONFIGS}/DEV_SNO"), ("face", GET_CONFIGS),
        ("face", SET_CONFIGS), ("system", "/SophonSystem/api/password"),
        ("face", "/sophon/v2/face/changepassword")])
    def test_every_call_but_login_needs_credentials(
            self, request: pytest.FixtureRequest, publisher: FakePublisher, client: str,
            path: str) -> None:
        served: FlaskClient = request.getfixturevalue(client)
        for method in ("get", "post", "put"):
            answer = getattr(served, method)(path, json={})
            assert answer.status_code in (401, 405), (method, answer.status_code)
        assert publisher.sent == []

    def test_v6_401_has_a_string_code(self, system: FlaskClient) -> None:
        answer = system.post(GET_SYSTEM, json={})
        assert answer.status_code == 401
        assert error(answer) == {"code": "PASSWORD_ERROR", "message": error(answer)["message"]}
        older = error(system.get(MONITOR))
        assert (older["code"], older["status"]) == (401, "UNAUTHORIZED")

    @pytest.mark.parametrize(("path", "status", "code"), [
        ("/sophon/v2/system/nothing", 404, "NOT_FOUND"),
        (SET_SYSTEM, 405, "METHOD_NOT_ALLOWED")])
    def test_v6_http_errors_in_v6_shape(self, system: FlaskClient, path: str, status: int,
                                        code: str) -> None:
        answer = system.put(path, headers=BEARER, json={})
        assert answer.status_code == status
        assert set(error(answer)) == {"code", "message"}
        assert error(answer)["code"] == code


class TestSophonSystemMonitor:
    def test_post_publishes_and_echoes(self, system: FlaskClient,
                                       publisher: FakePublisher) -> None:
        """The vendor's example body: each value reaches its retained topic, the answer
        echoes the request inside {"data": ...}."""
        body = {"monitor_address_list": ["http://127.0.0.1:9528/a", "http://127.0.0.1:9528/b"],
                "report_period": 20, "dev_sno": "AFVKQF000120210604151110"}
        answer = system.post(MONITOR, headers=BEARER, json=body)
        assert (answer.status_code, answer.json) == (200, {"data": body})
        assert sent(publisher) == {
            "report_url": "http://127.0.0.1:9528/a,http://127.0.0.1:9528/b",
            "report_period": "20", "dev_sno": "AFVKQF000120210604151110"}

    def test_post_without_dev_sno_leaves_it(self, system: FlaskClient,
                                            publisher: FakePublisher) -> None:
        answer = system.post(MONITOR, headers=BEARER, json={
            "monitor_address_list": ["http://127.0.0.1:9528/a"], "report_period": "30"})
        assert answer.json == {"data": {"monitor_address_list": ["http://127.0.0.1:9528/a"],
                                        "report_period": 30, "dev_sno": "FILESNO"}}
        assert set(sent(publisher)) == {"report_url", "report_period"}

    def test_get_answers_what_is_in_force(self, system: FlaskClient, view: View) -> None:
        settings_record(view)
        answer = system.get(MONITOR, headers=BEARER)
        assert answer.json == {"data": {"dev_sno": "TOPICSNO",
                                        "monitor_address_list": ["http://127.0.0.1:3/r"],
                                        "report_period": 15}}
        assert answer.headers["X-SE3-Settings"] == "bridge"

    @pytest.mark.parametrize(("body", "message"), [
        ({"report_period": 20}, "monitor_address_list: required"),
        ({"monitor_address_list": ["http://127.0.0.1/a"]}, "report_period: required"),
        ({"monitor_address_list": ["ftp://h/a"], "report_period": 20},
         "monitor_address_list: "),
        ({"monitor_address_list": ["http://h/a,http://h/b"], "report_period": 20},
         "monitor_address_list: must be a list of URLs"),
        ({"monitor_address_list": "http://h/a", "report_period": 0}, "report_period: must be"),
        ({"monitor_address_list": ["http://h/a"], "report_period": 20, "dev_sno": "ABC+123"},
         "dev_sno: must be 1-128 letters"),
    ])
    def test_refusals_name_the_field_and_change_nothing(
            self, system: FlaskClient, publisher: FakePublisher, body: dict[str, object],
            message: str) -> None:
        answer = system.post(MONITOR, headers=BEARER, json=body)
        assert answer.status_code == 400
        assert error(answer)["code"] == 400
        assert error(answer)["status"] == "PARAM_ERROR"
        assert error(answer)["message"].startswith(message)
        assert publisher.sent == []


class TestSystemMonitorConfigV6:
    def test_set_publishes_and_echoes_the_tables_names(
            self, system: FlaskClient, publisher: FakePublisher) -> None:
        answer = system.post(SET_SYSTEM, headers=BEARER, json={
            "device_monitor_url": "http://127.0.0.1:9528/a, http://127.0.0.1:9528/b",
            "device_monitor_report_period": 20, "reporter_id": "AFVKQF000120210604151110"})
        assert answer.status_code == 200
        assert answer.json == {
            "device_monitor_url": ["http://127.0.0.1:9528/a", "http://127.0.0.1:9528/b"],
            "device_monitor_report_period": 20, "reporter_id": "AFVKQF000120210604151110"}
        assert sent(publisher) == {
            "report_url": "http://127.0.0.1:9528/a,http://127.0.0.1:9528/b",
            "report_period": "20", "reporter_id": "AFVKQF000120210604151110"}

    def test_get_is_flat_and_reporter_id_is_dev_sno_unless_set(
            self, system: FlaskClient, view: View) -> None:
        settings_record(view)
        answer = system.post(GET_SYSTEM, headers=BEARER)
        assert answer.json == {"reporter_id": "TOPICSNO",
                               "device_monitor_url": "http://127.0.0.1:3/r",
                               "device_monitor_report_period": 15}
        view.apply(f"{BASE}/config/reporter_id", b"site-7")
        assert body(system.post(GET_SYSTEM, headers=BEARER, json={}))["reporter_id"] == "site-7"
        settings_record(view, reporter_id={"value": "from-bridge", "source": "topic"})
        assert body(system.post(GET_SYSTEM, headers=BEARER))["reporter_id"] == "from-bridge"

    @pytest.mark.parametrize(("kwargs", "status", "code", "message"), [
        ({"data": b"device_monitor_url=http://h/a", "content_type": "text/plain"}, 415,
         "UNSUPPORT_CONTENT_TYPE", "Content-Type: text/plain"),
        ({"data": b"{nope", "content_type": "application/json"}, 400,
         "INVALID_REQUEST_JSON", "body: not valid JSON"),
        ({"json": ["a"]}, 400, "INVALID_REQUEST_JSON", "body: must be a JSON object"),
        ({"json": {"device_monitor_report_period": 20}}, 400, "MISSING_ARGUMENTS",
         "device_monitor_url: required"),
        ({"json": {"device_monitor_url": "http://h/a"}}, 400, "MISSING_ARGUMENTS",
         "device_monitor_report_period: required"),
        ({"json": {"device_monitor_url": "ftp://h/a", "device_monitor_report_period": 20}},
         400, "INVALID_ARGUMENTS", "device_monitor_url: "),
        ({"json": {"device_monitor_url": "http://h/a", "device_monitor_report_period": 1.5}},
         400, "INVALID_ARGUMENTS", "device_monitor_report_period: must be"),
        ({"json": {"device_monitor_url": "http://h/a", "device_monitor_report_period": 20,
                   "reporter_id": "a\nb"}}, 400, "INVALID_ARGUMENTS", "reporter_id: control"),
    ])
    def test_errors_have_string_codes(
            self, system: FlaskClient, publisher: FakePublisher, kwargs: dict[str, Any],
            status: int, code: str, message: str) -> None:
        answer = system.post(SET_SYSTEM, headers=BEARER, **kwargs)
        assert answer.status_code == status
        assert set(error(answer)) == {"code", "message"}
        assert error(answer)["code"] == code
        assert error(answer)["message"].startswith(message)
        assert publisher.sent == []

    def test_a_broker_failure_is_an_internal_error(
            self, system: FlaskClient, publisher: FakePublisher) -> None:
        publisher.refuse = PublishError(504, "the MQTT broker did not acknowledge it")
        answer = system.post(SET_SYSTEM, headers=BEARER, json={
            "device_monitor_url": "http://h/a", "device_monitor_report_period": 20})
        assert answer.status_code == 504
        assert error(answer)["code"] == "INTERNAL_ERROR"

    def test_a_session_reads_but_does_not_set(
            self, face: FlaskClient, system: FlaskClient, publisher: FakePublisher) -> None:
        """A login sets the session cookie; it may read (getsystemmonitorconfig) but a
        change needs the Authorization header (no cross-site form acts with a session)."""
        assert system.post("/sophon/v2/system/login", json={
            "username": "admin", "password": PASSWORD}).status_code == 200
        assert system.post(GET_SYSTEM).status_code == 200
        answer = system.post(SET_SYSTEM, json={"device_monitor_url": "http://h/a",
                                               "device_monitor_report_period": 20})
        assert answer.status_code == 401
        assert publisher.sent == []


class TestConfigKeys:
    def test_get_all_keys(self, face: FlaskClient, view: View) -> None:
        """Both key sets, read-only status and MAC, and never the token."""
        settings_record(view, devices_report_url={"value": ["http://127.0.0.1:4/d"],
                                                  "source": "login"},
                        devices_report_period={"value": 60, "source": "login"})
        view.apply(f"{BASE}/gateway/info", orjson.dumps({
            "gateway_ip": "127.0.0.1", "gateway_name": "box", "dev_sno": "TOPICSNO",
            "sw_version": "1.0", "gateway_mac": "E0:A5:09:00:42:6C"}))
        answer = face.get(CONFIGS, headers=BEARER)
        assert answer.status_code == 200
        assert answer.json == {"data": {
            "BOX_MAC": "0xe0a50900426c",
            "DEVICE_MONITOR_ADDR": "http://127.0.0.1:3/r",
            "DEV_SNO": "TOPICSNO",
            "LOGIN_STATUS": {"code": 0, "message": "login success", "chinese_message": "登录成功"},
            "LOGIN_TOKEN": "",
            "LOGIN_URL": "http://127.0.0.1:9/login",
            "MEDIA_DEVICE_MONITOR_REPORT_PEROID": 60,
            "MEDIA_DEVICE_MONITOR_URL": "http://127.0.0.1:4/d",
            "MQ_LICENSE_KEY": "TOPICSNO",
            "MQ_LOGIN_STATUS": 0,
            "MQ_LOGIN_TOKEN": "",
            "MQ_LOGIN_URL": "http://127.0.0.1:9/login",
            "REPORTED_PEROID": 15,
            "WEB_HEART_TIME": 60,
            "WEB_HEART_URL": "http://127.0.0.1:4/d",
        }}

    def test_before_the_bridge_speaks_the_file_is_in_force(
            self, state: ConsoleState) -> None:
        """The sub-device report's URL and period and reporter_id from the config file,
        as the bridge would take them, until it says what it uses."""
        state.config = parse_config({
            "gateway": {"sn": SN, "dev_sno": "FILESNO", "reporter_id": "site-1"},
            "platform": {"release": "V6R1C01", "devices_report_url": "http://127.0.0.1:5/m",
                         "devices_interval": 45}})
        face = create_app(state, "face").test_client()
        values = body(face.post(GET_CONFIGS, headers=BEARER))
        assert values["MEDIA_DEVICE_MONITOR_URL"] == values["WEB_HEART_URL"] == \
            "http://127.0.0.1:5/m"
        assert values["MEDIA_DEVICE_MONITOR_REPORT_PEROID"] == 45
        system = create_app(state, "system").test_client()
        answer = system.post(GET_SYSTEM, headers=BEARER)
        assert body(answer)["reporter_id"] == "site-1"
        assert answer.headers["X-SE3-Settings"].startswith("fallback")
        state.config = parse_config({"gateway": {"sn": SN, "dev_sno": "FILESNO"},
                                     "platform": {"interval": 25}})
        values = body(face.post(GET_CONFIGS, headers=BEARER))
        assert (values["WEB_HEART_URL"], values["WEB_HEART_TIME"]) == ("", 25)
        assert body(system.post(GET_SYSTEM, headers=BEARER))["reporter_id"] == "FILESNO"

    def test_a_failed_login_says_so(self, face: FlaskClient, view: View) -> None:
        settings_record(view, login={"state": "failed", "at": 1, "error": "HTTP 500"})
        values = body(face.get(CONFIGS, headers=BEARER))["data"]
        assert values["MQ_LOGIN_STATUS"] == 500001
        assert values["LOGIN_STATUS"]["message"] == "HTTP 500"

    def test_get_one_key(self, face: FlaskClient) -> None:
        answer = face.get(f"{CONFIGS}/DEV_SNO", headers=BEARER)
        assert answer.json == {"data": {"DEV_SNO": "FILESNO"}}
        missing = face.get(f"{CONFIGS}/EVENT_IMAGE_PATH", headers=BEARER)
        assert missing.status_code == 404
        assert error(missing)["message"] == "EVENT_IMAGE_PATH: not a key this box serves"

    def test_put_publishes_each_setting_once(self, face: FlaskClient,
                                             publisher: FakePublisher) -> None:
        config = {"WEB_HEART_URL": "http://127.0.0.1:9061/box/monitor/device/status/report",
                  "MEDIA_DEVICE_MONITOR_URL":
                      "http://127.0.0.1:9061/box/monitor/device/status/report",
                  "WEB_HEART_TIME": 20, "DEVICE_MONITOR_ADDR": "", "MQ_LICENSE_KEY": "SNO-1",
                  "LOGIN_URL": "http://127.0.0.1:9061/api/gateway/login"}
        answer = face.put(CONFIGS, headers=BEARER, data=orjson.dumps({"config_dict": config}),
                          content_type="application/json")  # in this order, not sorted
        assert answer.status_code == 200
        assert answer.json == {"data": {"failed_configs": [], "success_configs": list(config)}}
        assert publisher.sent == [
            (f"{BASE}/config/devices_report_url",
             "http://127.0.0.1:9061/box/monitor/device/status/report", True),
            (f"{BASE}/config/devices_report_period", "20", True),
            (f"{BASE}/config/report_url", "", True),
            (f"{BASE}/config/dev_sno", "SNO-1", True),
            (f"{BASE}/config/login_url", "http://127.0.0.1:9061/api/gateway/login", True)]

    @pytest.mark.parametrize(("config", "message"), [
        ({"WEB_HEART_TIME": 20, "LOGIN_TOKEN": "x"}, "LOGIN_TOKEN: is read only"),
        ({"BOX_MAC": "0x00"}, "BOX_MAC: is read only"),
        ({"EVENT_IMAGE_PATH": "local"}, "EVENT_IMAGE_PATH: is not a key this box serves"),
        ({"WEB_HEART_TIME": 20, "MEDIA_DEVICE_MONITOR_REPORT_PEROID": 30},
         "sets the same setting as"),
        ({"WEB_HEART_TIME": 20, "DEV_SNO": "ABC+123"}, "DEV_SNO: must be 1-128 letters"),
        ({"WEB_HEART_URL": "javascript:alert(1)"}, "WEB_HEART_URL: "),
        ({"REPORTED_PEROID": 86401}, "REPORTED_PEROID: must be a whole number"),
        ({"MQ_LOGIN_URL": 5}, "MQ_LOGIN_URL: must be a string"),
        ({}, "config_dict: empty"),
        ([], "config_dict: must be an object"),
    ])
    def test_one_bad_key_changes_nothing(self, face: FlaskClient, publisher: FakePublisher,
                                         config: object, message: str) -> None:
        for path, method, style in ((CONFIGS, "put", "older"), (SET_CONFIGS, "post", "v6")):
            answer = getattr(face, method)(path, headers=BEARER, json={"config_dict": config})
            assert answer.status_code == 400
            assert message in error(answer)["message"], style
            assert isinstance(error(answer)["code"], int if style == "older" else str)
        assert publisher.sent == []

    def test_v6_get_all_and_one(self, face: FlaskClient) -> None:
        everything = body(face.post(GET_CONFIGS, headers=BEARER, json={}))
        assert everything["MQ_LICENSE_KEY"] == "FILESNO"
        assert everything["MQ_LOGIN_TOKEN"] == ""
        assert face.post(GET_CONFIGS, headers=BEARER).json == everything
        assert face.post(GET_CONFIGS, headers=BEARER, json={
            "config_name": "MEDIA_DEVICE_MONITOR_URL"}).json == {"MEDIA_DEVICE_MONITOR_URL": ""}
        unknown = face.post(GET_CONFIGS, headers=BEARER, json={
            "config_name": "GATE_DUPLICATE_REMOVAL_TIMEOUT"})
        assert unknown.status_code == 400
        assert error(unknown) == {"code": "INVALID_ARGUMENTS", "message":
                                  "config_name: not a key this box serves"}

    def test_v6_set_echoes_the_keys_set(self, face: FlaskClient,
                                        publisher: FakePublisher) -> None:
        answer = face.post(SET_CONFIGS, headers=BEARER, json={"config_dict": {
            "MEDIA_DEVICE_MONITOR_URL": "http://u:pw@127.0.0.1:9061/media?token=t",
            "MEDIA_DEVICE_MONITOR_REPORT_PEROID": "60"}})
        assert answer.status_code == 200
        assert answer.json == {"MEDIA_DEVICE_MONITOR_URL": "http://127.0.0.1:9061/media",
                               "MEDIA_DEVICE_MONITOR_REPORT_PEROID": 60}
        assert sent(publisher)["devices_report_url"] == "http://u:pw@127.0.0.1:9061/media?token=t"
        missing = face.post(SET_CONFIGS, headers=BEARER, json={"config": {}})
        assert error(missing) == {"code": "MISSING_ARGUMENTS", "message": "config_dict: required"}

    def test_token_and_url_credentials_never_served(self, face: FlaskClient,
                                                    view: View) -> None:
        view.apply(f"{BASE}/config/login_url", b"http://u:secretpw@127.0.0.1:9/login?k=secretq")
        text = face.get(CONFIGS, headers=BEARER).get_data(as_text=True)
        assert "secretpw" not in text
        assert "secretq" not in text


LOGINS = [
    ("system", "/SophonSystem/api/login", {"data": {"success": True}}, "older"),
    ("system", "/SophonConfig/api/login", {"data": {"success": True}}, "older"),
    ("face", "/SophonConfig/api/login", {"data": {"success": True}}, "older"),
    ("system", "/sophon/v2/system/login", {"result": True}, "v6"),
    ("face", "/sophon/v2/face/login", {"result": True}, "v6"),
]
CHANGES = [
    ("system", "/SophonSystem/api/password", {"data": {"success": True}}),
    ("system", "/SophonConfig/api/password", {"data": {"success": True}}),
    ("face", "/SophonConfig/api/password", {"data": {"success": True}}),
    ("system", "/sophon/v2/system/updatepassword", {"data": {"success": True}}),
    ("face", "/sophon/v2/face/changepassword", {"result": True, "data": {"success": True}}),
]


class TestBoxLogin:
    @pytest.mark.parametrize(("client", "path", "answer", "style"), LOGINS)
    def test_login_answers_and_starts_a_session_on_both_listeners(
            self, request: pytest.FixtureRequest, face: FlaskClient, client: str, path: str,
            answer: dict[str, object], style: str) -> None:
        served: FlaskClient = request.getfixturevalue(client)
        done = served.post(path, json={"username": "admin", "password": PASSWORD})
        assert (done.status_code, done.json) == (200, answer)
        assert "HttpOnly" in done.headers["Set-Cookie"]
        cookie = served.get_cookie("se3_console")
        assert cookie is not None
        face.set_cookie("se3_console", cookie.value)  # a browser sends it to either port
        assert face.get("/").status_code == 200

    @pytest.mark.parametrize(("client", "path", "answer", "style"), LOGINS)
    def test_wrong_password_in_the_calls_shape(
            self, request: pytest.FixtureRequest, client: str, path: str,
            answer: dict[str, object], style: str) -> None:
        served: FlaskClient = request.getfixturevalue(client)
        wrong = served.post(path, json={"username": "admin", "password": "admin"})
        assert wrong.status_code == 401
        assert served.get_cookie("se3_console") is None
        if style == "v6":
            assert error(wrong) == {"code": "PASSWORD_ERROR",
                                    "message": "wrong user name or password"}
        else:
            assert (error(wrong)["code"], error(wrong)["status"]) == (401, "UNAUTHORIZED")
        missing = served.post(path, json={"username": "admin"})
        assert missing.status_code == 400
        assert error(missing)["message"] == "password: required"

    def test_logins_share_the_consoles_throttle(
            self, face: FlaskClient, system: FlaskClient, clock: Clock) -> None:
        """Failures on the login calls of both services and the API's header count
        together: past 5 in a minute, the next attempt (the right password too) is
        taken only after a pause."""
        for client, path in ((system, "/SophonSystem/api/login"),
                             (face, "/sophon/v2/face/login"),
                             (system, "/sophon/v2/system/login"),
                             (face, "/SophonConfig/api/login")):
            assert client.post(path, json={"username": "admin", "password": "x"}
                               ).status_code == 401
        assert face.get("/api/view", headers=basic("admin", "x")).status_code == 401
        assert face.get("/api/view", headers=basic("admin", "y")).status_code == 401
        assert clock.slept == []
        answer = system.post("/sophon/v2/system/login",
                             json={"username": "admin", "password": PASSWORD})
        assert (answer.status_code, body(answer)) == (200, {"result": True})
        assert clock.slept != []  # paced: it waited for its turn

    def test_a_guesser_past_the_wait_is_told_in_the_calls_shape(
            self, state: ConsoleState, clock: Clock) -> None:
        """An attempt that would wait too long for its turn is a 429 in the call's shape."""
        state.throttle = LoginThrottle(clock=clock, sleep=lambda _s: None, max_wait=1.0)
        system = create_app(state, "system").test_client()
        wrong = {"username": "admin", "password": "x"}
        codes = [system.post("/sophon/v2/system/login", json=wrong).status_code
                 for _ in range(6)]
        assert codes == [401] * 6
        answer = system.post("/sophon/v2/system/login", json=wrong)
        assert answer.status_code == 429
        assert error(answer)["code"] == "PASSWORD_ERROR"
        assert int(answer.headers["Retry-After"]) >= 1
        older = system.post("/SophonSystem/api/login", json=wrong)
        assert (older.status_code, error(older)["status"]) == (429, "TOO_MANY_REQUESTS")


class TestPasswordChange:
    @pytest.mark.parametrize(("client", "path", "answer"), CHANGES)
    def test_the_new_password_is_the_only_one_everywhere_at_once(
            self, request: pytest.FixtureRequest, face: FlaskClient, system: FlaskClient,
            password_file: Path, client: str, path: str, answer: dict[str, object]) -> None:
        served: FlaskClient = request.getfixturevalue(client)
        face.post("/sophon/v2/face/login", json={"username": "admin", "password": PASSWORD})
        assert face.get("/").status_code == 200
        done = served.post(path, headers=BEARER, json={
            "username": "admin", "old_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert (done.status_code, done.json) == (200, answer)
        new = {"Authorization": f"Bearer {NEW_PASSWORD}"}
        for listener, call in ((face, "/SophonMQ/api/DevSno"), (system, MONITOR)):
            assert listener.get(call, headers=BEARER).status_code == 401
            assert listener.get(call, headers=new).status_code == 200
        assert face.get("/").status_code == 401  # the session made before it ended
        stored = password_file.read_text(encoding="utf-8")
        assert NEW_PASSWORD not in stored
        assert PASSWORD not in stored
        assert stored.startswith("scrypt:")
        assert password_file.stat().st_mode & 0o777 == 0o600
        restarted = Password(read_password(password_file))  # survives a restart
        assert restarted.matches(NEW_PASSWORD)
        assert not restarted.matches(PASSWORD)

    def test_wrong_old_password_changes_nothing_and_counts(
            self, system: FlaskClient, password_file: Path, clock: Clock) -> None:
        before = password_file.read_text(encoding="utf-8")
        for _ in range(4):
            wrong = system.post("/sophon/v2/system/updatepassword", headers=BEARER, json={
                "username": "admin", "old_password": "admin", "new_password": NEW_PASSWORD})
            assert wrong.status_code == 403
            assert error(wrong) == {"code": "PASSWORD_ERROR",
                                    "message": "username or old_password: wrong"}
        older = system.post("/SophonSystem/api/password", headers=BEARER, json={
            "username": "root", "old_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert (older.status_code, error(older)["status"]) == (403, "PASSWORD_ERROR")
        assert clock.slept == []
        assert system.get(MONITOR, headers=BEARER).status_code == 200
        assert system.get(MONITOR, headers=BEARER).status_code == 200
        assert clock.slept != []  # five failures: attempts wait their turn
        assert password_file.read_text(encoding="utf-8") == before

    @pytest.mark.parametrize(("new", "message"), [
        ("short", "new_password: must be 8-128 characters"),
        (" padded password ", "new_password: must be printable, without spaces at either end"),
        ("tab\tinside1", "new_password: must be printable, without spaces at either end"),
        ("scrypt:looks-hashed", "new_password: must not start with scrypt:"),
    ])
    def test_an_unusable_new_password_is_refused(
            self, face: FlaskClient, password_file: Path, new: str, message: str) -> None:
        answer = face.post("/sophon/v2/face/changepassword", headers=BEARER, json={
            "username": "admin", "old_password": PASSWORD, "new_password": new})
        assert answer.status_code == 400
        assert error(answer) == {"code": "INVALID_ARGUMENTS", "message": message}
        assert read_password(password_file) == PASSWORD

    def test_a_file_that_cannot_be_written_keeps_the_old_one(
            self, face: FlaskClient, password_file: Path) -> None:
        password_file.unlink()
        password_file.parent.rmdir()  # nowhere to write the new one
        answer = face.post("/SophonConfig/api/password", headers=BEARER, json={
            "username": "admin", "old_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert answer.status_code == 500
        assert error(answer)["status"] == "INTERNAL_ERROR"
        assert error(answer)["message"].startswith("password not changed: cannot write")
        assert face.get("/api/view", headers=BEARER).status_code == 200


class TestPage:
    """The page shows the release in force and sets it; under a two-report release it
    shows (and sets) the sub-device report's URLs and period, and both reports' targets."""

    def page(self, face: FlaskClient) -> str:
        if face.get_cookie("se3_console") is None:
            face.post("/sophon/v2/face/login", json={"username": "admin", "password": PASSWORD})
        answer = face.get("/")
        assert answer.status_code == 200
        return answer.get_data(as_text=True)

    def token(self, face: FlaskClient) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', self.page(face))
        assert found
        return found.group(1)

    def test_a_one_report_release_shows_one_report(self, face: FlaskClient) -> None:
        page = self.page(face)
        assert re.search(r'id="setting-release".*V2R2C01.*\(F2\)', page)
        assert 'id="form-release"' in page
        assert '<option value="V6R1C01">' in page
        assert 'id="form-devices_report_url"' not in page
        assert 'id="setting-devices_report_url"' not in page
        assert 'id="form-reporter_id"' not in page

    def test_the_release_is_set_through_its_topic(
            self, face: FlaskClient, publisher: FakePublisher) -> None:
        token = self.token(face)
        answer = face.post("/settings/release", data={"value": "V6R1C01", "csrf_token": token})
        assert answer.status_code == 303
        assert publisher.sent == [(f"{BASE}/config/release", "V6R1C01", True)]
        face.post("/settings/release", data={"value": "V6R9C01", "csrf_token": token})
        assert len(publisher.sent) == 1
        assert "Platform release not changed: release: unknown release" in self.page(face)

    def test_a_two_report_release_shows_both(self, face: FlaskClient, view: View) -> None:
        settings_record(view, release={"value": "V6R1C01", "source": "topic"},
                        devices_report_url={"value": ["http://127.0.0.1:4/media"],
                                            "source": "login"},
                        devices_report_period={"value": 60, "source": "login"},
                        reporter_id={"value": "site-7", "source": "topic"})
        view.apply(f"{BASE}/bridge/report", orjson.dumps({
            "target": "http://127.0.0.1:4/media", "ok": False, "status": 503, "ts": 999,
            "report": "devices"}))
        view.apply(f"{BASE}/bridge/report", orjson.dumps({  # the other report's: not shown
            "target": "http://127.0.0.1:4/media", "ok": False, "status": 418, "ts": 999,
            "report": "gateway"}))
        page = self.page(face)
        assert re.search(r'id="setting-release".*V6R1C01.*F7 \+ F8: two reports', page)
        assert re.search(r'id="setting-devices_report_url".*http://127.0.0.1:4/media.*login',
                         page)
        assert re.search(r'id="setting-devices_report_period".*60 s', page)
        assert re.search(r'id="setting-reporter_id".*site-7', page)
        rows = re.findall(r'data-url="([^"]+)" data-report="(\w+)"', page)
        assert rows == [("http://127.0.0.1:3/r", "gateway"),
                        ("http://127.0.0.1:4/media", "devices")]
        assert "HTTP 503" in page
        assert "HTTP 418" not in page
        for name in ("devices_report_url", "devices_report_period", "reporter_id"):
            assert f'id="form-{name}"' in page

    def test_the_sub_device_report_is_set_from_the_page(
            self, face: FlaskClient, view: View, publisher: FakePublisher) -> None:
        view.apply(f"{BASE}/config/release", b"V5R7C01")
        token = self.token(face)
        face.post("/settings/devices_report_url",
                  data={"value": "http://127.0.0.1:9061/box/device", "csrf_token": token})
        face.post("/settings/devices_report_period", data={"value": "0", "csrf_token": token})
        assert publisher.sent == [(f"{BASE}/config/devices_report_url",
                                   "http://127.0.0.1:9061/box/device", True)]
        assert "Sub-device report period not changed: devices_report_period: must be" in \
            self.page(face)
