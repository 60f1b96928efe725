"""What the browser tests share: Debian's Chromium, its flags, and a page that fails
the test on any console error, page error or request leaving the server under test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def watched_page(
    browser: Browser,
    base_url: str,
    what: str,
    height: int,
    expected_error: Callable[[str], bool] = lambda _text: False,
) -> Iterator[Page]:
    """A page at 1280 x `height` that may only reach `base_url` (`what` names it in the
    failure); console errors other than `expected_error` ones fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": height})
    opened = context.new_page()
    problems: list[str] = []

    def only_base(route: Route) -> None:
        if route.request.url.startswith(f"{base_url}/"):
            route.continue_()
        else:
            problems.append(f"request outside the {what}: {route.request.url}")
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not expected_error(message.text):
            problems.append(f"console error: {message.text}")

    opened.route("**/*", only_base)
    opened.on("console", on_console)
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    try:
        yield opened
    finally:
        context.close()
    assert problems == []
