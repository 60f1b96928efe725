"""The receiver's live page in a real headless Chromium, driven by Playwright.

Reports are POSTed while the page is open; every check waits on the DOM with a
deadline (Playwright's `expect`), never on a fixed sleep. Any request the page
makes to somewhere other than the receiver is aborted and fails the test.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from receiver.app import create_app
from receiver.server import ReceiverServer
from tests.browser.kit import CHROMIUM, CHROMIUM_ARGS, watched_page
from tests.unit.test_receiver_releases import example

SN = "SZCCKQRAIJBAH0002"
OTHER_SN = "SZCCKQRAIJBAH0001"
DEV_SNO = "ZKZCPI000120190807142601"
EVIL_NAME = '<img src=x onerror="window.__pwned = 1">'
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


def sub_device(ip: str, status: str, ep_type: str, name: str = "") -> dict[str, Any]:
    return {
        "ep_id": f"{DEV_SNO}__{ip}",
        "ep_name": name,
        "ep_ip": ip,
        "ep_status": status,
        "ep_location": "95274d2c-0941-4d96-b032-ab200f81362c",
        "ep_type": ep_type,
        "ep_url": f"rtsp://{ip}:554/ch2",
    }


def report(*devices: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway_ip": "127.0.0.1",
        "gateway_name": "bm1682landy93",
        "gateway_status": "online",
        "gateway_sn": SN,
        "dev_sno": DEV_SNO,
        "gateway_ext_data": {
            "sw_version": "build.date=2019年 08月 06日 星期二 17:42:49 CST\n"
            "BUILD TIME: 20190806_173257\nVERSION: V2R1C01\n",
            "sdk_version": "1.1.56d1e91",
            "gateway_mac": "e0:a5:09:00:0e:6d",
            "cpu_usage": 6.5,
            "memory_size": 1.55,
            "memory_usage": 0.77,
            "disk_size": 10.39,
            "disk_free_size": 9.41,
            "temperature": 47,
        },
        "sub_devices": list(devices),
    }


def post(server: ReceiverServer, body: dict[str, Any], seq: int, sn: str = SN) -> None:
    request = urllib.request.Request(  # noqa: S310 -- the receiver on loopback
        f"{server.url}/DeviceStatus",
        data=json.dumps(body, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", "X-Report-Id": f"{sn}-t-{seq}"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
        assert answer.status == 200


@pytest.fixture
def server() -> Iterator[ReceiverServer]:
    with ReceiverServer(create_app(), host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, server: ReceiverServer) -> Iterator[Page]:
    with watched_page(browser, server.url, "receiver", height=900) as opened:
        yield opened


def test_page_shows_reports_live(page: Page, server: ReceiverServer, tmp_path: Path) -> None:
    """Reports posted while the page is open appear with their devices, status and violations."""
    page.goto(f"{server.url}/")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("live", timeout=WAIT_MS)

    post(server, report(
        sub_device("127.0.0.11", "online", "1", EVIL_NAME),
        sub_device("127.0.0.12", "offline", "2", "门口摄像头"),
    ), seq=1)  # fmt: skip
    card = page.locator(f'[data-gateway-sn="{SN}"]')
    expect(card).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#empty")).to_be_hidden()
    expect(card.locator(".gw-name")).to_have_text("bm1682landy93")
    expect(card.locator(".gw-status")).to_have_text("online")
    expect(card.locator(".count-online")).to_have_text("1 online")
    expect(card.locator(".count-offline")).to_have_text("1 offline")
    expect(card.locator(".sw-version")).to_contain_text("VERSION: V2R1C01")
    expect(card.locator(".metrics")).to_contain_text("77 % used of 1.55 GB")

    first, second = (
        card.locator('tr[data-ep-ip="127.0.0.11"]'),
        card.locator('tr[data-ep-ip="127.0.0.12"]'),
    )
    expect(first.locator(".ep-status")).to_have_text("online")
    expect(first.locator(".ep-status")).to_have_class(re.compile(r"\bstatus-online\b"))
    expect(first.locator(".ep-type")).to_have_text("capture camera (1)")
    expect(second.locator(".ep-status")).to_have_text("offline")
    expect(second.locator(".ep-status")).to_have_class(re.compile(r"\bstatus-offline\b"))
    expect(second.locator(".ep-type")).to_have_text("IPC static (2)")
    expect(second.locator(".ep-name")).to_have_text("门口摄像头")
    # The untrusted name is text, not markup: no <img> appeared and its handler never ran.
    expect(first.locator(".ep-name")).to_have_text(EVIL_NAME)
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None
    expect(card).not_to_have_class(re.compile(r"\bhas-violations\b"))
    expect(card.locator(".badge.format")).to_have_text("matches v1")
    expect(page.locator("header.top .badge.format")).to_have_text("checks v1 at /DeviceStatus")
    expect(card.locator(".age")).to_have_text(re.compile(r"^[1-9]\d* s ago$"), timeout=WAIT_MS)

    post(server, report(
        sub_device("127.0.0.11", "offline", "1", EVIL_NAME),
        sub_device("127.0.0.12", "online", "9", "门口摄像头"),
    ), seq=2)  # fmt: skip
    expect(card).to_have_class(re.compile(r"\bhas-violations\b"), timeout=WAIT_MS)
    expect(card.locator(".violations")).to_contain_text(
        'sub_devices[1].ep_type: \'9\' is not one of "0".."4"'
    )
    expect(second).to_have_class(re.compile(r"\brow-bad\b"))
    expect(card.locator(".badge.format")).to_have_text("matches no version")
    expect(second.locator(".ep-type")).to_have_text('unknown ("9")')
    expect(first.locator(".ep-status")).to_have_text("offline")
    expect(card.locator(".count-online")).to_have_text("1 online")

    other = report()
    other["gateway_sn"], other["gateway_name"], other["gateway_status"] = (
        OTHER_SN,
        "lobby",
        "offline",
    )
    post(server, other, seq=3, sn=OTHER_SN)
    cards = page.locator("section.gateway")
    expect(cards).to_have_count(2, timeout=WAIT_MS)
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.gatewaySn)") == [OTHER_SN, SN]
    expect(cards.first.locator(".gw-status")).to_have_class(re.compile(r"\bstatus-offline\b"))
    expect(cards.first.locator(".no-devices")).to_have_text("no sub-devices")
    expect(page.locator("#recent-rows tr")).to_have_count(3)
    expect(page.locator("#stats")).to_contain_text("3 received · 1 non-conforming")

    shot = tmp_path / "receiver-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_report_body_timeline_and_filters(page: Page, server: ReceiverServer) -> None:
    """A click on a report shows its body; a click on a device its status changes; the
    gateway and device filters narrow the page and stay in the address."""
    post(server, report(sub_device("127.0.0.11", "online", "1", "gate")), seq=1)
    post(server, report(sub_device("127.0.0.11", "offline", "1", "gate")), seq=2)
    other = report(sub_device("127.0.0.21", "online", "2", "lobby-cam"))
    other["gateway_sn"] = OTHER_SN
    post(server, other, seq=3, sn=OTHER_SN)
    page.goto(f"{server.url}/")
    cards = page.locator("section.gateway")
    expect(cards).to_have_count(2, timeout=WAIT_MS)

    # A recent report's body, as posted.
    page.locator("#recent-rows tr", has_text=f"{SN}-t-1").click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text(f"report from {SN}")
    expect(page.locator("#detail-meta")).to_contain_text(f"X-Report-Id {SN}-t-1")
    body = json.loads(page.locator("#detail-body").text_content() or "")
    assert body["sub_devices"][0]["ep_status"] == "online"
    page.locator("#detail-close").click()
    expect(detail).to_be_hidden()

    # A device's status changes, newest first.
    card = page.locator(f'[data-gateway-sn="{SN}"]')
    card.locator('tr[data-ep-ip="127.0.0.11"]').click()
    expect(page.locator("#detail-title")).to_have_text(f"127.0.0.11 on {SN}")
    changes = page.locator("#detail-timeline li")
    expect(changes).to_have_count(2)
    expect(changes.nth(0)).to_contain_text(f"offline · report {SN}-t-2")
    expect(changes.nth(1)).to_contain_text(f"online · report {SN}-t-1")

    # The card's own button shows its latest body.
    card.locator(".show-body").click()
    expect(page.locator("#detail-meta")).to_contain_text(f"X-Report-Id {SN}-t-2")

    # Filters: by gateway, then by device; both in the address.
    page.locator("#filter-gateway").fill(OTHER_SN)
    expect(card).to_be_hidden()
    expect(page.locator(f'[data-gateway-sn="{OTHER_SN}"]')).to_be_visible()
    expect(page.locator("#recent-rows tr:visible")).to_have_count(1)
    assert f"gateway={OTHER_SN}" in page.url
    page.locator("#filter-gateway").fill("")
    page.locator("#filter-device").fill("127.0.0.11")
    expect(card).to_be_visible()
    expect(page.locator('tr[data-ep-ip="127.0.0.21"]')).to_be_hidden()
    expect(page.locator("#recent-rows tr:visible")).to_have_count(2)

    # A link with the filters opens filtered.
    page.goto(f"{server.url}/?gateway={SN}")
    expect(page.locator(f'[data-gateway-sn="{SN}"]')).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(f'[data-gateway-sn="{OTHER_SN}"]')).to_be_hidden()
    expect(page.locator("#filter-gateway")).to_have_value(SN)


def test_v6_page_shows_both_reports_with_their_fields(browser: Browser) -> None:
    """A V6 platform's page: the box's report (F7) with its nested fields and what it did not
    measure, and the media devices' report (F8) with its own columns, each in its card."""
    system, media = example("F7"), example("F8")
    del system["gateway_ext_data"]["tpu_info"]
    with (ReceiverServer(create_app(release_name="V6R1C01"), host="127.0.0.1") as v6,
          watched_page(browser, v6.url, "receiver", height=900) as page):
        page.goto(f"{v6.url}/")
        expect(page.locator("header.top .badge.release")).to_have_text("V6R1C01")
        expect(page.locator("header.top .badge.format")).to_have_text([
            "checks F7 at /box/monitor/status/report",
            "checks F8 at /box/media/monitor/status/report"])
        for path, body in (("/box/monitor/status/report", system),
                           ("/box/media/monitor/status/report", media)):
            request = urllib.request.Request(  # noqa: S310 -- the receiver on loopback
                f"{v6.url}{path}", data=json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8",
                         "X-Report-Id": f"{body.get('gateway_sn', 'media')}-t-1"})
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                assert answer.status == 200

        box = page.locator(f'[data-gateway-sn="{system["gateway_sn"]}"]')
        expect(box.locator(".gw-status")).to_have_text("online", timeout=WAIT_MS)
        expect(box.locator(".facts")).to_contain_text(system["reporter_id"])
        expect(box.locator("details.fields summary")).to_contain_text("of F7 · 1 not measured")
        box.locator("details.fields summary").click()
        expect(box.locator("details.fields dl")).to_contain_text("memory_info.svt_memory_usage")
        expect(box.locator(".unmeasured")).to_contain_text("tpu_info")
        expect(box.locator(".no-devices")).to_have_text("sub-devices come in their own report")

        devices = page.locator(f'[data-gateway-sn="{media["mq_license_key"]}"]')
        expect(devices.locator(".gw-name")).to_have_text("devices of mq_license_key")
        row = devices.locator('tr[data-ep-ip="192.168.1.100"]')
        expect(row.locator(".media-device-status")).to_have_text("online")
        expect(row.locator(".media-device-type")).to_have_text("rtsp")
        expect(row.locator(".permission-id")).to_have_text(media["sub_devices"][0]["permission_id"])
        expect(devices.locator(".badge.format")).to_have_text("matches F8")
