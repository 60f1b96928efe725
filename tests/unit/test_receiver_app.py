"""Tests of the reference platform's endpoints through Flask's test client."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from receiver.app import LoginSettings, create_app, state_of
from receiver.store import ReportStore
from tests.unit.test_receiver_conformance import device, spec_example, v2_report

SN = "SZCCKQRAIJBAH0002"
JSON_UTF8 = "application/json; charset=utf-8"
LOGIN_ARGS = {"dev_sno": "ZKZCPI000120190807142601", "hex_mac": "0xe0a509000e6d"}


REPORT_HEADERS = {"Content-Type": JSON_UTF8, "X-Report-Id": f"{SN}-boot1-1"}


def post(client: FlaskClient, report: object, report_id: str = f"{SN}-boot1-1") -> Any:
    body = report if isinstance(report, bytes) else json.dumps(report, ensure_ascii=False).encode()
    return client.post(
        "/DeviceStatus", data=body, headers={"Content-Type": JSON_UTF8, "X-Report-Id": report_id}
    )


def bad_report() -> dict[str, Any]:
    report = spec_example()
    report["sub_devices"].append(device("192.168.1.102", ep_type="9"))
    return report


@pytest.fixture
def app() -> Flask:
    return create_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def reports(client: FlaskClient, since: float | None = None) -> list[dict[str, Any]]:
    answer = client.get("/api/reports", query_string={} if since is None else {"since": since})
    assert answer.status_code == 200
    result: list[dict[str, Any]] = answer.get_json()
    return result


class TestDeviceStatus:
    def test_conforming_report(self, client: FlaskClient) -> None:
        """A conforming report is answered SUCCESS and kept with an empty violation list."""
        answer = post(client, spec_example())
        assert answer.status_code == 200
        assert answer.get_json() == {"status": 0, "message": "SUCCESS"}
        [kept] = reports(client)
        assert kept["violations"] == []
        assert kept["payload"] == spec_example()
        assert kept["headers"] == {"X-Report-Id": f"{SN}-boot1-1"}
        assert kept["report_id"] == f"{SN}-boot1-1"
        assert kept["received_at"] == pytest.approx(time.time(), abs=60)

    def test_lenient_keeps_violations(self, client: FlaskClient) -> None:
        """Without strict, a non-conforming report is accepted and its violations kept."""
        assert post(client, bad_report()).status_code == 200
        [kept] = reports(client)
        assert kept["violations"] == ['sub_devices[1].ep_type: \'9\' is not one of "0".."4"']
        assert kept["rejected"] is False

    def test_strict_refuses_violations(self) -> None:
        """With strict, a non-conforming report gets 422 and the list of violations."""
        client = create_app(strict=True).test_client()
        answer = post(client, bad_report())
        assert answer.status_code == 422
        body = answer.get_json()
        assert body["status"] == 1
        assert body["violations"] == ['sub_devices[1].ep_type: \'9\' is not one of "0".."4"']
        assert reports(client)[0]["rejected"] is True
        assert client.get("/api/stats").get_json()["rejected"] == 1

    def test_strict_accepts_conforming(self) -> None:
        """With strict, a conforming report is still answered SUCCESS."""
        client = create_app(strict=True).test_client()
        assert post(client, spec_example()).get_json() == {"status": 0, "message": "SUCCESS"}

    def test_strict_refuses_a_query_dev_sno_other_than_the_bodys(self) -> None:
        """One report, one dev_sno: the login-issued query's code is the body's."""
        client = create_app(strict=True).test_client()
        body = spec_example()
        answer = client.post(f"/DeviceStatus?token=t&dev_sno=OTHER{body['dev_sno']}",
                             data=json.dumps(body), headers=REPORT_HEADERS)
        assert answer.status_code == 422
        assert answer.get_json()["violations"] == [
            f"query dev_sno: 'OTHER{body['dev_sno']}' is not the body's dev_sno "
            f"{body['dev_sno']!r}"]
        answer = client.post(f"/DeviceStatus?token=t&dev_sno={body['dev_sno']}",
                             data=json.dumps(body), headers=REPORT_HEADERS)
        assert answer.status_code == 200

    def test_header_violations(self, client: FlaskClient) -> None:
        """A missing X-Report-Id and a wrong Content-Type are violations too."""
        client.post("/DeviceStatus", data=json.dumps(spec_example()), content_type="text/plain")
        assert reports(client)[0]["violations"] == [
            "header Content-Type: 'text/plain' is not application/json; charset=utf-8",
            "header X-Report-Id: missing",
        ]

    def test_not_utf8_is_kept(self, client: FlaskClient) -> None:
        """A body that is not UTF-8 is kept with a null payload and its violation."""
        assert post(client, b"\xff\xfe").status_code == 200
        [kept] = reports(client)
        assert kept["payload"] is None
        assert kept["violations"][0].startswith("body: not UTF-8")

    def test_oversized_body(self, client: FlaskClient) -> None:
        """A body over 32 MiB is refused with 413 and not kept."""
        assert post(client, b" " * (33 << 20)).status_code == 413
        assert reports(client) == []

    def test_payload_as_posted(self, client: FlaskClient) -> None:
        """/api/reports echoes the body's key order and non-ASCII text unchanged."""
        post(client, spec_example())
        text = client.get("/api/reports").get_data(as_text=True)
        keys = ['"gateway_ip"', '"gateway_name"', '"dev_sno"', '"sw_version"', '"cpu_usage"']
        assert [text.index(k) for k in keys] == sorted(text.index(k) for k in keys)
        assert "星期二" in text

    def test_logs_one_line(self, client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
        """Each report is logged at INFO: id, gateway, status, device counts, versions matched."""
        report = spec_example()
        report["sub_devices"].append(device("192.168.1.102", ep_status="offline"))
        with caplog.at_level(logging.INFO, logger="receiver.app"):
            post(client, report, report_id=f"{SN}-b-7")
        [line] = [r.getMessage() for r in caplog.records if r.name == "receiver.app"]
        assert line == (
            f"report {SN}-b-7 (v1 at /DeviceStatus) from gateway {SN} (online): 1 sub-devices "
            "online, 1 offline, 0 violations, matches v1"
        )


class TestReports:
    def test_oldest_first(self, client: FlaskClient) -> None:
        """Reports are listed in the order they arrived."""
        for seq in range(3):
            post(client, spec_example(), report_id=f"{SN}-b-{seq}")
        kept = reports(client)
        assert [r["report_id"] for r in kept] == [f"{SN}-b-0", f"{SN}-b-1", f"{SN}-b-2"]
        assert [r["received_at"] for r in kept] == sorted(r["received_at"] for r in kept)

    def test_since(self, client: FlaskClient) -> None:
        """?since= returns only the reports received after that time."""
        post(client, spec_example(), report_id=f"{SN}-b-1")
        first = reports(client)[0]["received_at"]
        assert reports(client, since=first) == []
        post(client, spec_example(), report_id=f"{SN}-b-2")
        assert [r["report_id"] for r in reports(client, since=first)] == [f"{SN}-b-2"]

    def test_bad_since(self, client: FlaskClient) -> None:
        """A since that is not a number is a 400."""
        assert client.get("/api/reports?since=yesterday").status_code == 400

    def test_keep_bounds_the_list(self) -> None:
        """Only the latest `keep` reports are kept."""
        client = create_app(keep=2).test_client()
        for seq in range(4):
            post(client, spec_example(), report_id=f"{SN}-b-{seq}")
        assert [r["report_id"] for r in reports(client)] == [f"{SN}-b-2", f"{SN}-b-3"]
        assert client.get("/api/stats").get_json()["received"] == 4

    def test_times_strictly_increase(self) -> None:
        """Two reports in one clock tick still get distinct, increasing times."""
        store = ReportStore(clock=lambda: 1000.0)
        first, second = store.add({}, [], None), store.add({}, [], None)
        assert first.received_at == 1000.0
        assert second.received_at > first.received_at
        assert store.reports(since=first.received_at) == [second]

    def test_wait_for(self, app: Flask) -> None:
        """ReportStore.wait_for returns a matching report, or None at the deadline."""
        post(app.test_client(), spec_example(), report_id=f"{SN}-b-9")
        store = state_of(app).store
        found = store.wait_for(lambda r: r.report_id == f"{SN}-b-9", timeout=1)
        assert found is not None
        assert store.wait_for(lambda r: r.report_id == "never", timeout=0.05) is None


class TestLogin:
    def test_documented_names(self, client: FlaskClient) -> None:
        """By default (V2R2C01) the login answers in L1: token, deviceMonitorAddr and
        deviceMonitorPeriod, the MQ settings (of no MQ), in the table's order."""
        answer = client.get("/api/gateway/login", query_string=LOGIN_ARGS)
        assert answer.status_code == 200
        body = answer.get_json()
        token = body.pop("token")
        code = LOGIN_ARGS["dev_sno"]
        assert body == {
            "imgServerAddr": "",
            "deviceMonitorAddr": "/DeviceStatus",
            "deviceMonitorPeriod": 20,
            "rabbitmq": {
                "host": "127.0.0.1", "port": 5672, "login": code, "password": "",
                "queue": f"queue-dev-{code}",
                "exchange": {"name": f"exchange-dev-{code}", "type": "topic", "passive": False,
                             "durable": True, "auto_delete": False},
            },
            "arguments": {},
            "message": "登录成功",
        }
        assert list(answer.get_json()) == ["token", *body]
        assert len(token) == 32
        assert (
            client.get("/api/gateway/login", query_string=LOGIN_ARGS).get_json()["token"] != token
        )

    def test_new_names(self) -> None:
        """With new_names the login answers device_monitor_url and _report_period."""
        settings = LoginSettings("http://127.0.0.1:9/a, /b", 5, new_names=True)
        client = create_app(login=settings).test_client()
        body = client.get("/api/gateway/login", query_string=LOGIN_ARGS).get_json()
        assert body["device_monitor_url"] == "http://127.0.0.1:9/a, /b"
        assert body["device_monitor_report_period"] == 5
        assert "deviceMonitorAddr" not in body

    @pytest.mark.parametrize(
        ("args", "reason"),
        [
            ({"hex_mac": "0xe0a509000e6d"}, "dev_sno is missing"),
            ({"dev_sno": "A1", "hex_mac": ""}, "hex_mac is missing"),
            ({"dev_sno": "A 1", "hex_mac": "0xe0a509000e6d"}, "dev_sno: must be"),
            ({"dev_sno": "A1", "hex_mac": "0xE0A509000E6D"}, "hex_mac must be"),
            ({"dev_sno": "A1", "hex_mac": "e0a509000e6d"}, "hex_mac must be"),
            ({"dev_sno": "A1", "hex_mac": "0xe0:a5:09:00:0e:6d"}, "hex_mac must be"),
        ],
    )
    def test_bad_arguments(self, client: FlaskClient, args: dict[str, str], reason: str) -> None:
        """A missing or malformed dev_sno or hex_mac is a 400 naming the argument."""
        answer = client.get("/api/gateway/login", query_string=args)
        assert answer.status_code == 400
        body = answer.get_json()
        assert body["status"] == 1
        assert body["message"].startswith(reason)
        assert body["error"]["code"] == 400
        assert "token" not in body

    def test_logins_are_listed(self, client: FlaskClient) -> None:
        """/api/logins lists each login, good or bad, without its token."""
        client.get("/api/gateway/login", query_string=LOGIN_ARGS)
        client.get("/api/gateway/login", query_string={"dev_sno": "A1"})
        logins = client.get("/api/logins").get_json()
        assert [(x["dev_sno"], x["ok"]) for x in logins] == [
            (LOGIN_ARGS["dev_sno"], True),
            ("A1", False),
        ]
        assert all("token" not in x for x in logins)

    def test_token_not_logged(self, client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
        """The token never reaches the log."""
        with caplog.at_level(logging.DEBUG):
            token = client.get("/api/gateway/login", query_string=LOGIN_ARGS).get_json()["token"]
        assert caplog.records
        assert token not in caplog.text

    @pytest.mark.parametrize("period", [0, -1, True])
    def test_settings_validated(self, period: int) -> None:
        """A login period must be a whole number of seconds, at least one."""
        with pytest.raises(ValueError, match="period"):
            LoginSettings(period=period)


class TestFaults:
    @pytest.fixture
    def client(self) -> FlaskClient:
        return create_app(faults=True).test_client()

    def test_off_by_default(self) -> None:
        """Without faults, /api/faults does not exist."""
        client = create_app().test_client()
        assert client.post("/api/faults", json={"status": 503}).status_code == 404

    def test_status_and_retry_after(self, client: FlaskClient) -> None:
        """An injected 503 answers every POST with it and Retry-After, keeping nothing."""
        assert client.post("/api/faults", json={"status": 503, "retry_after": 5}).status_code == 200
        for _ in range(3):
            answer = post(client, spec_example())
            assert answer.status_code == 503
            assert answer.headers["Retry-After"] == "5"
        assert reports(client) == []
        stats = client.get("/api/stats").get_json()
        assert (stats["received"], stats["faulted"]) == (0, 3)

    def test_count(self, client: FlaskClient) -> None:
        """A fault with a count is used up after that many requests."""
        client.post("/api/faults", json={"status": 500, "count": 2})
        assert [post(client, spec_example()).status_code for _ in range(3)] == [500, 500, 200]
        assert client.get("/api/faults").get_json() == []

    def test_http_date_retry_after(self, client: FlaskClient) -> None:
        """retry_after may be an HTTP date, sent verbatim."""
        date = "Wed, 21 Oct 2015 07:28:00 GMT"
        client.post("/api/faults", json={"status": 429, "retry_after": date})
        assert post(client, spec_example()).headers["Retry-After"] == date

    def test_delete_clears(self, client: FlaskClient) -> None:
        """DELETE /api/faults restores normal answers."""
        client.post("/api/faults", json={"status": 503})
        assert client.delete("/api/faults").status_code == 200
        assert post(client, spec_example()).status_code == 200

    def test_delay_only(self, client: FlaskClient) -> None:
        """A 2xx fault only delays; the report is then handled as usual."""
        client.post("/api/faults", json={"status": 200, "delay": 0.2, "count": 1})
        started = time.monotonic()
        assert post(client, spec_example()).get_json() == {"status": 0, "message": "SUCCESS"}
        assert time.monotonic() - started >= 0.2
        assert len(reports(client)) == 1

    def test_login_target(self, client: FlaskClient) -> None:
        """A fault aimed at the login fails the login and leaves reports alone."""
        client.post("/api/faults", json={"target": "login", "status": 502, "count": 1})
        assert post(client, spec_example()).status_code == 200
        args = {"dev_sno": "A1", "hex_mac": "0xe0a509000e6d"}
        assert client.get("/api/gateway/login", query_string=args).status_code == 502
        assert client.get("/api/gateway/login", query_string=args).status_code == 200

    @pytest.mark.parametrize(
        ("doc", "message"),
        [
            ([], "expected a JSON object"),
            ({"status": 99}, "status must be"),
            ({"status": "503"}, "status must be"),
            ({"delay": -1}, "delay must be"),
            ({"count": 0}, "count must be"),
            ({"retry_after": -5}, "retry_after must be"),
            ({"target": "page"}, "target must be"),
            ({"stauts": 503}, "unknown key 'stauts'"),
        ],
    )
    def test_bad_fault(self, client: FlaskClient, doc: object, message: str) -> None:
        """A fault request that cannot be honoured is a 400 naming the key."""
        answer = client.post("/api/faults", json=doc)
        assert answer.status_code == 400
        assert answer.get_json()["message"].startswith(message)


class TestPage:
    def test_index(self) -> None:
        """The page is HTML that loads its own script and style, with a strict CSP."""
        answer = create_app(strict=True, faults=True).test_client().get("/")
        assert answer.status_code == 200
        assert answer.mimetype == "text/html"
        html = answer.get_data(as_text=True)
        assert "/static/app.js" in html
        assert "/static/style.css" in html
        assert "strict" in html
        assert "fault injection on" in html
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]

    @pytest.mark.parametrize("name", ["app.js", "style.css"])
    def test_static(self, client: FlaskClient, name: str) -> None:
        """The script and style are served locally, not from a CDN."""
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200
        assert answer.get_data()
        answer.close()

    def test_no_remote_resources(self, client: FlaskClient) -> None:
        """Nothing on the page points outside the receiver."""
        html = client.get("/").get_data(as_text=True)
        for name in ("app.js", "style.css"):
            answer = client.get(f"/static/{name}")
            html += answer.get_data(as_text=True)
            answer.close()
        assert "http://" not in html
        assert "https://" not in html


class TestFormats:
    """The receiver checks one payload version and says which versions each body matches."""

    def test_reports_say_which_versions_match(self, client: FlaskClient) -> None:
        """/api/reports entries carry `formats`: the versions the body conforms to."""
        post(client, spec_example())
        post(client, v2_report())

        assert [r["formats"] for r in reports(client)] == [["v1"], ["v2"]]

    def test_v2_receiver_checks_v2(self) -> None:
        """With fmt="v2" a v2 body is clean and a v1 body has violations; strict refuses it."""
        client = create_app(strict=True, fmt="v2").test_client()

        assert post(client, v2_report()).status_code == 200
        refused = post(client, spec_example())
        assert refused.status_code == 422
        assert "sub_devices[0].ep_ext_data: required key is missing" in (
            refused.get_json()["violations"])

    def test_page_names_the_version_checked(self) -> None:
        """The page's header says which version reports are checked against."""
        page = create_app(fmt="v2").test_client().get("/").get_data(as_text=True)

        assert "checks v2" in page


def gateway_report(sn: str, gateway_status: str = "online",
                   **devices: str) -> dict[str, Any]:
    """The spec's example for gateway `sn`, with the sub-devices {ip: ep_status} given."""
    report = spec_example()
    report["gateway_sn"], report["gateway_status"] = sn, gateway_status
    report["sub_devices"] = [device(ip.replace("_", "."), ep_status=status)
                             for ip, status in devices.items()]
    return report


class TestFilters:
    OTHER = "SZCCKQRAIJBAH0001"

    def test_gateway_filter_is_honoured(self, client: FlaskClient) -> None:
        """/api/reports?gateway=SN lists that gateway's reports only."""
        post(client, gateway_report(SN, **{"10_0_0_1": "online"}), f"{SN}-b-1")
        post(client, gateway_report(self.OTHER, **{"10_0_0_2": "online"}), f"{self.OTHER}-b-1")
        answer = client.get("/api/reports", query_string={"gateway": self.OTHER})
        assert [r["report_id"] for r in answer.get_json()] == [f"{self.OTHER}-b-1"]

    def test_device_filter_and_since_combine(self, client: FlaskClient) -> None:
        """?device=IP keeps the reports that list that sub-device; with gateway and since too."""
        post(client, gateway_report(SN, **{"10_0_0_1": "online"}), f"{SN}-b-1")
        post(client, gateway_report(SN, **{"10_0_0_2": "online"}), f"{SN}-b-2")
        post(client, gateway_report(SN, **{"10_0_0_1": "offline"}), f"{SN}-b-3")
        first = reports(client)[0]["received_at"]
        answer = client.get("/api/reports", query_string={
            "gateway": SN, "device": "10.0.0.1", "since": first})
        assert [r["report_id"] for r in answer.get_json()] == [f"{SN}-b-3"]
        answer = client.get("/api/reports", query_string={"device": "10.0.0.9"})
        assert answer.get_json() == []


class TestTimeline:
    def test_device_changes_only(self, client: FlaskClient) -> None:
        """A device's timeline lists its status changes, not every report; gone is 'absent'."""
        steps = [{"10_0_0_1": "online"}, {"10_0_0_1": "online"}, {"10_0_0_1": "offline"},
                 {"10_0_0_2": "online"}, {"10_0_0_1": "online"}]
        for seq, devices in enumerate(steps):
            post(client, gateway_report(SN, **devices), f"{SN}-b-{seq}")
        answer = client.get("/api/timeline", query_string={"gateway": SN, "device": "10.0.0.1"})
        doc = answer.get_json()
        assert (doc["gateway"], doc["device"]) == (SN, "10.0.0.1")
        assert [(c["status"], c["report_id"]) for c in doc["changes"]] == [
            ("online", f"{SN}-b-0"), ("offline", f"{SN}-b-2"), ("absent", f"{SN}-b-3"),
            ("online", f"{SN}-b-4"),
        ]

    def test_gateway_status_timeline(self, client: FlaskClient) -> None:
        """Without device, the gateway's own gateway_status changes."""
        for seq, status in enumerate(["online", "online", "offline"]):
            post(client, gateway_report(SN, status), f"{SN}-b-{seq}")
        doc = client.get("/api/timeline", query_string={"gateway": SN}).get_json()
        assert [c["status"] for c in doc["changes"]] == ["online", "offline"]

    def test_outlives_the_kept_reports(self) -> None:
        """The timeline reaches further back than the `keep` latest reports."""
        client = create_app(keep=1).test_client()
        for seq, status in enumerate(["online", "offline", "offline"]):
            post(client, gateway_report(SN, **{"10_0_0_1": status}), f"{SN}-b-{seq}")
        doc = client.get("/api/timeline",
                         query_string={"gateway": SN, "device": "10.0.0.1"}).get_json()
        assert [c["report_id"] for c in doc["changes"]] == [f"{SN}-b-0", f"{SN}-b-1"]

    def test_gateway_is_required(self, client: FlaskClient) -> None:
        """No gateway: 400 with a reason."""
        answer = client.get("/api/timeline")
        assert answer.status_code == 400
        assert "gateway" in answer.get_json()["message"]
