"""Tests for bridge.topics: the topic layout of docs/topics.md, built and parsed."""

from __future__ import annotations

import pytest

from bridge.topics import Kind, TopicError, TopicRef, Topics, parse

SN = "SZCCKQRAIJBAH0002"


def built(topics: Topics, kind: Kind, key: str) -> str:
    """The topic that `topics` builds for `kind` (and `key`, where it has one)."""
    if kind is Kind.DEVICE_STATE:
        return topics.device_state(key)
    if kind is Kind.COLLECTOR_STATUS:
        return topics.collector_status(key)
    if kind is Kind.BRIDGE_ARRIVAL:
        return topics.arrival(key)
    fixed = {
        Kind.GATEWAY_INFO: topics.gateway_info,
        Kind.GATEWAY_METRICS: topics.gateway_metrics,
        Kind.GATEWAY_HARDWARE: topics.gateway_hardware,
        Kind.BRIDGE_STATUS: topics.bridge_status,
        Kind.BRIDGE_REPORT: topics.bridge_report,
        Kind.BRIDGE_ERRORS: topics.bridge_errors,
        Kind.BRIDGE_SETTINGS: topics.bridge_settings,
        Kind.REPORT_URL: topics.report_url,
        Kind.REPORT_PERIOD: topics.report_period,
        Kind.LOGIN_URL: topics.login_url,
        Kind.DEV_SNO: topics.dev_sno,
        Kind.DEVICES_REPORT_URL: topics.devices_report_url,
        Kind.DEVICES_REPORT_PERIOD: topics.devices_report_period,
        Kind.REPORTER_ID: topics.reporter_id,
        Kind.RELEASE: topics.release,
        Kind.REPORT_NOW: topics.report_now,
    }
    return fixed[kind]


KEYS = {Kind.DEVICE_STATE: "192.168.1.101", Kind.COLLECTOR_STATUS: "devices",
        Kind.BRIDGE_ARRIVAL: "2001:db8::1"}


class TestRoundTrip:
    @pytest.mark.parametrize("kind", list(Kind))
    @pytest.mark.parametrize("prefix", ["se3", "site/a/se3"])
    def test_build_then_parse(self, kind: Kind, prefix: str) -> None:
        """Every kind of topic built by Topics parses back to the same sn, kind and key."""
        key = KEYS.get(kind, "")
        topic = built(Topics(prefix, SN), kind, key)

        assert parse(topic, prefix) == TopicRef(SN, kind, key)

    def test_the_layout_is_the_contracts(self) -> None:
        """The built topics are spelled as docs/topics.md spells them."""
        topics = Topics("se3", SN)

        assert topics.gateway_info == f"se3/{SN}/gateway/info"
        assert topics.gateway_metrics == f"se3/{SN}/gateway/metrics"
        assert topics.device_state("10.0.0.1") == f"se3/{SN}/devices/10.0.0.1/state"
        assert topics.collector_status("gw") == f"se3/{SN}/collectors/gw/status"
        assert topics.bridge_status == f"se3/{SN}/bridge/status"
        assert topics.bridge_report == f"se3/{SN}/bridge/report"
        assert topics.bridge_errors == f"se3/{SN}/bridge/errors"
        assert topics.report_url == f"se3/{SN}/config/report_url"
        assert topics.report_period == f"se3/{SN}/config/report_period"
        assert topics.login_url == f"se3/{SN}/config/login_url"
        assert topics.dev_sno == f"se3/{SN}/config/dev_sno"
        assert topics.report_now == f"se3/{SN}/config/report_now"
        assert topics.devices_report_url == f"se3/{SN}/config/devices_report_url"
        assert topics.devices_report_period == f"se3/{SN}/config/devices_report_period"
        assert topics.reporter_id == f"se3/{SN}/config/reporter_id"
        assert topics.release == f"se3/{SN}/config/release"
        assert topics.bridge_settings == f"se3/{SN}/bridge/settings"
        assert topics.everything == f"se3/{SN}/#"

    def test_another_gateways_serial_is_parsed_not_filtered(self) -> None:
        """parse reports whichever serial the topic names; matching it is the caller's job."""
        assert parse("se3/OTHER/gateway/info", "se3") == TopicRef("OTHER", Kind.GATEWAY_INFO)


class TestPrefix:
    def test_prefix_with_slashes(self) -> None:
        """A multi-level prefix is matched level by level."""
        ref = parse(f"a/b/c/{SN}/devices/10.0.0.1/state", "a/b/c")

        assert ref == TopicRef(SN, Kind.DEVICE_STATE, "10.0.0.1")

    @pytest.mark.parametrize(
        "topic",
        [
            f"other/{SN}/gateway/info",
            f"se3x/{SN}/gateway/info",
            f"a/{SN}/gateway/info",  # only part of the prefix a/b
            f"b/a/{SN}/gateway/info",
            f"/se3/{SN}/gateway/info",
        ],
    )
    def test_topic_outside_the_prefix_is_refused(self, topic: str) -> None:
        """A topic not under the prefix is a TopicError, not a misparse."""
        prefix = "a/b" if topic.startswith(("a/", "b/")) else "se3"

        with pytest.raises(TopicError, match="prefix"):
            parse(topic, prefix)

    def test_a_serial_that_looks_like_the_prefix_is_a_serial(self) -> None:
        """The level after the prefix is the serial even when it repeats the prefix."""
        assert parse("se3/se3/gateway/info", "se3") == TopicRef("se3", Kind.GATEWAY_INFO)


class TestDeviceTopic:
    @pytest.mark.parametrize(
        "bad", ["192.168.1.300", "host.example", "10.0.0", "", "192.168.001.001", "1.2.3.4 "]
    )
    def test_bad_ip_is_refused(self, bad: str) -> None:
        """A device topic whose IP level is not an IP address is a TopicError naming it."""
        with pytest.raises(TopicError, match="bad device IP"):
            parse(f"se3/{SN}/devices/{bad}/state", "se3")

    def test_bad_ip_in_the_message_is_truncated(self) -> None:
        """A huge bogus IP level does not end up whole in the error (log lines stay short)."""
        with pytest.raises(TopicError) as info:
            parse(f"se3/{SN}/devices/{'x' * 5000}/state", "se3")

        assert len(str(info.value)) < 120

    @pytest.mark.parametrize(
        ("given", "canonical"),
        [
            ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
            ("2001:0db8::0001", "2001:db8::1"),
            ("FE80::A", "fe80::a"),
            ("::ffff:0102:0304", "::ffff:102:304"),
        ],
    )
    def test_non_canonical_ipv6_is_refused_naming_the_canonical_form(
        self, given: str, canonical: str
    ) -> None:
        """Two spellings of one address never become two devices: a spelling other than the
        canonical one is refused, and the reason says how to spell it."""
        with pytest.raises(TopicError, match=f"publish it as '{canonical}'"):
            parse(f"se3/{SN}/devices/{given}/state", "se3")

    @pytest.mark.parametrize("ip", ["::1", "2001:db8::1", "fe80::1%eth0", "fe80::1%wlan0.2"])
    def test_canonical_ipv6_is_the_key(self, ip: str) -> None:
        """A canonical IPv6 address (with a short interface scope) is the key as it is."""
        assert parse(f"se3/{SN}/devices/{ip}/state", "se3") == TopicRef(SN, Kind.DEVICE_STATE, ip)

    @pytest.mark.parametrize(
        "scope", ["<img src=x onerror=alert(1)>", "", "a b", "x" * 17, "é", "a\nb"]
    )
    def test_scope_other_than_a_short_interface_name_is_refused(self, scope: str) -> None:
        """`fe80::1%<anything>` is an address to ipaddress; only a short name is to us."""
        with pytest.raises(TopicError, match="scope"):
            parse(f"se3/{SN}/devices/fe80::1%{scope}/state", "se3")

    def test_level_longer_than_an_address_is_refused_unparsed(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A device level longer than any address is refused before it is parsed."""
        import bridge.topics

        def never(text: str) -> str:
            raise AssertionError("parsed")

        monkeypatch.setattr(bridge.topics, "canonical_ip", never)
        with pytest.raises(TopicError, match="longer than an IP address"):
            parse(f"se3/{SN}/devices/fe80::1%{'x' * 60}/state", "se3")

    def test_long_collector_name_is_refused(self) -> None:
        """A collector name is a `source`: at most 128 characters."""
        assert parse(f"se3/{SN}/collectors/{'n' * 128}/status", "se3").key == "n" * 128
        with pytest.raises(TopicError, match="longer than 128"):
            parse(f"se3/{SN}/collectors/{'n' * 129}/status", "se3")

    def test_ipv4_key_is_the_address(self) -> None:
        """An IPv4 device topic gives the dotted address as key."""
        assert parse(f"se3/{SN}/devices/10.1.2.3/state", "se3").key == "10.1.2.3"


class TestUnknownShapes:
    @pytest.mark.parametrize(
        "rest",
        [
            "",
            "gateway",
            "gateway/",
            "gateway/info/",
            "gateway/info/extra",
            "gateway/status",
            "devices/10.0.0.1",
            "devices/10.0.0.1/status",
            "devices/10.0.0.1/state/x",
            "collectors//status",
            "collectors/gw/state",
            "collectors/gw/status/x",
            "bridge/fence",
            "config/other",
            "config/report_url/x",
        ],
    )
    def test_unknown_shape_is_refused(self, rest: str) -> None:
        """A topic under the prefix but not in the layout is a TopicError."""
        with pytest.raises(TopicError):
            parse(f"se3/{SN}/{rest}", "se3")

    def test_empty_serial_is_refused(self) -> None:
        """A topic with an empty serial level is a TopicError."""
        with pytest.raises(TopicError, match="unknown topic shape"):
            parse("se3//gateway/info", "se3")

    def test_the_prefix_alone_is_refused(self) -> None:
        """The bare prefix is a TopicError."""
        with pytest.raises(TopicError):
            parse("se3", "se3")

    def test_topic_error_is_a_value_error(self) -> None:
        """TopicError is a ValueError, so generic handlers still catch it."""
        assert issubclass(TopicError, ValueError)


def test_kinds_hash_by_identity_and_still_work_as_keys() -> None:
    """The per-message set and dict lookups of a Kind do not call Enum's Python __hash__."""
    import enum

    from bridge.topics import Kind

    assert vars(Kind)["__hash__"] is not vars(enum.Enum)["__hash__"]
    assert hash(Kind.DEVICE_STATE) == hash(Kind("devices/state"))
    assert {Kind.DEVICE_STATE: 1}[Kind("devices/state")] == 1


class TestAppSpaces:
    def test_an_apps_device_and_status_name_their_owner(self) -> None:
        topics = Topics("se3", "SN1")
        assert parse(topics.app_device_state("app-door", "10.0.0.1"), "se3") == TopicRef(
            "SN1", Kind.DEVICE_STATE, "10.0.0.1", "app-door")
        assert parse(topics.app_status("app"), "se3") == TopicRef(
            "SN1", Kind.COLLECTOR_STATUS, "app", "app")

    def test_the_collectors_topics_have_no_owner(self) -> None:
        topics = Topics("se3", "SN1")
        assert parse(topics.device_state("10.0.0.1"), "se3").owner == ""
        assert parse(topics.collector_status("devices"), "se3").owner == ""

    @pytest.mark.parametrize("topic", [
        "se3/SN1/apps/gateway/status",            # not an app user's name
        "se3/SN1/apps/App/devices/10.0.0.1/state",
        "se3/SN1/apps/app-/status",
        "se3/SN1/apps/app/devices/10.0.0.01/state",  # not canonical
        "se3/SN1/apps/app/devices/10.0.0.1/other",
        "se3/SN1/apps/app/device/10.0.0.1/state",
        "se3/SN1/apps/app/state",
        "se3/SN1/apps/app/devices/10.0.0.1",
    ])
    def test_other_shapes_in_an_app_space_are_refused(self, topic: str) -> None:
        with pytest.raises(TopicError):
            parse(topic, "se3")
