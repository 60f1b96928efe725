"""The console's view of device records: the collectors' and the apps', one publisher
an address as the bridge has it."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from console.present import stale
from console.view import View
from tests.unit.console_kit import BASE

RECORD = {"ep_status": "online", "ep_type": "2", "ep_location": "gate"}


def _put(view: View, topic: str, record: Mapping[str, object] | None = None) -> None:
    view.apply(f"{BASE}/{topic}", b"" if record is None else orjson.dumps(record))


class TestDevicesOfEveryPublisher:
    def test_an_app_s_device_is_its_own(self) -> None:
        """Shown with the app's user as its source; its status is the app's."""
        view = View(BASE)
        _put(view, "apps/app-cam/devices/10.0.0.1/state", RECORD)
        snap = view.snapshot()
        assert snap.devices["10.0.0.1"].data["source"] == "app-cam"
        assert snap.owners == {"10.0.0.1": "app-cam"}
        assert stale(snap, "10.0.0.1", 0.0) == "publisher app-cam has no status"
        view.apply(f"{BASE}/apps/app-cam/status", b"online")
        assert stale(view.snapshot(), "10.0.0.1", 0.0) == ""

    def test_an_app_naming_another_source_is_refused(self) -> None:
        view = View(BASE)
        _put(view, "apps/app/devices/10.0.0.1/state", {**RECORD, "source": "devices"})
        assert view.snapshot().devices == {}

    def test_one_publisher_an_address(self) -> None:
        """The first held record's publisher keeps the address: another's update or
        deletion is not taken; once the holder deletes, the address is free."""
        view = View(BASE)
        _put(view, "apps/app/devices/10.0.0.1/state", RECORD)
        _put(view, "devices/10.0.0.1/state", {**RECORD, "ep_status": "offline"})
        _put(view, "devices/10.0.0.1/state")
        snap = view.snapshot()
        assert (snap.owners["10.0.0.1"], snap.devices["10.0.0.1"].data["ep_status"]) == (
            "app", "online")
        _put(view, "apps/app/devices/10.0.0.1/state")
        _put(view, "devices/10.0.0.1/state", {**RECORD, "ep_status": "offline"})
        assert view.snapshot().owners == {"10.0.0.1": ""}

    def test_a_configured_address_is_the_collectors(self) -> None:
        """An address of the config's [[devices]] goes to the collectors' record even when
        an app's came first."""
        view = View(BASE, configured=["10.0.0.1"])
        _put(view, "apps/app/devices/10.0.0.1/state", RECORD)
        _put(view, "devices/10.0.0.1/state", {**RECORD, "source": "devices"})
        _put(view, "apps/app/devices/10.0.0.1/state", {**RECORD, "ep_status": "offline"})
        snap = view.snapshot()
        assert snap.owners == {"10.0.0.1": ""}
        assert snap.devices["10.0.0.1"].data["ep_status"] == "online"

    def test_an_expired_record_is_stale_whoever_published_it(self) -> None:
        view = View(BASE)
        _put(view, "devices/10.0.0.1/state", {**RECORD, "source": "devices", "ts": 100.0,
                                                "ttl": 10})
        view.apply(f"{BASE}/collectors/devices/status", b"online")
        snap = view.snapshot()
        assert stale(snap, "10.0.0.1", 105.0) == ""
        assert stale(snap, "10.0.0.1", 111.0) == "expired"
        assert stale(snap, "10.0.0.2", 111.0) is None
