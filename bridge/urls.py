"""Report and login URLs: what the bridge accepts as an address, checked in one place.

Every report URL passes `screen`, wherever it came from (the config file, the
`config/report_url` topic, a login answer): an http:// or https:// URL with a
host, duplicates dropped, at most `MAX_TARGETS` of them. Each target is a
thread and a connection, so a platform that answers a thousand addresses must
not get a thousand threads. A refused URL is only ever shown through
`redact()`: no credentials, no query (where a token may sit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from bridge.urltext import CONTROL, redact

MAX_TARGETS = 8


@dataclass(frozen=True, slots=True)
class Refused:
    """A value not taken: `shown` is redacted, `reason` says why."""

    shown: str
    reason: str
    setting: str = "report_url"


def split_urls(text: str) -> list[str]:
    """Split a comma-separated list of URLs, dropping blanks."""
    return [part.strip() for part in text.split(",") if part.strip()]


def check_http_url(url: str) -> None:
    """Raise ValueError unless `url` is a usable http:// or https:// URL.

    A control character (a NUL, a line break, a bidi mark) makes no address: urllib
    passes a NUL on and silently drops a newline, so a value that would forge a log
    line or break a platform's database is refused here, wherever it came from.
    """
    if CONTROL.search(url):
        raise ValueError(f"{redact(url)!r} is not an http:// or https:// URL with a host "
                         "(it holds a control character)")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(f"{redact(url)!r} is not an http:// or https:// URL with a host")


def _key(url: str) -> tuple[object, ...]:
    """Two spellings of one address (scheme and host case, a default port) are one target."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return (parts.scheme, parts.username, parts.password, parts.hostname,
            parts.port or default, parts.path or "/", parts.query)


def screen(urls: Iterable[str]) -> tuple[list[str], list[Refused]]:
    """The usable, distinct URLs (at most MAX_TARGETS, in order) and the refused ones."""
    kept: list[str] = []
    refused: list[Refused] = []
    seen: set[tuple[object, ...]] = set()
    for url in urls:
        try:
            check_http_url(url)
        except ValueError as exc:
            refused.append(Refused(redact(url), str(exc)))
            continue
        key = _key(url)
        if key in seen:
            continue
        if len(kept) >= MAX_TARGETS:
            refused.append(Refused(redact(url), f"more than {MAX_TARGETS} report URLs"))
            continue
        seen.add(key)
        kept.append(url)
    return kept, refused


def report_urls(urls: Iterable[str]) -> list[str]:
    """All of `urls`, distinct, or ValueError naming what is wrong (config file, config topic)."""
    kept, refused = screen(urls)
    if refused:
        raise ValueError("; ".join(dict.fromkeys(r.reason for r in refused)))
    return kept
