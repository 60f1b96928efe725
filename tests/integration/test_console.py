"""se3-console against a real mosquitto (and, end to end, the bridge and the platform):
each vendor call, its errors, its retained effect, and reports moving where it says."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from bridge.certificate import fingerprint, make_self_signed
from demo.broker import Broker
from receiver.app import create_app
from receiver.server import ReceiverServer
from tests.conftest import collect, wait_until
from tests.integration.console_kit import retained_at, running_console
from tests.integration.stack import BASE, publish_spec_example, running_bridge, write_config

MONITOR = "/SophonFogSys/api/MonitorServerUrl"
LOGIN = "/SophonMQ/api/LoginUrl"
DEV_SNO = "/SophonMQ/api/DevSno"


@pytest.fixture
def second_platform() -> Iterator[ReceiverServer]:
    server = ReceiverServer(create_app()).start()
    yield server
    server.stop()


def retained(broker: Broker, setting: str) -> str | None:
    """The retained payload of config/`setting` as a new subscriber sees it (None: none)."""
    return retained_at(broker, f"{BASE}/config/{setting}")


class TestCalls:
    def test_each_call_sets_its_retained_topic_and_survives_a_restart(
        self, tmp_path: Path, broker: Broker
    ) -> None:
        """Each call publishes its retained config topic; a new console answers the same."""
        config = write_config(tmp_path / "b.toml", broker, "http://127.0.0.1:9/file")
        with running_console(config, broker) as console:
            answer = console.call("POST", MONITOR, json={
                "monitor_server_url": "http://127.0.0.1:9528/DeviceStatus",
                "content-type": "json", "reported_peroid": 30})
            assert (answer.status_code, answer.json()) == (200, {"data": "ok"})
            answer = console.call("PUT", LOGIN, json={"login_url": "http://127.0.0.1:9/login"})
            assert answer.json() == {"data": {"response": "http://127.0.0.1:9/login"}}
            answer = console.call("PUT", DEV_SNO, json={"dev_sno": "TJGSDX000120190726103455"})
            assert answer.json() == {"data": {"response": "TJGSDX000120190726103455"}}
        assert retained(broker, "report_url") == "http://127.0.0.1:9528/DeviceStatus"
        assert retained(broker, "report_period") == "30"
        assert retained(broker, "login_url") == "http://127.0.0.1:9/login"
        with running_console(config, broker) as console:
            wait_until(lambda: console.call("GET", DEV_SNO).json()["data"]["response"]
                       == "TJGSDX000120190726103455", timeout=5, what="retained dev_sno")
            assert console.call("GET", MONITOR).json() == {"data": {
                "monitor_server_url": "http://127.0.0.1:9528/DeviceStatus",
                "reported_peroid": 30}}
            assert console.call("GET", LOGIN).json() == {
                "data": {"response": "http://127.0.0.1:9/login"}}
            # Clearing deletes the retained topic: the file's URL is in force again.
            console.call("POST", MONITOR, data={"monitor_server_url": "",
                                                "reported_peroid": ""})
            wait_until(lambda: console.call("GET", MONITOR).json()["data"]
                       == {"monitor_server_url": "http://127.0.0.1:9/file",
                           "reported_peroid": 30}, timeout=5, what="fallback to the file")
        assert retained(broker, "report_url") is None

    def test_errors_have_the_vendor_shape(self, tmp_path: Path, broker: Broker) -> None:
        """Bad input, wrong method, unknown path, no or wrong credentials: a 4xx that says why."""
        config = write_config(tmp_path / "b.toml", broker)
        cases: list[tuple[str, str, dict[str, Any], int, str]] = [
            ("POST", MONITOR, {"json": {"reported_peroid": 5}}, 400, "monitor_server_url"),
            ("POST", MONITOR, {"json": {"monitor_server_url": "ftp://x/y",
                                        "reported_peroid": 5}}, 400, "monitor_server_url"),
            ("POST", MONITOR, {"json": {"monitor_server_url": "http://x/y",
                                        "reported_peroid": 0}}, 400, "reported_peroid"),
            ("POST", MONITOR, {"json": {"monitor_server_url": "http://x/y",
                                        "reported_peroid": 86401}}, 400, "reported_peroid"),
            ("PUT", LOGIN, {"data": b"login_url=http://x/y",
                            "headers": {"Content-Type": "text/plain"}}, 400, "body"),
            ("PUT", DEV_SNO, {"json": {}}, 400, "dev_sno"),
            ("PATCH", DEV_SNO, {}, 405, "PATCH"),
            ("GET", "/SophonMQ/api/Nope", {}, 404, "/SophonMQ/api/Nope"),
            ("GET", DEV_SNO, {"headers": {"Authorization": ""}}, 401, "log in"),
            ("GET", DEV_SNO, {"headers": {"Authorization": "Bearer wrong"}}, 401, "wrong"),
        ]
        with running_console(config, broker) as console, \
                collect(broker, f"{BASE}/config/#") as topics:
            for method, path, kwargs, status, named in cases:
                answer = console.call(method, path, **kwargs)
                error = answer.json()["error"]
                assert answer.status_code == status, (method, path, error)
                assert error["code"] == status
                assert named in error["message"], (named, error)
                assert isinstance(error["status"], str)
            console.call("PUT", DEV_SNO, json={"dev_sno": "MARK"})
            topics.wait_for_topic(f"{BASE}/config/dev_sno")
        assert [m.text for m in topics.messages] == ["MARK"]  # nothing before it

    def test_a_refused_publish_is_not_a_success(self, tmp_path: Path, broker: Broker) -> None:
        """A role the broker's ACL does not let write config: the call fails (PUBACK 0x87)."""
        config = write_config(tmp_path / "b.toml", broker)
        with running_console(config, broker, role="debug") as console:
            answer = console.call("PUT", DEV_SNO, json={"dev_sno": "NOPE"})
        assert answer.status_code == 502
        assert "Not authorized" in answer.json()["error"]["message"]
        assert retained(broker, "dev_sno") is None

    def test_no_broker_is_not_a_success(self, tmp_path: Path, broker: Broker) -> None:
        config = write_config(tmp_path / "b.toml", broker)
        with running_console(config, broker) as console:
            broker.stop()
            wait_until(lambda: not console.link.is_connected(), timeout=10, what="disconnect")
            answer = console.call("PUT", DEV_SNO, json={"dev_sno": "X"})
        assert answer.status_code == 503
        assert answer.json()["error"]["status"] == "BROKER_ERROR"

    def test_nothing_secret_is_served(self, tmp_path: Path, broker: Broker) -> None:
        """No MQTT password, admin password, URL credential or query in any answer."""
        config = write_config(tmp_path / "b.toml", broker,
                              "http://user:filepw@127.0.0.1:9/x?token=filetoken")
        with running_console(config, broker) as console:
            console.call("PUT", LOGIN, json={"login_url": "http://u:loginpw@127.0.0.1:9/l?k=v"})
            wait_until(lambda: "l" in console.call("GET", LOGIN).json()["data"]["response"])
            answers = [console.call("GET", path).text
                       for path in ("/", "/status", "/api/view", MONITOR, LOGIN, DEV_SNO)]
            secrets = [broker.password(role) for role in ("console", "operator", "bridge", "debug")]
            secrets += [console.password, "filepw", "filetoken", "loginpw", "k=v"]
        for text in answers:
            for secret in secrets:
                assert secret not in text


class TestEndToEnd:
    def test_period_set_by_the_api_and_get_answers_what_the_bridge_uses(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer,
        second_platform: ReceiverServer,
    ) -> None:
        """Reports move to the URL the call set within 2 s of its answer, at the period it set;
        GET answers from the bridge's bridge/settings; the view shows the new target's success."""
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
        publish_spec_example(broker)
        new = f"{second_platform.url}/DeviceStatus"
        with running_console(config, broker) as console, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            platform.state.store.wait_for(lambda r: True, timeout=10)
            answer = console.call("POST", MONITOR, json={
                "monitor_server_url": new, "content-type": "json", "reported_peroid": 1})
            answered = time.time()
            assert answer.status_code == 200
            first = second_platform.state.store.wait_for(lambda r: True, timeout=2.0)
            assert first is not None, "no report at the new URL within 2 s"
            assert first.received_at - answered < 2.0
            later = second_platform.state.store.wait_for(
                lambda r: r.received_at > first.received_at + 1.5, timeout=3.0)
            assert later is not None, "no periodic reports at the new period"
            wait_until(lambda: console.call("GET", MONITOR).headers.get("X-SE3-Settings")
                       == "bridge", timeout=5, what="bridge/settings")
            assert console.call("GET", MONITOR).json() == {"data": {
                "monitor_server_url": new, "reported_peroid": 1}}
            view = console.call("GET", "/api/view").json()
            assert view["settings"]["report_url"] == {"value": [new], "source": "topic"}
            assert view["settings"]["report_period"] == {"value": 1, "source": "topic"}
            (target,) = view["targets"]
            assert target["url"] == new
            assert target["last_ok_at"] is not None

    def test_dev_sno_set_by_the_api_is_reported(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """A dev_sno set by the call reaches the report through the gateway collector."""
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
        buildinfo = tmp_path / "buildinfo.txt"
        buildinfo.write_text("VERSION: V2R1C01\n", encoding="utf-8")
        text = config.read_text(encoding="utf-8").replace("[gateway]\n", (
            f"[gateway]\ndev_sno = \"FILESNO\"\nsw_version_file = \"{buildinfo}\"\n"
            "data_path = \"/\"\n"), 1)
        config.write_text(text, encoding="utf-8")
        new = "TJGSDX000120190726103455"
        with running_console(config, broker) as console, \
                running_bridge(config, broker, tmp_path / "bridge.log"), \
                running_collector(config, broker, "gateway", tmp_path / "gateway.log"):
            platform.state.store.wait_for(lambda r: True, timeout=10)
            answer = console.call("PUT", DEV_SNO, json={"dev_sno": new})
            assert answer.json() == {"data": {"response": new}}
            answered = time.time()
            report = platform.state.store.wait_for(
                lambda r: isinstance(r.payload, dict) and r.payload.get("dev_sno") == new,
                timeout=2.0)
            assert report is not None, "the new dev_sno was not reported within 2 s"
            assert report.received_at - answered < 2.0
            wait_until(lambda: console.call("GET", DEV_SNO).json() == {
                "data": {"response": new, "dev_sno": new}},
                       timeout=5, what="GET DevSno answers the new code")

    def test_login_url_set_by_the_api_logs_in(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """A login URL set by the call makes the bridge log in; the page's view says so."""
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus")
        publish_spec_example(broker)
        with running_console(config, broker) as console, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            platform.state.store.wait_for(lambda r: True, timeout=10)
            assert platform.state.store.logins() == []
            login = f"{platform.url}/api/gateway/login"
            assert console.call("PUT", LOGIN, json={"login_url": login}).status_code == 200
            wait_until(lambda: platform.state.store.logins(), timeout=2.0, what="a login")
            wait_until(lambda: console.call("GET", "/api/view").json()["settings"]["login"]
                       ["state"] == "ok", timeout=5, what="login ok in bridge/settings")
            assert console.call("GET", LOGIN).json() == {"data": {"response": login}}

    def test_report_now_reaches_the_bridge(
        self, tmp_path: Path, broker: Broker, platform: ReceiverServer
    ) -> None:
        """`POST /api/report-now` (the page's button) makes the bridge report at once."""
        config = write_config(tmp_path / "b.toml", broker, f"{platform.url}/DeviceStatus",
                              interval=60)
        publish_spec_example(broker)
        with running_console(config, broker) as console, \
                running_bridge(config, broker, tmp_path / "bridge.log"):
            first = platform.state.store.wait_for(lambda r: True, timeout=10)
            assert first is not None
            assert console.call("POST", "/api/report-now").json() == {"data": "ok"}
            asked = time.time()
            again = platform.state.store.wait_for(
                lambda r: r.received_at > first.received_at, timeout=2.0)
        assert again is not None, "no report within 2 s of asking"
        assert again.received_at - asked < 2.0
        assert retained(broker, "report_now") is None


@contextmanager
def running_collector(config: Path, broker: Broker, name: str, log: Path) -> Iterator[None]:
    """`python -m collectors NAME` as its daemon user, killed at the end."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "collectors", "--config", str(config), name],
            env={**os.environ, **broker.env(f"collector-{name}")},
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def console_process(config: Path, broker: Broker) -> Iterator[tuple[subprocess.Popen[str],
                                                                    list[str]]]:
    """`python -m console` as broker role `console`, and its log up to the line with its
    addresses; killed at the end if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "--config", str(config), "--log-level", "INFO"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, **broker.env("console")}, text=True,
    )
    try:
        assert proc.stderr is not None
        seen: list[str] = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("se3-console: "):
                break
        yield proc, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


class TestCommand:
    def test_se3_console_serves_and_stops(self, tmp_path: Path, broker: Broker) -> None:
        """`python -m console`: makes its 0600 password file, serves both services on free
        ports, exit 0."""
        config = write_config(tmp_path / "b.toml", broker)
        password_file = tmp_path / "secret" / "admin.pass"
        with config.open("a", encoding="utf-8") as fh:
            fh.write(f'\n[console]\nlisten = "127.0.0.1:0"\nsystem_listen = "127.0.0.1:0"\n'
                     f'password_file = "{password_file}"\n')
        with console_process(config, broker) as (proc, seen):
            found = re.search(r"se3-console: (http://\S+)/ .*system service (http://\S+)",
                              seen[-1])
            assert found, seen
            url, system = found.groups()
            assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
            password = password_file.read_text(encoding="utf-8").strip()
            assert len(password) >= 16
            assert requests.get(f"{url}/api/view", timeout=5).status_code == 401
            answer = requests.get(f"{url}/SophonMQ/api/DevSno", auth=("admin", password),
                                  timeout=5)
            assert answer.status_code == 200
            answer = requests.get(f"{system}/SophonSystem/api/monitor",
                                  auth=("admin", password), timeout=5)
            assert answer.status_code == 200
            assert set(answer.json()["data"]) == {"dev_sno", "monitor_address_list",
                                                  "report_period"}
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0


    def test_se3_console_https_fingerprint_in_its_log_and_in_status(
            self, tmp_path: Path, broker: Broker) -> None:
        """`se3-console` with `[console] tls_cert`/`tls_key` serves HTTPS (here on loopback,
        where the tests may listen); the certificate's SHA-256 fingerprint is in its log and
        in `se3-bridge status`, and is the one it serves."""
        cert, key = tmp_path / "tls" / "box.crt", tmp_path / "tls" / "box.key"
        make_self_signed(cert, key, ["localhost"], ["127.0.0.1"])
        config = write_config(tmp_path / "b.toml", broker)
        with config.open("a", encoding="utf-8") as fh:
            fh.write(f'\n[console]\nlisten = "127.0.0.1:0"\nsystem_listen = "127.0.0.1:0"\n'
                     f'password_file = "{tmp_path / "secret" / "admin.pass"}"\n'
                     f'tls_cert = "{cert}"\ntls_key = "{key}"\n')
        with console_process(config, broker) as (proc, seen):
            url = re.search(r"se3-console: (https://\S+)/ ", seen[-1])
            assert url, seen
            print_ = fingerprint(cert)
            assert any(print_ in line for line in seen), seen
            answer = requests.get(f"{url.group(1)}/api/view", verify=str(cert), timeout=5)
            assert answer.status_code == 401
            status = subprocess.run(
                [sys.executable, "-m", "bridge", "--config", str(config), "status", "--wait", "0"],
                env={**os.environ, **broker.env("monitor")}, capture_output=True, text=True,
                timeout=30, check=False)
            shown = f"https://127.0.0.1:0, certificate SHA-256 {print_}"
            assert status.stdout.count(shown) == 2, (status.stdout, status.stderr)  # both listeners
            as_json = subprocess.run(
                [sys.executable, "-m", "bridge", "--config", str(config), "status", "--json",
                 "--wait", "0"], env={**os.environ, **broker.env("monitor")},
                capture_output=True, text=True, timeout=30, check=False)
            listeners = json.loads(as_json.stdout)["console"]
            assert [item["certificate_sha256"] for item in listeners] == [print_, print_]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
