"""Control characters in record strings: refused, so no report is poisoned by one record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bridge.errors import RecordError
from bridge.records import DeviceState, GatewayInfo, parse_as

BAD = ["\x00", "\x07", "\t", "\x1b[31m", "\x7f", "\x85", "\u202e", "\u2066", "\u200f",
       "\u061c", "\u2028"]


def device(**changes: Any) -> bytes:
    record: dict[str, Any] = {"ep_status": "online", "ep_type": "2", "ep_location": "loc",
                              "ep_name": "cam", "ep_url": "rtsp://10.0.0.1/ch1",
                              "source": "devices"}
    record.update(changes)
    return orjson.dumps(record)


def info(**changes: Any) -> bytes:
    record: dict[str, Any] = {"gateway_ip": "10.0.0.254", "gateway_name": "gw",
                              "dev_sno": "SNO", "sw_version": "VERSION: V2R1C01\n"}
    record.update(changes)
    return orjson.dumps(record)


class TestControlCharacters:
    @pytest.mark.parametrize("char", BAD)
    @pytest.mark.parametrize("field", ["ep_name", "ep_location", "ep_url", "source"])
    def test_device_strings_refuse_control_characters(self, field: str, char: str) -> None:
        """NUL, escapes, C1 and bidi marks in any device string refuse the record, naming
        the field and the character."""
        with pytest.raises(RecordError, match=f"U\\+{ord(char[0]):04X}") as info_:
            parse_as(DeviceState, device(**{field: f"a{char}b"}), "10.0.0.1")
        assert info_.value.field == field

    @pytest.mark.parametrize("field", ["gateway_name", "sdk_version"])
    def test_gateway_strings_refuse_newlines(self, field: str) -> None:
        """Only sw_version may span lines."""
        with pytest.raises(RecordError, match="U\\+000A"):
            parse_as(GatewayInfo, info(**{field: "a\nb"}))

    def test_dev_sno_takes_only_its_own_characters(self) -> None:
        """dev_sno has the setting's rule (bridge.rules): a line break is not one of them."""
        with pytest.raises(RecordError, match="dev_sno: must be 1-128 letters"):
            parse_as(GatewayInfo, info(dev_sno="a\nb"))

    def test_sw_version_keeps_its_line_breaks(self) -> None:
        """The vendor's sw_version is several lines; they stay."""
        text = "build.date=2019\r\nBUILD TIME: 20190806_173257\nVERSION: V2R1C01\n"
        assert parse_as(GatewayInfo, info(sw_version=text)).sw_version == text

    @pytest.mark.parametrize("char", ["\x00", "\u202e", "\x1b"])
    def test_sw_version_refuses_other_control_characters(self, char: str) -> None:
        """...but no other control character."""
        with pytest.raises(RecordError, match="sw_version"):
            parse_as(GatewayInfo, info(sw_version=f"V2R1C01{char}\n"))

    def test_ordinary_text_is_kept(self) -> None:
        """Chinese names, emoji and punctuation are not control characters."""
        name = "东门 摄像头 #2 (café) 🚪"
        assert parse_as(DeviceState, device(ep_name=name), "10.0.0.1").ep_name == name


class TestCredentialsInReasons:
    def test_a_refused_ep_url_shows_no_password(self) -> None:
        """The reason (a WARNING, a bridge/errors event, the console's page) shows the
        refused value without the camera's password, also past the shortened length."""
        url = "rtsp://admin:Secr3tCameraPassword@10.0.0.1:554/Streaming/Channels/101\x00"
        with pytest.raises(RecordError) as info_:
            parse_as(DeviceState, device(ep_url=url), "10.0.0.1")
        reason = str(info_.value)
        assert "U+0000" in reason
        assert "rtsp://...@10.0.0.1" in reason
        assert "Secr3t" not in reason
        assert "admin" not in reason
