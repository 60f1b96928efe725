"""The console removes a stale device: a real mosquitto with the project's ACL, the
console as its own broker user, records published by a collector and by an app as
they would, the call and the page's button."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from demo.broker import Broker
from tests.conftest import wait_until
from tests.integration.console_kit import RunningConsole, retained_at, running_console
from tests.integration.stack import BASE, device, publish, write_config

LIVE, GONE, APP, BARE = "127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"


def _records(broker: Broker) -> None:
    """A live collector's device, a device of a collector with no status, an app's device
    whose app went offline, a record without a publisher."""
    publish(broker, "collector-devices", {
        "collectors/devices/status": b"online",
        f"devices/{LIVE}/state": device(source="devices"),
        f"devices/{GONE}/state": device(source="old-collector"),
    })
    publish(broker, "app", {f"apps/app/devices/{APP}/state": device(),
                            "apps/app/status": b"offline"})
    publish(broker, "collector", {f"devices/{BARE}/state": device()})


@pytest.fixture
def console(tmp_path: Path, broker: Broker) -> Iterator[RunningConsole]:
    config = write_config(tmp_path / "b.toml", broker)
    _records(broker)
    with running_console(config, broker) as running:
        wait_until(lambda: len(running.state.view.snapshot().devices) == 4,
                   what="the four device records in the console's view")
        yield running


def _stale(console: RunningConsole) -> dict[str, str]:
    rows = console.call("GET", "/api/view").json()["devices"]
    return {row["ip"]: row["stale"] for row in rows}


class TestRemoveStaleDevice:
    def test_stale_devices_are_named_with_the_reason(self, console: RunningConsole) -> None:
        assert _stale(console) == {
            LIVE: "",
            GONE: "publisher old-collector has no status",
            APP: "publisher app is offline",
            BARE: "its record names no publisher",
        }

    def test_the_call_deletes_where_the_record_lies(
        self, console: RunningConsole, broker: Broker
    ) -> None:
        """The collectors' devices/ and the app's own space: the retained record is gone,
        and the view follows; the live one and an unknown address are refused."""
        for ip, topic in [(GONE, f"{BASE}/devices/{GONE}/state"),
                          (APP, f"{BASE}/apps/app/devices/{APP}/state"),
                          (BARE, f"{BASE}/devices/{BARE}/state")]:
            answer = console.call("DELETE", f"/api/devices/{ip}")
            assert (answer.status_code, answer.json()) == (
                200, {"data": {"deleted": ip, "topic": topic}})
            assert retained_at(broker, topic) is None
        wait_until(lambda: set(console.state.view.snapshot().devices) == {LIVE},
                   what="only the live device left in the view")

        live = console.call("DELETE", f"/api/devices/{LIVE}")
        assert live.status_code == 409
        assert "publisher devices is online" in live.json()["error"]["message"]
        assert retained_at(broker, f"{BASE}/devices/{LIVE}/state") is not None
        missing = console.call("DELETE", "/api/devices/127.0.0.99")
        assert missing.status_code == 404
        bad = console.call("DELETE", "/api/devices/not-an-ip")
        assert bad.status_code == 400

    def test_a_deletion_the_broker_refuses_is_not_a_success(
        self, tmp_path: Path, broker: Broker
    ) -> None:
        """A console user the ACL does not let delete device records: 502, record kept."""
        config = write_config(tmp_path / "b.toml", broker)
        _records(broker)
        with running_console(config, broker, role="operator") as console:
            wait_until(lambda: GONE in console.state.view.snapshot().devices,
                       what="the stale device in the view")
            answer = console.call("DELETE", f"/api/devices/{GONE}")
        assert answer.status_code == 502
        assert "Not authorized" in answer.json()["error"]["message"]
        assert retained_at(broker, f"{BASE}/devices/{GONE}/state") is not None

    def test_the_page_button_needs_its_csrf_token(
        self, console: RunningConsole, broker: Broker
    ) -> None:
        """The page shows Remove for stale devices only; its form deletes with the page's
        CSRF token, and nothing without it. The call with the session cookie alone is
        refused (a cross-site form could send that)."""
        session = requests.Session()
        login = session.get(f"{console.url}/login", timeout=5).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', login)
        assert token is not None
        session.post(f"{console.url}/login", timeout=5, data={
            "username": "admin", "password": console.password, "csrf_token": token.group(1)})
        page = session.get(f"{console.url}/", timeout=5).text
        removable = set(re.findall(r'action="/devices/([^/"]+)/remove"', page))
        assert removable == {GONE, APP, BARE}
        page_token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert page_token is not None
        topic = f"{BASE}/devices/{GONE}/state"

        forged = session.post(f"{console.url}/devices/{GONE}/remove", timeout=5, data={})
        assert forged.status_code == 403  # the app's answer to a missing CSRF token
        by_cookie = session.delete(f"{console.url}/api/devices/{GONE}", timeout=5)
        assert by_cookie.status_code == 401
        assert retained_at(broker, topic) is not None

        done = session.post(f"{console.url}/devices/{GONE}/remove", timeout=5,
                            data={"csrf_token": page_token.group(1)})
        assert done.status_code == 200  # back on the page, after the redirect
        assert f"Device {GONE} removed" in done.text
        assert retained_at(broker, topic) is None
        refused = session.post(f"{console.url}/devices/{LIVE}/remove", timeout=5,
                               data={"csrf_token": page_token.group(1)})
        assert f"Device {LIVE} not removed" in refused.text
