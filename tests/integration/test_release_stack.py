"""Every platform release end to end, on the whole stack: a real mosquitto, the gateway and
devices collectors, the console, the bridge configured for the release, and the reference
platform (`se3-receiver`) of the same release, strict.

For each release: the box's login URL set through the console (PUT /SophonMQ/api/LoginUrl)
has the bridge log in with that release's login variant; the release's own box calls then
set the report URLs and periods (MonitorServerUrl up to V2R2C01, SophonSystem/api/monitor
and SophonConfig's WEB_HEART_* for V5R7C01, setsystemmonitorconfig and face setconfigs for
V6); the platform receives exactly the release's report(s), at the vendor's example paths,
with no violation of the release's tables.

And a release switched on the console (config/release) takes effect without a restart of
the broker or the bridge: the next report of each kind is the new release's, complete.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from bridge.releases import RELEASES, Release
from console import calls
from demo.broker import Broker
from receiver import releases as platform_releases
from receiver.app import create_app
from receiver.login import LoginSettings
from receiver.releases import MONITOR_PATH, V5R7_DEVICES_PATH, V6_DEVICES_PATH
from receiver.server import ReceiverServer
from receiver.store import Report
from tests.conftest import wait_until
from tests.integration.console_kit import RunningConsole, running_console
from tests.integration.stack import SN, publish, running_bridge, write_config
from tests.integration.test_collectors import SPARE_IP, run_once
from tests.integration.test_collectors import write_config as collectors_config

DEV_SNO = "ZKZCPI000120190807142601"
# The vendor's example paths (receiver/releases.py serves them)
BOX_PATH = MONITOR_PATH  # the login example's address
# The platform's names of the seed and its MQ variant (receiver/tables.py)
AS_PLATFORM = {"F2": "v1", "F1-MQ": "v2"}
WAIT = 20.0  # seconds for a report under load; a pass does not wait this long


def in_force(console: RunningConsole) -> dict[str, Any]:
    """The settings as the bridge says it uses them (through the console); {} until then."""
    view = console.call("GET", "/api/view").json()
    found: dict[str, Any] = view["settings"] if not view["settings_note"] else {}
    return found


@contextmanager
def stack(tmp_path: Path, broker: Broker, release: str) -> Iterator[
        tuple[ReceiverServer, RunningConsole]]:
    """The platform of `release`, the collectors' records, the console and a bridge of
    `release` with no report URL of its own (the box calls set them)."""
    platform = ReceiverServer(create_app(strict=True, release_name=release)).start()
    try:
        collectors = collectors_config(tmp_path / "collectors.toml", broker, [
            # type 3 (an IPC, dynamic): in every release's value set (F4 has no 2)
            {"ip": SPARE_IP, "location": "loc-12", "type": "3", "probe": "none",
             "url": f"rtsp://{SPARE_IP}:554/ch2"}])
        run_once(broker, collectors, "gateway", "--once")
        run_once(broker, collectors, "devices", "--once")
        config = write_config(tmp_path / "bridge.toml", broker, release=release)
        with running_console(config, broker) as console, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            yield platform, console
    finally:
        platform.stop()


def call(console: RunningConsole, method: str, path: str, service: str = "face",
         **body: Any) -> requests.Response:
    answer = console.call(method, path, service, json=body)  # type: ignore[arg-type]
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
    return answer


def reports_after(platform: ReceiverServer, since: float, path: str) -> Report:
    """The first report posted to `path` after wall time `since`."""
    found = platform.state.store.wait_for(
        lambda r: r.received_at > since and r.path == path, timeout=WAIT)
    assert found is not None, f"no report at {path} within {WAIT} s"
    return found


def log_in(platform: ReceiverServer, console: RunningConsole, rel: Release) -> None:
    """The login URL and code set on the box; the bridge logs in in the release's variant
    and reports where the login says (V5R7C01's sub-device report is set by its own call,
    below: its login (L3) has no key for it)."""
    call(console, "PUT", "/SophonMQ/api/DevSno", dev_sno=DEV_SNO)
    call(console, "PUT", "/SophonMQ/api/LoginUrl", login_url=f"{platform.url}/api/gateway/login")
    wait_until(lambda: any(login["ok"] for login in platform.state.store.logins()),
               timeout=WAIT, what="a login the platform accepts")
    logins = platform.state.store.logins()
    assert {login["variant"] for login in logins} == {rel.login}
    assert all(login["ok"] for login in logins), logins
    if rel.login == "L4":
        assert logins[-1]["device_sn"] == SN
    wait_until(lambda: in_force(console).get("login", {}).get("state") == "ok", timeout=WAIT,
               what="the bridge's settings say it logged in")
    assert in_force(console)["report_url"]["source"] == "login"


def set_by_box_calls(platform: ReceiverServer, console: RunningConsole,
                     rel: Release) -> dict[str, str]:
    """The report URL(s) and period(s) set by the release's own box calls; the path each
    report then goes to, by the bridge's name of the setting. The gateway report goes to
    the platform's other path for it (the login issued the first)."""
    url = platform.url
    box = platform_releases.release(rel.name).gateway.paths[1]
    if rel.name == "V5R7C01":
        call(console, "POST", "/SophonSystem/api/monitor", "system",
             monitor_address_list=[f"{url}{box}"], report_period=7)
        answer = call(console, "PUT", "/SophonConfig/api/Configs", config_dict={
            "WEB_HEART_URL": f"{url}{V5R7_DEVICES_PATH}", "WEB_HEART_TIME": 9})
        assert answer.json()["data"]["failed_configs"] == []
        return {"report_url": box, "devices_report_url": V5R7_DEVICES_PATH}
    if rel.login == "L4":
        call(console, "POST", "/sophon/v2/system/setsystemmonitorconfig", "system",
             device_monitor_url=f"{url}{box}", device_monitor_report_period=7,
             reporter_id="site-7")
        call(console, "POST", "/sophon/v2/face/setconfigs", config_dict={
            "MEDIA_DEVICE_MONITOR_URL": f"{url}{V6_DEVICES_PATH}",
            "MEDIA_DEVICE_MONITOR_REPORT_PEROID": 9})
        return {"report_url": box, "devices_report_url": V6_DEVICES_PATH}
    # The SE3 releases: MonitorServerUrl (documented up to V2R2C01; served for every one)
    call(console, "POST", "/SophonFogSys/api/MonitorServerUrl",
         monitor_server_url=f"{url}{box}", reported_peroid=7, **{"content-type": "json"})
    return {"report_url": box}


@pytest.mark.parametrize("name", list(RELEASES))
def test_release_on_the_whole_stack(tmp_path: Path, broker: Broker, name: str) -> None:
    rel = RELEASES[name]
    with stack(tmp_path, broker, name) as (platform, console):
        log_in(platform, console, rel)
        # What the login issues: the first path of each report the login can name
        routes = platform_releases.release(name).routes
        for route in routes if rel.login == "L4" else routes[:1]:
            reports_after(platform, 0.0, route.paths[0])

        since = platform.state.store.reports()[-1].received_at
        paths = set_by_box_calls(platform, console, rel)
        settings = {"report_url": "report_period",
                    "devices_report_url": "devices_report_period"}
        wanted: dict[str, object] = {}
        for setting, path in paths.items():
            wanted[setting] = {"value": [f"{platform.url}{path}"], "source": "topic"}
            wanted[settings[setting]] = {"value": 7 if setting == "report_url" else 9,
                                         "source": "topic"}
        wait_until(lambda: {k: in_force(console).get(k) for k in wanted} == wanted,
                   timeout=WAIT, what=f"{wanted} in force")
        got = {path: reports_after(platform, since, path) for path in paths.values()}
        if rel.login == "L4":
            assert platform.state.store.wait_for(
                lambda r: isinstance(r.payload, dict)
                and r.payload.get("reporter_id") == "site-7", timeout=WAIT) is not None

    everything = platform.state.store.reports()
    assert [(r.path, r.violations) for r in everything if r.violations or r.rejected] == []
    # Each report is one of the release's (by the platform's tables), and each of them came
    expected = {AS_PLATFORM.get(fmt, fmt) for fmt in rel.reports}
    assert [r.formats for r in everything if not set(r.formats) & expected] == []
    assert {f for r in got.values() for f in r.formats if f in expected} == expected
    if rel.login == "L4":  # setsystemmonitorconfig's reporter_id is the report's from then on
        last = [r.payload for r in everything if r.received_at > since and r.format == "F7"][-1]
        assert isinstance(last, dict)
        assert last["reporter_id"] == "site-7"


def test_release_switch_without_a_restart(tmp_path: Path, broker: Broker) -> None:
    """The seed to V6R1C01 on the console: the same broker and bridge send F7 and F8
    from then on, each complete (every device), to a V6 platform."""
    v6 = ReceiverServer(create_app(strict=True, release_name="V6R1C01")).start()
    try:
        with stack(tmp_path, broker, "V2R2C01") as (seed, console):
            call(console, "POST", "/SophonFogSys/api/MonitorServerUrl",
                 monitor_server_url=f"{seed.url}/DeviceStatus", reported_peroid=30,
                 **{"content-type": "json"})
            first = reports_after(seed, 0.0, "/DeviceStatus")
            assert "v1" in first.formats  # the seed, F2
            # What the console's settings form does with "V6R1C01" (pages.change)
            console.state.publish([calls.setting("release", "V6R1C01", "release")])
            wait_until(lambda: in_force(console).get("release", {}).get("value") == "V6R1C01",
                       timeout=WAIT, what="the bridge's settings name the new release")
            # then the box moved to the V6 platform by the V6 calls
            call(console, "POST", "/sophon/v2/system/setsystemmonitorconfig", "system",
                 device_monitor_url=f"{v6.url}{BOX_PATH}", device_monitor_report_period=30)
            call(console, "POST", "/sophon/v2/face/setconfigs", config_dict={
                "MEDIA_DEVICE_MONITOR_URL": f"{v6.url}{V6_DEVICES_PATH}",
                "MEDIA_DEVICE_MONITOR_REPORT_PEROID": 30})
            box = reports_after(v6, 0.0, BOX_PATH)
            media = reports_after(v6, 0.0, V6_DEVICES_PATH)
    finally:
        v6.stop()
    assert (box.format, media.format) == ("F7", "F8")
    assert (box.violations, media.violations) == ((), ())
    devices = media.payload["media_devices"] if isinstance(media.payload, dict) else None
    assert [d["media_device_ip"] for d in devices or []] == [SPARE_IP]


def test_v6_login_token_on_both_reports(tmp_path: Path, broker: Broker) -> None:
    """Both reports of V6 go to the addresses its login (L4) issued with the login's token
    (a platform that requires it stores nothing without it), and both follow a token the
    platform replaced: the first 401 has the bridge log in again. At SIGTERM each report
    goes a last time."""
    platform = ReceiverServer(create_app(
        strict=True, release_name="V6R1C01", require_token=True,
        login=LoginSettings(period=2))).start()  # the next reports soon after a new token
    try:
        collectors = collectors_config(tmp_path / "collectors.toml", broker, [
            {"ip": SPARE_IP, "location": "loc-12", "type": "3", "probe": "none"}])
        run_once(broker, collectors, "gateway", "--once")
        run_once(broker, collectors, "devices", "--once")
        login = f"{platform.url}/api/gateway/login"
        config = write_config(tmp_path / "bridge.toml", broker, release="V6R1C01",
                              login_url=login)
        with running_bridge(config, broker, tmp_path / "bridge.log") as bridge:
            for path in (BOX_PATH, V6_DEVICES_PATH):
                reports_after(platform, 0.0, path)
            # Another login as this box: the bridge's token is no longer the current one.
            replaced = requests.get(login, params={"mq_license_key": DEV_SNO,
                                                   "device_sn": SN}, timeout=10)
            assert replaced.status_code == 200
            since = platform.state.store.reports()[-1].received_at
            for path in (BOX_PATH, V6_DEVICES_PATH):
                reports_after(platform, since, path)
            stopping = platform.state.store.reports()[-1].received_at
            assert bridge.terminate() == 0
        # SIGTERM: the last report of each kind, the box's saying it goes offline
        last = {r.path: r.payload for r in platform.state.store.reports(since=stopping)}
    finally:
        platform.stop()
    assert set(last) == {BOX_PATH, V6_DEVICES_PATH}
    box = last[BOX_PATH]
    assert isinstance(box, dict)
    assert box["gateway_status"] == "offline"
    logins = platform.state.store.logins()
    assert [entry["variant"] for entry in logins] == ["L4"] * len(logins)
    assert len(logins) >= 3  # the bridge's, the other one, the bridge's again


def test_snapshot_of_a_two_report_release_shows_both(tmp_path: Path, broker: Broker) -> None:
    """`se3-bridge snapshot` under V6R1C01, switched to it by config/release: F7 and F8, by
    format, each as it would be sent."""
    collectors = collectors_config(tmp_path / "collectors.toml", broker, [
        {"ip": SPARE_IP, "location": "loc-12", "type": "3", "probe": "none"}])
    run_once(broker, collectors, "gateway", "--once")
    run_once(broker, collectors, "devices", "--once")
    publish(broker, "operator", {"config/release": b"V6R1C01"})
    config = write_config(tmp_path / "bridge.toml", broker)  # the seed in the file

    done = subprocess.run(
        [sys.executable, "-m", "bridge", "snapshot", "--config", str(config)],
        env={**os.environ, **broker.env("monitor")}, capture_output=True, text=True,
        timeout=30, check=False)

    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert list(shown) == ["F7", "F8"]
    assert shown["F7"]["gateway_sn"] == SN
    assert [d["media_device_ip"] for d in shown["F8"]["media_devices"]] == [SPARE_IP]
