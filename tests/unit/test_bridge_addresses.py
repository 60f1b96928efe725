"""Tests for bridge.addresses: the fast path gives exactly what `ipaddress` gives."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.addresses import canonical_ip, ip_sort_key

PROPERTY = settings(max_examples=500, deadline=None, database=None)


def reference(text: str) -> str | None:
    """ipaddress's answer, with our one exception: a scope must be a short name."""
    _, percent, scope = text.partition("%")
    if percent and not re.fullmatch(r"[A-Za-z0-9_.-]{1,16}", scope):
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def ours(text: str) -> str | None:
    try:
        return canonical_ip(text)
    except ValueError:
        return None


OCTETS = st.one_of(
    st.integers(0, 300).map(str),
    st.integers(0, 300).map(lambda n: f"0{n}"),
    st.text("0123456789", min_size=0, max_size=4),
    st.sampled_from(["\u0661", " 1", "1 ", "+1", "-1", "0x1"]),
)
QUADS = st.lists(OCTETS, min_size=3, max_size=5).map(".".join)


class TestCanonicalIp:
    @pytest.mark.parametrize("text", [
        "0.0.0.0", "255.255.255.255", "127.10.3.200", "256.1.1.1", "01.2.3.4", "1.2.3.04",
        "1.2.3", "1.2.3.4.5", " 1.2.3.4", "1.2.3.4\n", "1..2.3", "::1", "fe80:0::1",
        "::FFFF:1.2.3.4", "1.2.3.4%eth0", "", "\u0661.2.3.4",
    ])
    def test_known_cases_agree_with_ipaddress(self, text: str) -> None:
        """Canonical, non-canonical, invalid and IPv6 inputs all give ipaddress's answer."""
        assert ours(text) == reference(text)

    @pytest.mark.parametrize("text", [
        "fe80::1%<img src=x onerror=alert(1)>", "fe80::1%", "fe80::1%a b", "fe80::1%" + "x" * 17,
        "fe80::1%a\u202e", "fe80::1%\x00", "fe80::1%" + "a" * 100_000,
    ])
    def test_scope_must_be_a_short_interface_name(self, text: str) -> None:
        """ipaddress takes any scope text; we refuse all but 1-16 of [A-Za-z0-9_.-]."""
        with pytest.raises(ValueError, match=r"scope|longer"):
            canonical_ip(text)

    def test_short_scope_is_kept(self) -> None:
        """A link-local camera behind an interface keeps its scope."""
        assert canonical_ip("FE80::1%eth0.12") == "fe80::1%eth0.12"

    @PROPERTY
    @given(text=QUADS)
    def test_dotted_quads_agree_with_ipaddress(self, text: str) -> None:
        """Any dotted string, with leading zeros, big or odd octets, gives ipaddress's answer."""
        assert ours(text) == reference(text)

    @PROPERTY
    @given(text=st.text(alphabet="0123456789abcdef.:% \n", max_size=20))
    def test_arbitrary_text_agrees_with_ipaddress(self, text: str) -> None:
        """Any short text over the characters of addresses gives ipaddress's answer."""
        assert ours(text) == reference(text)


class TestIpSortKey:
    @PROPERTY
    @given(value=st.integers(0, 2**32 - 1))
    def test_ipv4_key_is_version_and_value(self, value: int) -> None:
        """An IPv4 address sorts by (4, its integer value), as ipaddress says."""
        addr = ipaddress.IPv4Address(value)
        assert ip_sort_key(str(addr)) == (4, value, "")

    def test_scoped_addresses_in_one_order(self) -> None:
        """One address on two links is two devices, always in the same order."""
        ips = ["fe80::1%eth1", "fe80::2", "fe80::1%eth0", "fe80::1", "10.0.0.1"]
        assert sorted(ips, key=ip_sort_key) == [
            "10.0.0.1", "fe80::1", "fe80::1%eth0", "fe80::1%eth1", "fe80::2"]

    def test_ipv4_before_ipv6(self) -> None:
        """The highest IPv4 address sorts before the lowest IPv6 one."""
        assert ip_sort_key("255.255.255.255") < ip_sort_key("::")
