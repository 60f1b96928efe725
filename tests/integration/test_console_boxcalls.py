"""The later releases' box calls against a real mosquitto, the bridge and the platform:
a value set through a call on the system or the face listener is what the bridge
then says it uses (its retained bridge/settings) and where reports go; a password
changed through a call is the only one that works, on both listeners and after a
restart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests

from console.app import Service
from demo.broker import Broker
from receiver.app import create_app
from receiver.releases import MONITOR_PATH, V6_DEVICES_PATH
from receiver.server import ReceiverServer
from tests.conftest import wait_until
from tests.integration.console_kit import RunningConsole, running_console
from tests.integration.stack import (
    publish_spec_example,
    running_bridge,
    wait_report,
    write_config,
)
from tests.integration.test_console import retained

NEW_PASSWORD = "linaro123456"


def in_force(console: RunningConsole) -> dict[str, Any]:
    """The settings as the console reads them; {} until the bridge has published them."""
    view = console.call("GET", "/api/view").json()
    found: dict[str, Any] = view["settings"] if not view["settings_note"] else {}
    return found


class TestSettingsReachTheBridge:
    def test_v6_system_monitor_config_moves_the_reports(
            self, tmp_path: Path, broker: Broker, platform: ReceiverServer) -> None:
        """setsystemmonitorconfig on the system listener: the bridge takes its URL, period
        and reporter_id from the retained topics and reports there; getsystemmonitorconfig
        then answers what the bridge says it uses."""
        config = write_config(tmp_path / "b.toml", broker, "http://127.0.0.1:9/file")
        publish_spec_example(broker)
        new = f"{platform.url}/DeviceStatus"
        with running_console(config, broker) as console, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            answer = console.call(
                "POST", "/sophon/v2/system/setsystemmonitorconfig", "system",
                json={"device_monitor_url": new, "device_monitor_report_period": 7,
                      "reporter_id": "site-7"})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"device_monitor_url": [new],
                                     "device_monitor_report_period": 7,
                                     "reporter_id": "site-7"}
            assert platform.state.store.wait_for(lambda r: True, timeout=10) is not None
            wait_until(lambda: in_force(console).get("report_url")
                       == {"value": [new], "source": "topic"}, timeout=10,
                       what="the bridge's settings name the new URL")
            assert in_force(console)["report_period"] == {"value": 7, "source": "topic"}
            got = console.call("POST", "/sophon/v2/system/getsystemmonitorconfig", "system")
            assert got.headers["X-SE3-Settings"] == "bridge"
            assert got.json()["device_monitor_url"] == new
            assert got.json()["device_monitor_report_period"] == 7
        assert retained(broker, "reporter_id") == "site-7"

    def test_v5r7_monitor_and_configs(self, tmp_path: Path, broker: Broker,
                                      platform: ReceiverServer) -> None:
        """SophonSystem/api/monitor sets the gateway report as the bridge uses it; a
        refused value is refused by the call and nothing reaches the broker;
        SophonConfig's keys are the retained topics the bridge reads."""
        config = write_config(tmp_path / "b.toml", broker, "http://127.0.0.1:9/file")
        publish_spec_example(broker)
        new = f"{platform.url}/DeviceStatus"
        with running_console(config, broker) as console, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            refused = console.call("PUT", "/SophonConfig/api/Configs", json={
                "config_dict": {"DEV_SNO": "ABC+123"}})
            assert refused.status_code == 400
            assert refused.json()["error"]["message"].startswith("DEV_SNO: must be")
            answer = console.call("POST", "/SophonSystem/api/monitor", "system", json={
                "monitor_address_list": [new], "report_period": 9, "dev_sno": "SNO-9"})
            assert answer.json() == {"data": {"monitor_address_list": [new],
                                              "report_period": 9, "dev_sno": "SNO-9"}}
            wait_until(lambda: in_force(console).get("dev_sno")
                       == {"value": "SNO-9", "source": "topic"}, timeout=10,
                       what="the bridge's settings name the new dev_sno")
            assert in_force(console)["report_url"] == {"value": [new], "source": "topic"}
            assert in_force(console)["report_period"] == {"value": 9, "source": "topic"}
            assert platform.state.store.wait_for(lambda r: True, timeout=10) is not None
            done = console.call("PUT", "/SophonConfig/api/Configs", json={"config_dict": {
                "WEB_HEART_URL": f"{platform.url}/box/monitor/device/status/report",
                "WEB_HEART_TIME": 30, "MQ_LOGIN_URL": f"{platform.url}/api/gateway/login"}})
            assert done.json()["data"]["failed_configs"] == []
            wait_until(lambda: in_force(console).get("login_url")
                       == {"value": f"{platform.url}/api/gateway/login", "source": "topic"},
                       timeout=10, what="the bridge's settings name the new login URL")
            keys = console.call("GET", "/SophonConfig/api/Configs").json()["data"]
            assert keys["DEV_SNO"] == keys["MQ_LICENSE_KEY"] == "SNO-9"
            assert keys["WEB_HEART_TIME"] == keys["MEDIA_DEVICE_MONITOR_REPORT_PEROID"] == 30
            assert keys["LOGIN_TOKEN"] == keys["MQ_LOGIN_TOKEN"] == ""
        assert retained(broker, "devices_report_url") == \
            f"{platform.url}/box/monitor/device/status/report"
        assert retained(broker, "devices_report_period") == "30"


    def test_release_from_the_page_and_both_reports_from_the_calls(
            self, tmp_path: Path, broker: Broker) -> None:
        """The bridge starts as the seed; the console's page switches it to V6R1C01 (no
        restart), setsystemmonitorconfig and setconfigs point its two reports at a V6
        platform: the bridge's settings say so, and each report arrives at its path."""
        v6 = ReceiverServer(create_app(release_name="V6R1C01")).start()
        try:
            config = write_config(tmp_path / "b.toml", broker, "http://127.0.0.1:9/file")
            publish_spec_example(broker)
            with running_console(config, broker) as console, \
                    running_bridge(config, broker, tmp_path / "bridge.log"):
                wait_until(lambda: in_force(console).get("release", {}) != {}, timeout=10,
                           what="the bridge's settings")
                session = requests.Session()
                assert session.post(f"{console.url}/sophon/v2/face/login", timeout=5, json={
                    "username": "admin", "password": console.password}).ok
                page = session.get(f"{console.url}/", timeout=5).text
                token = re.search(r'name="csrf_token" value="([^"]+)"', page)
                assert token is not None
                moved = session.post(f"{console.url}/settings/release", timeout=5, data={
                    "value": "V6R1C01", "csrf_token": token.group(1)})
                assert "Platform release set to V6R1C01" in moved.text
                wait_until(lambda: in_force(console)["release"]["value"] == "V6R1C01",
                           timeout=10, what="the bridge plays V6R1C01")
                assert console.call(
                    "POST", "/sophon/v2/system/setsystemmonitorconfig", "system", json={
                        "device_monitor_url": f"{v6.url}{MONITOR_PATH}",
                        "device_monitor_report_period": 20}).ok
                media = f"{v6.url}{V6_DEVICES_PATH}"
                assert console.call("POST", "/sophon/v2/face/setconfigs", json={"config_dict": {
                    "MEDIA_DEVICE_MONITOR_URL": media,
                    "MEDIA_DEVICE_MONITOR_REPORT_PEROID": 15}}).ok
                wait_until(lambda: in_force(console).get("devices_report_url")
                           == {"value": [media], "source": "topic"}, timeout=10,
                           what="the bridge's settings name the media devices' URL")
                assert in_force(console)["devices_report_period"] == {
                    "value": 15, "source": "topic"}
                box = wait_report(v6, lambda r: r.path == MONITOR_PATH)
                subs = wait_report(v6, lambda r: r.path == V6_DEVICES_PATH)
                assert isinstance(box.payload, dict)
                assert isinstance(subs.payload, dict)
                assert "reporter_id" in box.payload
                assert "media_devices" in subs.payload
                keys = console.call("POST", "/sophon/v2/face/getconfigs", json={}).json()
                assert keys["MEDIA_DEVICE_MONITOR_URL"] == media
                wait_until(lambda: any(t["report"] == "devices" and t["last_at"]
                                       for t in console.call("GET", "/api/view").json()
                                       ["targets"]),
                           timeout=10, what="the media devices' target on the page")
        finally:
            v6.stop()


class TestPasswordChange:
    def test_in_force_on_both_listeners_and_after_a_restart(
            self, tmp_path: Path, broker: Broker) -> None:
        config = write_config(tmp_path / "b.toml", broker)
        with running_console(config, broker) as console:
            old = console.password
            login = console.call("POST", "/sophon/v2/face/login", headers={"Authorization": ""},
                                 json={"username": "admin", "password": old})
            assert login.json() == {"result": True}
            assert "se3_console" in login.cookies
            answer = console.call("POST", "/sophon/v2/system/updatepassword", "system", json={
                "username": "admin", "old_password": old, "new_password": NEW_PASSWORD})
            assert answer.json() == {"data": {"success": True}}
            calls: tuple[tuple[Service, str], ...] = (
                ("face", "/SophonMQ/api/DevSno"), ("system", "/SophonSystem/api/monitor"))
            for service, path in calls:
                assert console.call("GET", path, service).status_code == 401
                console.password = NEW_PASSWORD
                assert console.call("GET", path, service).status_code == 200
                console.password = old
            assert console.call("GET", "/api/view", headers={"Authorization": ""},
                                cookies=login.cookies).status_code == 401  # session ended
        with running_console(config, broker) as restarted:
            restarted.password = NEW_PASSWORD
            assert restarted.call("GET", "/SophonMQ/api/DevSno").status_code == 200
            restarted.password = old
            assert restarted.call("GET", "/SophonMQ/api/DevSno").status_code == 401


@pytest.mark.parametrize("service", ["face", "system"])
def test_each_listener_serves_only_its_calls(tmp_path: Path, broker: Broker,
                                             service: Service) -> None:
    config = write_config(tmp_path / "b.toml", broker)
    theirs = {"face": "/SophonSystem/api/monitor", "system": "/SophonMQ/api/DevSno"}
    ours = {"face": "/SophonMQ/api/DevSno", "system": "/SophonSystem/api/monitor"}
    with running_console(config, broker) as console:
        assert console.call("GET", ours[service], service).status_code == 200
        missing = console.call("GET", theirs[service], service)
        assert missing.status_code == 404
        assert missing.json()["error"]["status"] == "NOT_FOUND"
