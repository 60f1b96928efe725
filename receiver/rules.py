"""The value rules of the report tables: each takes a JSON value, returns a complaint or None.

A rule sees a value whose JSON type is already right (the checker tests the
type first) and says what is wrong with it, without the key's path. Names
describe values from untrusted bodies; they never echo more than 40 characters.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from decimal import Decimal

from bridge.addresses import ip_sort_key

Rule = Callable[[object], str | None]

_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_SIZE = re.compile(r"[0-9]+(?:\.[0-9]+)?[KMGTP]")  # "549.0M", "3.71G", "500G"
_SPEED = re.compile(r"[0-9]+(?:\.[0-9]+)?r/min")  # "40r/min"
_DIGITS = re.compile(r"[0-9]+")
_IP_MAX = 64  # longer than any address with a scope worth keeping in the cache


def type_name(value: object) -> str:
    """The JSON type of `value` with its article: "a string", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def describe(value: object) -> str:
    """The type of `value` and, for a scalar, the value itself (cut to 40 characters)."""
    if isinstance(value, bool | int | float | str):
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
        return f"{type_name(value)} ({shown[:40]})"
    return type_name(value)


def _decimals(number: float) -> int:
    exponent = Decimal(repr(number)).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def one_of(*allowed: str, shown: str = "") -> Rule:
    """The value is one of `allowed` (named `shown` in the complaint, else listed)."""
    named = shown or ", ".join(allowed)
    return lambda v: None if v in allowed else f"{v!r} is not one of {named}"


def non_empty(value: object) -> str | None:
    """Text that identifies something: not empty, not whitespace alone."""
    if value == "":
        return "must not be empty"
    if isinstance(value, str) and not value.strip():
        return f"{value!r} is blank (whitespace only)"
    return None


def ip(value: object) -> str | None:
    """One IPv4 or IPv6 address, without surrounding whitespace."""
    if not isinstance(value, str):
        return None  # the type check has complained already
    if value != value.strip():
        return f"{value!r} has surrounding whitespace"
    return None if ip_key(value) is not None else f"{value!r} is not an IPv4 or IPv6 address"


def ips(value: object) -> str | None:
    """One or more addresses separated by single spaces (the vendor's example of a box with
    two interfaces: "192.168.1.64 192.168.150.1"), without surrounding whitespace."""
    if not isinstance(value, str):
        return None
    if value != value.strip():
        return f"{value!r} has surrounding whitespace"
    if all(ip_key(part) is not None for part in value.split(" ")):
        return None
    return f"{value!r} is not IP addresses separated by single spaces"


def mac(value: object) -> str | None:
    """A lower-case MAC with colons."""
    if isinstance(value, str) and _MAC.fullmatch(value):
        return None
    return f"{value!r} is not a lower-case MAC like aa:bb:cc:dd:ee:ff"


def _pattern(regex: re.Pattern[str], what: str) -> Rule:
    return lambda v: None if isinstance(v, str) and regex.fullmatch(v) else f"{v!r} is not {what}"


size = _pattern(_SIZE, 'a size with its unit, like "3.71G" or "549.0M"')
speed = _pattern(_SPEED, 'a speed like "40r/min"')
count = _pattern(_DIGITS, "a whole number in digits")


def number(low: float, high: float | None, places: int | None = None) -> Rule:
    """A number from `low` to `high` (None: no upper bound), with at most `places` decimals
    when given."""

    def rule(value: object) -> str | None:
        if not isinstance(value, int | float):
            return None  # the type check has complained already
        if value < low or (high is not None and value > high):
            bounds = f"{low:g}..{high:g}" if high is not None else f">= {low:g}"
            return f"{value!r} is out of range {bounds}"
        if places is not None and isinstance(value, float) and _decimals(value) > places:
            return f"{value!r} has more than {places} decimal{'s' if places > 1 else ''}"
        return None

    return rule


def ip_key(text: str) -> tuple[int, int, str] | None:
    """(version, value, scope) of an IP address, for sorting (the bridge's own order,
    bridge.addresses.ip_sort_key: `fe80::1%eth0` and `fe80::1%eth1` are two devices);
    None if `text` is not one."""
    return _parse_ip(text) if len(text) <= _IP_MAX else None


# The same devices come in every report, and parsing addresses was the check's
# largest cost: remember the answers (a few MB at most).
@functools.lru_cache(maxsize=1 << 16)
def _parse_ip(text: str) -> tuple[int, int, str] | None:
    try:
        return ip_sort_key(text)
    except ValueError:
        return None
