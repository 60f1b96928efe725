"""IP addresses as the bridge keeps them: canonical text, and an order for the report.

Every message names a device IP (in its topic, often in `ep_ip` too), so this
runs for every message. A dotted quad without leading zeros is already what
`ipaddress` would write; it is recognised with one regular expression instead
of building an address object, which costs more than the rest of taking in a
message. Anything else goes through `ipaddress`, errors included, so the
results are exactly its results.
"""

from __future__ import annotations

import ipaddress
import re
import socket

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def canonical_ip(text: str) -> str:
    """`text` as `str(ipaddress.ip_address(text))`; ValueError when it is no IP address."""
    if _CANONICAL_IPV4.fullmatch(text):
        return text
    return str(ipaddress.ip_address(text))


def ip_sort_key(ip: str) -> tuple[int, int]:
    """Numeric order: all IPv4 before IPv6, each by value."""
    if _CANONICAL_IPV4.fullmatch(ip):
        # inet_aton takes odd forms too ("1.2"), but only a canonical quad gets here.
        return 4, int.from_bytes(socket.inet_aton(ip), "big")
    addr = ipaddress.ip_address(ip)
    return addr.version, int(addr)
