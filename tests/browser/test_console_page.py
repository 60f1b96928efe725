"""The console in a real headless Chromium: log in, see the devices, move the reports
with the form and see the new target's first success, at desktop and phone width.

The whole stack is real (mosquitto, the bridge, two reference platforms, the
console); every check waits on the DOM with a deadline (Playwright's `expect`).
Any request the page makes outside the console is aborted and fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from demo.broker import Broker, MosquittoError, find_mosquitto
from receiver.app import create_app
from receiver.server import ReceiverServer
from tests.browser.kit import CHROMIUM, CHROMIUM_ARGS, watched_page
from tests.integration.console_kit import RunningConsole, running_console
from tests.integration.stack import device, publish, publish_spec_example, running_bridge
from tests.integration.stack import write_config as write_bridge_config

EVIL_NAME = "<img src=x onerror=alert(1)>"
WAIT_MS = 10_000

pytestmark = [
    pytest.mark.browser,
    # Chromium drops requests when links come and go (ERR_NETWORK_CHANGED): never
    # beside the tests that make veth links (one xdist group runs on one worker).
    pytest.mark.xdist_group("host-network"),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    try:
        find_mosquitto()
    except MosquittoError as exc:
        pytest.skip(str(exc))
    with Broker(tmp_path / "mqtt") as running:
        yield running


@pytest.fixture
def platforms() -> Iterator[tuple[ReceiverServer, ReceiverServer]]:
    with ReceiverServer(create_app()) as first, ReceiverServer(create_app()) as second:
        yield first, second


@pytest.fixture
def console(
    tmp_path: Path, broker: Broker, platforms: tuple[ReceiverServer, ReceiverServer]
) -> Iterator[RunningConsole]:
    config = write_bridge_config(tmp_path / "b.toml", broker, f"{platforms[0].url}/DeviceStatus")
    publish_spec_example(broker)
    publish(broker, "collector", {
        "devices/127.0.0.11/state": device(ep_name="gate-cam-1", source="devices"),
        "devices/127.0.0.12/state": device("offline", ep_name=EVIL_NAME, ep_type="1"),
    })
    with running_console(config, broker) as running, \
            running_bridge(config, broker, tmp_path / "bridge.log"):
        yield running


@pytest.fixture
def page(console: RunningConsole) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            # 401 answers are expected here: the tests log in and out.
            with watched_page(browser, console.url, "console", height=800,
                              expected_error=lambda text: "401" in text) as opened:
                yield opened
        finally:
            browser.close()


def test_log_in_see_devices_move_reports(
    page: Page, console: RunningConsole, platforms: tuple[ReceiverServer, ReceiverServer],
    tmp_path: Path,
) -> None:
    """The technician's path: log in, read the devices, set a report URL, see it work."""
    page.goto(f"{console.url}/")
    page.fill("input[name=password]", "not it")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    page.fill("input[name=password]", console.password)
    page.click("#login-form button[type=submit]")

    first = page.locator('tr[data-ep-ip="127.0.0.11"]')
    evil = page.locator('tr[data-ep-ip="127.0.0.12"]')
    expect(first.locator(".ep-name")).to_have_text("gate-cam-1", timeout=WAIT_MS)
    expect(first.locator(".ep-status")).to_have_text("online")
    expect(first.locator(".ep-type")).to_have_text("IPC static (2)")
    expect(evil.locator(".ep-name")).to_have_text(EVIL_NAME)
    expect(evil.locator(".ep-type")).to_have_text("capture camera (1)")
    assert page.locator("img").count() == 0
    expect(page.locator(".gw-name")).to_have_text("bm1682landy93")
    expect(page.locator("#conn")).to_have_text("live", timeout=WAIT_MS)
    old = f"{platforms[0].url}/DeviceStatus"
    expect(page.locator(f'tr.target[data-url="{old}"] .last-ok')).not_to_have_text(
        "—", timeout=WAIT_MS)

    new = f"{platforms[1].url}/DeviceStatus"
    page.fill("#input-report_url", new)
    page.click("#form-report_url button[name=set]")
    expect(page.locator(".flash.ok")).to_contain_text(f"Report URL set to {new}")
    row = page.locator(f'tr.target[data-url="{new}"]')
    expect(row.locator(".last-ok")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"),
                                                 timeout=WAIT_MS)
    expect(page.locator("#setting-report_url .value")).to_have_text(new)
    expect(page.locator("#setting-report_url .source")).to_have_text("topic")
    assert platforms[1].state.store.reports()
    page.screenshot(path=str(tmp_path / "console-desktop.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    expect(evil.locator(".ep-name")).to_have_text(EVIL_NAME)
    wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
        .map(e => e.tagName + '.' + e.className + ':' + e.getBoundingClientRect().right)""")
    assert wide == []
    assert page.locator("#form-report_url button[name=set]").is_visible()
    page.screenshot(path=str(tmp_path / "console-phone.png"), full_page=True)


def test_switch_release_and_point_the_sub_device_report(
    page: Page, console: RunningConsole, platforms: tuple[ReceiverServer, ReceiverServer],
) -> None:
    """Pick V6R1C01 from the list: the page shows two reports, offers the sub-device
    report's form, and that report's target gets its first success."""
    page.goto(f"{console.url}/")
    page.fill("input[name=password]", console.password)
    page.click("#login-form button[type=submit]")
    release = page.locator("#setting-release .value")
    expect(release).to_contain_text("V2R2C01", timeout=WAIT_MS)
    assert page.locator("#form-devices_report_url").count() == 0

    page.select_option("#input-release", "V6R1C01")
    page.click("#form-release button[name=set]")
    expect(page.locator(".flash.ok")).to_contain_text("Platform release set to V6R1C01")
    expect(release).to_contain_text("F7 + F8: two reports", timeout=WAIT_MS)
    expect(page.locator("#setting-release .source")).to_have_text("topic")
    page.reload()  # the forms follow the release at each load
    media = f"{platforms[1].url}/DeviceStatus"
    page.fill("#input-devices_report_url", media)
    page.click("#form-devices_report_url button[name=set]")
    expect(page.locator(".flash.ok")).to_contain_text(f"Sub-device report URL set to {media}")
    row = page.locator(f'tr.target[data-report="devices"][data-url="{media}"]')
    expect(row.locator(".report")).to_have_text("sub-devices", timeout=WAIT_MS)
    expect(row.locator(".last-ok")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"),
                                                 timeout=WAIT_MS)
    expect(page.locator("#setting-devices_report_url .source")).to_have_text("topic")


def test_remove_a_stale_device(page: Page, console: RunningConsole) -> None:
    """A device whose record names no publisher is stale: its row says so and its Remove
    button deletes the record; the row is gone after the page comes back."""
    page.goto(f"{console.url}/")
    page.fill("input[name=password]", console.password)
    page.click("#login-form button[type=submit]")
    stale = page.locator('tr[data-ep-ip="127.0.0.12"]')
    expect(stale.locator(".ep-stale")).to_contain_text("its record names no publisher",
                                                       timeout=WAIT_MS)
    stale.locator(".remove-device button").click()
    expect(page.locator(".flash.ok")).to_have_text(
        "Device 127.0.0.12 removed: its record is deleted from the broker.")
    expect(page.locator('tr[data-ep-ip="127.0.0.12"]')).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator('tr[data-ep-ip="127.0.0.11"]')).to_have_count(1)
