"""The reference platform playing each release: its login variant, its report paths, its
tables, and what the page is given to show of each report."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest
from flask.testing import FlaskClient

from receiver.app import LoginSettings, create_app, state_of
from receiver.conformance import check_query, inspect
from receiver.releases import RELEASES, checked, release
from receiver.tables import FORMATS, FormatName
from tests.unit.test_receiver_vendor_examples import FIXES, in_table_order, load

SN = "HQDZKE5BJJFJH0042"
CODE = "AFVKQF000120210604151110"
JSON_UTF8 = "application/json; charset=utf-8"
SE3_LOGIN = {"dev_sno": CODE, "hex_mac": "0xe0a509000e6d"}
V6_LOGIN = {"mq_license_key": CODE, "device_sn": SN}


def example(name: FormatName) -> dict[str, Any]:
    """The vendor's example of format `name`, repaired to its table."""
    report = copy.deepcopy(load(name))
    FIXES[name](report)
    fixed: dict[str, Any] = in_table_order(FORMATS[name].keys, report)
    return fixed


def post(client: FlaskClient, path: str, report: dict[str, Any]) -> Any:
    """POST `report` as the bridge does: X-Report-Id {gateway_sn}-{boot}-{seq}."""
    report_id = f"{report.get('gateway_sn', 'devices')}-b-1"
    return client.post(path, data=json.dumps(report, ensure_ascii=False).encode(),
                       headers={"Content-Type": JSON_UTF8, "X-Report-Id": report_id})


def client_of(name: str, **kwargs: Any) -> FlaskClient:
    return create_app(release_name=name, **kwargs).test_client()


class TestTable:
    def test_every_release_of_the_vendor(self) -> None:
        """The thirteen releases, each with a login variant and a format per report."""
        assert list(RELEASES) == [
            "V2R1C01", "V2R2C01", "V2R3C01", "V2R4C01", "V2R6C01", "V5R2C01", "V5R3C01",
            "V5R4C01", "V5R5C01", "V5R6C01", "V5R7C01", "V6R1C01", "V6R2C01"]
        shown = {name: (r.login, [route.formats[0] for route in r.routes])
                 for name, r in RELEASES.items()}
        assert shown["V2R1C01"] == ("L0", ["F1"])
        assert shown["V2R2C01"] == ("L1", ["v1"])
        assert shown["V2R4C01"] == ("L2", ["v1"])
        assert shown["V2R6C01"] == shown["V5R6C01"] == ("L3", ["F4"])
        assert shown["V5R7C01"] == ("L3", ["F5", "F6"])
        assert shown["V6R1C01"] == shown["V6R2C01"] == ("L4", ["F7", "F8"])

    def test_what_each_route_carries_is_what_its_format_carries(self) -> None:
        """A gateway route's formats carry the gateway, a devices route's the devices alone."""
        for rel in RELEASES.values():
            for route in rel.routes:
                wanted = {"devices"} if route.kind == "devices" else {"gateway", "both"}
                assert {FORMATS[f].carries for f in route.formats} <= wanted, rel.name

    def test_a_variant_is_checked_first_when_asked(self) -> None:
        """--format picks one of the release's formats; one it does not offer is refused."""
        assert checked(release("V2R6C01"), "F3").gateway.formats == ("F3", "F4")
        with pytest.raises(ValueError, match="reports in F7, not v1"):
            checked(release("V6R1C01"), "v1")
        with pytest.raises(ValueError, match="unknown release 'V9R9C09'"):
            release("V9R9C09")


class TestLoginVariants:
    def test_l0_has_no_message_and_the_old_names(self) -> None:
        body = client_of("V2R1C01").get("/api/gateway/login", query_string=SE3_LOGIN).get_json()
        assert list(body) == ["token", "imgServerAddr", "deviceMonitorAddr",
                              "deviceMonitorPeriod", "rabbitmq", "arguments"]

    @pytest.mark.parametrize(("name", "switches"), [
        ("V2R2C01", []),
        ("V2R3C01", ["recordUploadReg", "recordUploadSpotPic", "recordUploadRecognizeFace"]),
        ("V5R7C01", ["recordUploadReg", "recordUploadSpotPic", "recordUploadRecognizeFace",
                     "recordUploadInfo"]),
    ])
    def test_l1_to_l3_add_their_switches(self, name: str, switches: list[str]) -> None:
        body = client_of(name).get("/api/gateway/login", query_string=SE3_LOGIN).get_json()
        assert list(body) == ["token", "imgServerAddr", *switches, "deviceMonitorAddr",
                              "deviceMonitorPeriod", "rabbitmq", "arguments", "message"]

    def test_v5r7_issues_only_the_box_report(self) -> None:
        """L3 has no key for a second address: V5R7C01's sub-device report is set on the box
        (WEB_HEART_URL), never by the login."""
        body = client_of("V5R7C01").get("/api/gateway/login", query_string=SE3_LOGIN).get_json()
        assert body["deviceMonitorAddr"] == "/box/monitor/status/report"

    def test_l4_renames_everything_and_issues_both_reports(self) -> None:
        client = client_of("V6R1C01")
        answer = client.get("/api/gateway/login", query_string=V6_LOGIN)
        assert answer.status_code == 200
        body = answer.get_json()
        assert len(body.pop("mq_login_token")) == 32
        assert body == {
            "mq_login_status": 0,
            "mq_img_server_addr": "",
            "media_device_monitor_url": "/box/media/monitor/status/report",
            "media_device_monitor_report_period": 20,
            "device_monitor_url": "/box/monitor/status/report",
            "device_monitor_report_period": 20,
            "mq_server_configs": {
                "mq_server_ip": "127.0.0.1", "mq_server_port": 5672, "mq_username": CODE,
                "mq_password": "",
                "mq_exchange": {"mq_exchange_name": f"exchange-dev-{CODE}",
                                "mq_exchange_type": "topic", "mq_exchange_passive": False,
                                "mq_exchange_durable": True,
                                "mq_exchange_auto_delete": False},
                "mq_down_queue": f"queue-dev-{CODE}",
            },
        }
        [login] = client.get("/api/logins").get_json()
        assert (login["dev_sno"], login["device_sn"], login["variant"]) == (CODE, SN, "L4")

    def test_l4_takes_its_examples_dev_sno(self) -> None:
        """Its own example URL still says dev_sno=...; that is taken for mq_license_key."""
        answer = client_of("V6R2C01").get("/api/gateway/login",
                                          query_string={"dev_sno": CODE, "device_sn": SN})
        assert answer.status_code == 200

    @pytest.mark.parametrize(("args", "reason"), [
        ({"device_sn": SN}, "mq_license_key is missing"),
        ({"mq_license_key": CODE}, "device_sn is missing"),
        ({"mq_license_key": CODE, "device_sn": "HQ DZ"}, "device_sn: must be"),
        ({**V6_LOGIN, "hex_mac": "e0a509000e6d"}, "hex_mac must be"),
    ])
    def test_l4_refusals(self, args: dict[str, str], reason: str) -> None:
        answer = client_of("V6R1C01").get("/api/gateway/login", query_string=args)
        assert answer.status_code == 400
        assert answer.get_json()["message"].startswith(reason)

    def test_addresses_set_replace_the_releases(self) -> None:
        settings = LoginSettings("http://127.0.0.1:9/a", 7, devices_address="/m")
        body = create_app(login=settings, release_name="V6R1C01").test_client().get(
            "/api/gateway/login", query_string=V6_LOGIN).get_json()
        assert (body["device_monitor_url"], body["media_device_monitor_url"]) == (
            "http://127.0.0.1:9/a", "/m")
        assert body["device_monitor_report_period"] == 7


class TestRoutes:
    @pytest.mark.parametrize(("name", "path", "fmt"), [
        ("V2R1C01", "/DeviceStatus", "F1"),
        ("V2R6C01", "/box/monitor/status/report", "F4"),
        ("V5R7C01", "/box/monitor/status/report", "F5"),
        ("V5R7C01", "/box/monitor/device/status/report", "F6"),
        ("V6R1C01", "/box/monitor/status/report", "F7"),
        ("V6R1C01", "/DeviceStatus", "F7"),
        ("V6R1C01", "/box/media/monitor/status/report", "F8"),
    ])
    def test_each_report_at_its_path_against_its_table(
        self, name: str, path: str, fmt: FormatName
    ) -> None:
        """The vendor's example, repaired to its table, is clean at its release's path."""
        client = client_of(name, strict=True)
        answer = post(client, path, example(fmt))
        assert answer.status_code == 200, answer.get_json()
        [kept] = client.get("/api/reports").get_json()
        assert (kept["format"], kept["path"], kept["violations"]) == (fmt, path, [])

    def test_a_report_of_another_release_is_refused_when_strict(self) -> None:
        """A seed report sent to a V6 platform is checked as F7 and refused."""
        client = client_of("V6R1C01", strict=True)
        answer = post(client, "/box/monitor/status/report", example("F2"))
        assert answer.status_code == 422
        assert "reporter_id: required key is missing" in answer.get_json()["violations"]

    def test_paths_of_other_releases_are_not_served(self) -> None:
        client = client_of("V2R2C01")
        assert post(client, "/box/media/monitor/status/report", example("F8")).status_code == 404

    def test_variants_are_named_when_matched(self) -> None:
        """V2R6C01 checks F4; an F3 body is flagged against F4 but said to match F3."""
        client = client_of("V2R6C01")
        post(client, "/DeviceStatus", example("F3"))
        [kept] = client.get("/api/reports").get_json()
        assert kept["formats"] == ["F3"]
        assert kept["violations"]


def test_a_report_of_the_box_alone_is_logged_without_device_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="receiver.app"):
        post(client_of("V6R1C01"), "/box/monitor/status/report", example("F7"))
    [line] = [r.getMessage() for r in caplog.records if r.name == "receiver.app"]
    assert line == (f"report {SN}-b-1 (F7 at /box/monitor/status/report) from gateway {SN} "
                    "(online): 0 violations, matches F7")


class TestMeasured:
    def test_unmeasured_values_are_noted_not_violations(self) -> None:
        """A box without a TPU or a fan leaves those out: noted, not refused."""
        report = example("F7")
        ext = report["gateway_ext_data"]
        del ext["tpu_info"], ext["memory_info"]["tpu"]
        ext["cpu_info"]["cpu_freg"] = ""
        client = client_of("V6R1C01", strict=True)
        assert post(client, "/box/monitor/status/report", report).status_code == 200
        [kept] = client.get("/api/reports").get_json()
        assert kept["violations"] == []
        assert sorted(kept["unmeasured"]) == ["gateway_ext_data.cpu_info.cpu_freg",
                                              "gateway_ext_data.memory_info.tpu",
                                              "gateway_ext_data.tpu_info"]

    def test_a_wrong_measured_value_is_still_a_violation(self) -> None:
        report = example("F7")
        report["gateway_ext_data"]["fan_speed"] = "4400r/min"
        report["gateway_ext_data"]["tpu_info"]["tpu_usage"] = 14
        assert inspect(report, "F7").violations == [
            "gateway_ext_data.fan_speed: expected a number, got a string ('4400r/min')",
            "gateway_ext_data.tpu_info.tpu_usage: 14 is out of range 0..1",
        ]

    def test_what_is_not_measured_is_required_all_the_same(self) -> None:
        """reporter_id names the box, it is not measured: leaving it out is a violation."""
        report = example("F7")
        del report["reporter_id"]
        assert inspect(report, "F7").violations == ["reporter_id: required key is missing"]


class TestQuery:
    def test_media_report_names_the_code_of_the_query(self) -> None:
        """F8 carries the code as mq_license_key: a login-issued address's dev_sno must be it;
        F7's reporter_id may be another id by design, so it is not compared."""
        media, system = example("F8"), example("F7")
        assert check_query(CODE, media, "F8") == []
        assert check_query("OTHER", media, "F8") == [
            f"query dev_sno: 'OTHER' is not the body's mq_license_key '{CODE}'"]
        assert check_query("OTHER", system, "F7") == []


class TestDeviceLists:
    def test_f8_ids_and_urls_are_unique(self) -> None:
        report = example("F8")
        first = report["sub_devices"][0]
        report["sub_devices"].append({**first, "media_device_ip": "192.168.1.101"})
        assert inspect(report, "F8").violations == [
            "sub_devices[1].media_device_id: '2c1a6a12-ecf4-4490-a2fc-8d7a5023bfcd' repeats "
            "sub_devices[0]",
            "sub_devices[1].media_device_url: 'rtsp://192.168.1.100:554/ch2' repeats "
            "sub_devices[0]",
        ]

    def test_f6_types_are_media_types(self) -> None:
        report = example("F6")
        report["sub_devices"][0]["ep_type"] = "1"
        assert inspect(report, "F6").violations == [
            "sub_devices[0].ep_type: '1' is not one of photo, rtsp, file, gb28181"]

    def test_f6_ep_id_may_end_in_a_stream_url(self) -> None:
        report = example("F6")
        report["sub_devices"][0]["ep_id"] = f"{CODE}__rtsp://192.168.1.101:554/ch2"
        assert inspect(report, "F6").violations == []


class TestView:
    def test_devices_report_is_kept_under_its_code(self) -> None:
        """A report of devices alone names its box by its code; its devices have timelines."""
        app = create_app(release_name="V6R1C01")
        client = app.test_client()
        post(client, "/box/media/monitor/status/report", example("F8"))
        [kept] = client.get("/api/reports").get_json()
        view = kept["view"]
        assert (view["identity"], view["identity_key"], view["carries"]) == (
            CODE, "mq_license_key", "devices")
        assert (view["devices_key"], view["ip"], view["status"]) == (
            "sub_devices", "media_device_ip", "media_device_status")
        assert view["columns"][0] == "media_device_ip"
        store = state_of(app).store
        assert [c["status"] for c in store.timeline(CODE, "192.168.1.100")] == ["online"]
        assert store.timeline(CODE) == []  # no gateway_status in such a report

    def test_gateway_fields_flattened_in_table_order(self) -> None:
        client = client_of("V6R1C01")
        post(client, "/box/monitor/status/report", example("F7"))
        [kept] = client.get("/api/reports").get_json()
        view = kept["view"]
        assert [k for k, _ in view["facts"]] == [
            "gateway_ip", "gateway_name", "gateway_status", "gateway_sn", "gateway_mac",
            "reporter_id"]
        paths = [k for k, _ in view["fields"]]
        assert paths[:2] == ["gateway_ext_data.cpu_info.cur_cpu_usage",
                             "gateway_ext_data.cpu_info.cpu_arch"]
        assert paths[-1] == "gateway_ext_data.tpu_info.tpu_description"
        assert ["gateway_ext_data.fan_speed", 0.0] in view["fields"]

    def test_page_names_the_release(self) -> None:
        page = client_of("V6R1C01").get("/").get_data(as_text=True)
        assert "V6R1C01" in page
        assert "/box/media/monitor/status/report" in page
        assert "L4" in page
