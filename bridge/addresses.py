"""IP addresses as the bridge keeps them: canonical text, and an order for the report.

Every message names a device IP (in its topic, often in `ep_ip` too), so this
runs for every message. A dotted quad without leading zeros is already what
`ipaddress` would write; it is recognised with one regular expression instead
of building an address object, which costs more than the rest of taking in a
message. Anything else goes through `ipaddress`, errors included, so the
results are exactly its results.

One exception: `ipaddress` takes a scoped IPv6 address with any scope text
(`fe80::1%<anything but />`). A scope is kept only when it is a short
interface name (`SCOPE`), enough for a link-local camera behind `eth0`; any
other is refused, so an address never carries markup or a megabyte of text.
"""

from __future__ import annotations

import ipaddress
import re
import socket

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
SCOPE = re.compile(r"[A-Za-z0-9_.-]{1,16}")
# The longest address text taken: 8 groups of 4 hex digits, '%' and a scope.
MAX_ADDRESS_TEXT = 39 + 1 + 16


def canonical_ip(text: str) -> str:
    """`text` as `str(ipaddress.ip_address(text))`; ValueError when it is no IP address,
    or an IPv6 address whose scope (after `%`) is not 1-16 of `[A-Za-z0-9_.-]`."""
    if _CANONICAL_IPV4.fullmatch(text):
        return text
    if len(text) > MAX_ADDRESS_TEXT:
        raise ValueError(f"longer than an IP address can be ({len(text)} characters)")
    _, percent, scope = text.partition("%")
    if percent and not SCOPE.fullmatch(scope):
        raise ValueError("an IPv6 scope (after %) must be 1-16 letters, digits, '_', '.' or '-'")
    return str(ipaddress.ip_address(text))


def ip_sort_key(ip: str) -> tuple[int, int, str]:
    """Numeric order: all IPv4 before IPv6, each by value, then by scope: `fe80::1` before
    `fe80::1%eth0` before `fe80::1%eth1`, whatever order they arrived in (the reference
    platform's strict check uses this same order)."""
    if _CANONICAL_IPV4.fullmatch(ip):
        # inet_aton takes odd forms too ("1.2"), but only a canonical quad gets here.
        return 4, int.from_bytes(socket.inet_aton(ip), "big"), ""
    addr = ipaddress.ip_address(ip)
    scope = addr.scope_id if isinstance(addr, ipaddress.IPv6Address) else None
    return addr.version, int(addr), scope or ""


def is_loopback(host: str) -> bool:
    """Whether a listen address (`127.0.0.1`, `::1`, `localhost`) is reachable from this
    box only; a wildcard or any other address or name is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a name: what it resolves to may change
