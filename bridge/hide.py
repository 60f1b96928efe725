"""Secrets hidden by value, in every spelling, before any text reaches a log or an event.

A secret is hidden wherever it stands and however it is spelled: as sent
(percent-encoded) or decoded, `+` for spaces, JSON-escaped (`\\/`, `\\"`,
`\\u00e9`), in any case (a platform that echoes `TOKEN=ABC1`), and cut off at
the end of a text that was itself cut. A secret is hidden whatever its
length: a 4-character token is still the token.

What is secret in a URL (`url_secrets`): the password of its user info, and
every query value of a parameter whose name says so (`token`, `key`, `sig`,
`password`, `secret`, ...); other query values are hidden from 8 characters on
(a platform may put a key in a parameter of any name, but `site=7` is no
secret, and hiding every `7` would make answers unreadable).

URL credentials inside free text (a refused record's `ep_url`) are masked by
`without_credentials`, before the text is shortened for a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

import orjson

SHOWN = "..."
_SECRET_NAMES = re.compile(r"token|key|sig|pass|secret|auth|pwd|credential", re.IGNORECASE)
_LONG_ENOUGH = 8  # other query values from this length on
# scheme://user[:password]@ anywhere in a text (user info ends at the first / ? # @ or blank)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s'\"]*@")


def without_credentials(text: str) -> str:
    """`text` with the user info of every URL in it shown as `...@`."""
    return _USERINFO.sub(rf"\1{SHOWN}@", text) if "@" in text else text


def url_secrets(url: str) -> set[str]:
    """The secret values of `url`: its password, and its query's secret values."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return set()
    found = {password} if password else set()
    for pair in parts.query.split("&"):
        name, _, sent = pair.partition("=")
        secret = bool(_SECRET_NAMES.search(name))
        for value in (sent, *(v for _, v in parse_qsl(pair, keep_blank_values=True))):
            if value and (secret or len(value) >= _LONG_ENOUGH):
                found.add(value)
    return found


def spellings(secret: str) -> set[str]:
    """The ways a text may carry `secret` (compared without regard to case)."""
    json_forms = {orjson.dumps(secret).decode()[1:-1], json.dumps(secret)[1:-1]}
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), *json_forms,
             *(form.replace("/", "\\/") for form in json_forms)}
    return {form for form in forms if form}


def hide(text: str, secrets: Iterable[str]) -> str:
    """`text` with every spelling of each secret shown as `...`, also one cut off at the
    end of `text` (its last 4 characters or more)."""
    forms = sorted({f for s in secrets if s for f in spellings(s)}, key=len, reverse=True)
    if not forms:
        return text
    text = re.sub("|".join(re.escape(form) for form in forms), SHOWN, text, flags=re.IGNORECASE)
    folded = text.casefold() if len(text.casefold()) == len(text) else text
    for form in forms:
        for cut in range(len(form) - 1, 3, -1):
            if folded.endswith(form[:cut].casefold()):
                return text[:-cut] + SHOWN
    return text
