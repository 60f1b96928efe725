"""Tools shared by the reliability and security tests, on top of `tests.integration.stack`.

- `bridge_config`: the stack's bridge config plus `[bridge]` keys and free TOML;
- `RequestMeter`: WSGI middleware that counts the POSTs a platform is serving
  at once, so "no pile-up" is measured where it matters, at the platform;
- `SteppedClock`: a `bridge.freshness.Clock` whose wall time an "NTP" can step;
- `events` / `rss`: the bridge's `bridge/report` events, and its resident memory.

Nothing here sleeps for a fixed time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from flask import Flask

from demo.broker import Broker
from tests.conftest import Collected
from tests.integration.stack import write_config

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def bridge_config(
    path: Path,
    broker: Broker,
    report_url: str | list[str] = "",
    *,
    bridge: Mapping[str, object] | None = None,
    extra: str = "",
    **platform: Any,
) -> Path:
    """`stack.write_config`, then a `[bridge]` table from `bridge` and `extra` TOML verbatim."""
    write_config(path, broker, report_url, **platform)
    lines = ["", "[bridge]", *(f"{k} = {json.dumps(v)}" for k, v in (bridge or {}).items())]
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n" + extra)
    return path


def events(collected: Collected) -> list[dict[str, Any]]:
    """The delivery events (not login events) seen on `bridge/report`, oldest first."""
    docs = [json.loads(m.payload) for m in collected.messages
            if m.topic.endswith("/bridge/report")]
    return [d for d in docs if "target" in d]


def failures(collected: Collected) -> list[dict[str, Any]]:
    """The failed delivery attempts among `events(collected)`."""
    return [e for e in events(collected) if not e["ok"]]


def rss(pid: int) -> int:
    """Resident set size of process `pid`, in bytes."""
    return int(psutil.Process(pid).memory_info().rss)


def _drain(answer: Iterable[bytes]) -> bytes:
    """The whole body of a WSGI answer, closing it as a server would."""
    try:
        return b"".join(answer)
    finally:
        close = getattr(answer, "close", None)
        if close is not None:
            close()


class RequestMeter:
    """Wraps a WSGI app; for requests to `path`, counts how many run at once.

    The count covers the whole handler, including an injected fault's delay,
    so two POSTs in flight from one bridge would show as `peak == 2`.
    """

    def __init__(self, app: WSGIApplication, path: str = "/DeviceStatus") -> None:
        self._app = app
        self._path = path
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.total = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self._path:
            return self._app(environ, start_response)
        with self._lock:
            self.active += 1
            self.total += 1
            self.peak = max(self.peak, self.active)
        try:
            # Drain the body here, so the count ends when the answer is complete.
            return [_drain(self._app(environ, start_response))]
        finally:
            with self._lock:
                self.active -= 1


def meter(app: Flask, path: str = "/DeviceStatus") -> RequestMeter:
    """Install a `RequestMeter` in front of a Flask app and return it."""
    wrapped = RequestMeter(app.wsgi_app, path)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    return wrapped


class BodyTap:
    """Wraps a WSGI app and keeps the answer bodies of requests to `path`."""

    def __init__(self, app: WSGIApplication, path: str) -> None:
        self._app = app
        self._path = path
        self._lock = threading.Lock()
        self.bodies: list[bytes] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = _drain(self._app(environ, start_response))
        if environ.get("PATH_INFO") == self._path:
            with self._lock:
                self.bodies.append(body)
        return [body]


def tap(app: Flask, path: str) -> BodyTap:
    """Install a `BodyTap` in front of a Flask app and return it."""
    wrapped = BodyTap(app.wsgi_app, path)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    return wrapped


class SteppedClock:
    """Wall time that can be stepped like NTP steps a box's clock; monotonic time can't."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    def wall(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def monotonic(self) -> float:
        return time.monotonic()

    def step(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
