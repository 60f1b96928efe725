"""The gateway collector's records: identity and metrics as the bridge will parse them."""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge.config import Config, parse_config
from bridge.errors import ConfigError, NotReadyError
from bridge.records import GatewayInfo, GatewayMetrics, parse_record
from bridge.topics import Kind
from collectors.gateway import GatewayCollector
from tests.unit.test_collectors_host import ROUTES, TABLE, FakeReader

SW_VERSION = (
    "build.date=2019年 08月 06日 星期二 17:42:49 CST\r\nBUILD TIME: 20190806_173257\n"
    "VERSION: V2R1C01\n"
)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    sw = tmp_path / "buildinfo"
    sw.write_bytes(SW_VERSION.encode("utf-8"))
    sdk = tmp_path / "sdk"
    sdk.write_text("  1.1.56d1e91\n", encoding="utf-8")
    routes = tmp_path / "route"
    routes.write_text(ROUTES, encoding="ascii")
    return {"sw": sw, "sdk": sdk, "routes": routes, "data": tmp_path}


def config(files: dict[str, Path], **gateway: Any) -> Config:
    section = {
        "sn": "SN1", "dev_sno": "DEV1", "sw_version_file": str(files["sw"]),
        "data_path": str(files["data"]), **gateway,
    }
    return parse_config({
        "gateway": {k: v for k, v in section.items() if v is not None},
        "collectors": {"metrics_interval": 10, "ttl_factor": 3},
    })


def collector(files: dict[str, Path], reader: FakeReader | None = None, **gateway: Any
              ) -> GatewayCollector:
    fake = reader or FakeReader(disks={str(files["data"]): (10 * 2**30, 4 * 2**30)})
    return GatewayCollector(
        config(files, **gateway), reader=fake, interfaces=lambda: TABLE,
        route_file=files["routes"], clock=lambda: 1_700_000_000.1234,
    )


def info(payload: bytes) -> GatewayInfo:
    record = parse_record(Kind.GATEWAY_INFO, payload)
    assert isinstance(record, GatewayInfo)
    return record


class TestInfo:
    def test_valid_record_of_the_default_route(self, files: dict[str, Path]) -> None:
        """The info record parses and carries the default route's address and MAC."""
        payload = collector(files, name="box-1", sdk_version="2.0").info_payload()
        record = info(payload)
        assert (record.gateway_ip, record.gateway_mac) == ("10.0.0.5", "e0:a5:09:00:0e:6d")
        assert (record.gateway_name, record.dev_sno, record.sdk_version) == ("box-1", "DEV1", "2.0")
        assert record.source == "gateway"
        assert list(orjson.loads(payload)) == [
            "gateway_ip", "gateway_name", "dev_sno", "sw_version", "sdk_version",
            "gateway_mac", "source",
        ]

    def test_sw_version_verbatim(self, files: dict[str, Path]) -> None:
        """sw_version is the file's text byte for byte: Chinese, CRLF and final newline."""
        assert info(collector(files).info_payload()).sw_version == SW_VERSION

    def test_defaults(self, files: dict[str, Path]) -> None:
        """No name: the host name; no sdk_version: left out."""
        payload = orjson.loads(collector(files).info_payload())
        assert payload["gateway_name"] == socket.gethostname()
        assert "sdk_version" not in payload

    def test_sdk_version_file_stripped(self, files: dict[str, Path]) -> None:
        """sdk_version_file is read and stripped."""
        record = info(collector(files, sdk_version_file=str(files["sdk"])).info_payload())
        assert record.sdk_version == "1.1.56d1e91"

    def test_configured_interface(self, files: dict[str, Path]) -> None:
        """gateway.interface picks that interface's address."""
        assert info(collector(files, interface="wlan0").info_payload()).gateway_ip == (
            "192.168.1.20"
        )

    def test_absent_interface_warns_once(
        self, files: dict[str, Path], caplog: pytest.LogCaptureFixture
    ) -> None:
        """An interface without IPv4 falls back to the default route, with one warning."""
        gateway = collector(files, interface="eth9")
        for _ in range(3):
            assert info(gateway.info_payload()).gateway_ip == "10.0.0.5"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "eth9" in warnings[0].getMessage()

    @pytest.mark.parametrize(
        ("missing", "key"),
        [("dev_sno", "gateway.dev_sno"), ("sw_version_file", "gateway.sw_version_file"),
         ("sn", "gateway.sn")],
    )
    def test_required_keys(self, files: dict[str, Path], missing: str, key: str) -> None:
        """Each key the gateway collector needs is named when it is missing."""
        with pytest.raises(ConfigError, match=re.escape(key)):
            collector(files, **{missing: None})

    def test_unreadable_files_are_not_ready(self, files: dict[str, Path]) -> None:
        """A sw_version or sdk_version file that cannot be read (a partition not mounted
        yet?) stops the collector with a NotReadyError (exit 1: systemd tries again)."""
        with pytest.raises(NotReadyError, match=r"gateway\.sw_version_file: cannot read"):
            collector(files, sw_version_file=str(files["data"] / "absent"))
        with pytest.raises(NotReadyError, match=r"gateway\.sdk_version_file"):
            collector(files, sdk_version_file=str(files["data"] / "absent"))
        files["sw"].write_bytes(b"\xff\xfe not utf-8")
        with pytest.raises(ConfigError, match="not UTF-8"):
            collector(files)

    def test_info_the_bridge_would_refuse(self, files: dict[str, Path]) -> None:
        """A sw_version over the record's limit is a config error, not a refused record later."""
        files["sw"].write_text("x" * 5000, encoding="utf-8")
        with pytest.raises(ConfigError, match="sw_version"):
            collector(files)


class TestMetrics:
    def test_valid_record_with_ts_ttl_source(self, files: dict[str, Path]) -> None:
        """Metrics parse, with ts from the clock, ttl = ttl_factor * metrics_interval."""
        payload = collector(files).metrics_payload()
        record = parse_record(Kind.GATEWAY_METRICS, payload)
        assert isinstance(record, GatewayMetrics)
        assert (record.ts, record.ttl, record.source) == (1_700_000_000.123, 30.0, "gateway")
        assert (record.disk_size, record.disk_free_size) == (10.0, 4.0)
        assert (record.cpu_usage, record.memory_usage) == (6.5, 0.77)

    def test_missing_data_path_warns_once(
        self, files: dict[str, Path], caplog: pytest.LogCaptureFixture
    ) -> None:
        """Without the data path, disk keys are left out and one warning says why."""
        gateway = collector(files, reader=FakeReader(disks={}))
        for _ in range(3):
            assert "disk_size" not in orjson.loads(gateway.metrics_payload())
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "data_path" in warnings[0].getMessage()
