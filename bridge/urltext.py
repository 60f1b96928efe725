"""URL and answer text fit for logs, events and pages: no I/O, and no requests.

Everything that shows a platform's URL or answer goes through here: `redact`
(no credentials, no query, control characters escaped), `printable` (an answer
cut short and escaped), `without_query_values` (the login's token hidden in
every spelling) and `with_query` (the token appended to an address as issued).
Kept apart from bridge.http so that what only shows URLs (the config, the
rules, status, the console) does not load the HTTP client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from bridge.hide import hide, url_secrets

BODY_LIMIT = 512  # bytes of a report's answer read (and kept for the log and events)


def redact(url: str) -> str:
    """The URL without user info and query string, fit for logs and events (a control
    character shown as its \\x/\\u escape, so no URL can start a forged log line)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # still show where, less credentials and query
        head = re.split(r"[?#]", url, maxsplit=1)[0]
        return _escape_control(re.sub(r"//[^/@]*@", "//", head, count=1)[:200])
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return _escape_control(urlunsplit((parts.scheme, netloc, parts.path, "", "")))


# C0, DEL, C1, and the invisible bidi and line-separator marks.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                     "\u2028\u2029]")


def _escape_control(text: str) -> str:
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def with_query(url: str, params: Mapping[str, str]) -> str:
    """`url` with `params` appended to its query: the address's own parameters are kept
    byte for byte, as the platform issued them (`sig=a%20b` stays so: a signature over
    the query must still match), except one of the same name as an added one, which
    the added one replaces."""
    if not params:
        return url
    parts = urlsplit(url)
    kept = [pair for pair in parts.query.split("&")
            if pair and unquote_plus(pair.partition("=")[0]) not in params]
    query = "&".join([*kept, urlencode(list(params.items()))])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def without_query_values(text: str, url: str) -> str:
    """`text` (a platform's answer) with the secrets of `url` hidden in every spelling
    (bridge.hide): a platform may echo the request, and the login's token is in its
    query. Values of other parameters shorter than 8 characters (`site=7`) stay."""
    return hide(text, url_secrets(url))


def printable(text: str, limit: int = BODY_LIMIT) -> str:
    """`text` cut to `limit` characters with line breaks and other control characters
    escaped (`\\n`, `\\x1b`), so that a platform's answer cannot forge a log line."""
    text = text[:limit]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
