"""Golden reports of every release format (F1-F8), from the vendor's own tables.

Each expected body is the vendor's table (sophonai/bm1682: "设备状态上报内容" of
V2R1C01, V2R2C01 and V2R6C01; "系统状态信息上报" of V5R7C01 and V6R1C01;
"采集端设备状态信息上报" of V5R7C01 and V6R1C01), key for key in the table's
order, with the values of the document's example where the example gives
them: a box measuring what the example shows must send these bytes. Where an
example and its table disagree, the table wins (`cpu_freg`, `emmc` / `hdd`,
`media_devices`, no `gateway_port` in F7).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bridge.nested import size_text, uptime_compact, uptime_words
from bridge.records import DeviceState, GatewayHardware, GatewayInfo, GatewayMetrics, parse_as
from bridge.releases import RELEASES, ReportFormat
from bridge.report import (
    DeviceView,
    Gateway,
    build_devices_report,
    build_gateway_report,
    device_json,
    dumps,
    missing_fields,
)
from receiver.tables import FormatName

GIB, MIB = 2**30, 2**20
SN = "HQDZKE5BJJFJH0047"
DEV_SNO = "AAAZKE5xxJFJH0047"
LOCATION = "95274d2c-0941-4d96-b032-ab200f81362c"


def gib(n: float) -> int:
    return round(n * GIB)


def record(model: type[Any], **fields: object) -> Any:
    return parse_as(model, orjson.dumps(fields))


INFO = record(GatewayInfo, gateway_ip="192.168.1.64", gateway_name="hyf64", dev_sno=DEV_SNO,
              sw_version="V5R5C01_6a2c62d", sdk_version="V5R5C01_30ee591",
              gateway_mac="e0:a5:09:00:32:31")
# The box of the examples: 8 x A53 at 2.3 GHz, 3.71G system memory (549.0M used),
# a 32 GB eMMC with a 30.54G data partition, 13.86G free.
METRICS = record(
    GatewayMetrics, cpu_usage=1.0, memory_size=3.71, memory_usage=0.14, disk_size=30.54,
    disk_free_size=13.86, temperature=39, cpu_model="A53", cpu_freq_mhz=2300.0, cpu_cores=8,
    memory_total_bytes=gib(3.71), memory_free_bytes=gib(3.71) - 549 * MIB,
    disk_total_bytes=gib(30.54), disk_free_bytes=gib(13.86), uptime=1800.0,
    core_temperature=45.0, board_temperature=47.0, fan_speed=0.0,
)
HARDWARE = record(
    GatewayHardware, tpu_usage=0.15, tpu_description="INT8 17.6TOP;FP32 2.2TFLOPS",
    tpu_memory={"total_bytes": gib(3.92), "used_bytes": round(523.49 * MIB)},
    video_memory={"total_bytes": gib(3.88), "used_bytes": round(0.14 * MIB)},
    board_memory_bytes=12 * GIB, emmc_nominal_bytes=32 * GIB,
    hdd={"mounted": True, "nominal_bytes": gib(500), "total_bytes": gib(500),
         "free_bytes": gib(200)},
    nnsdk_version="2.0.3_20200512_175058",
)
GATEWAY = Gateway(SN, INFO, METRICS, HARDWARE, "online", 80)
# ep_type 3 (IPC dynamic): 2 (IPC static) is in the seed's table but not in F2-F4's.
DEVICE = DeviceView("192.168.1.101", record(
    DeviceState, ep_status="online", ep_type="3", ep_location=LOCATION, ep_name="",
    ep_url="rtsp://192.168.1.101:554/ch2"), "online")

FLAT_DEVICE = {
    "ep_id": f"{DEV_SNO}__192.168.1.101", "ep_name": "", "ep_ip": "192.168.1.101",
    "ep_status": "online", "ep_location": LOCATION, "ep_type": "3",
    "ep_url": "rtsp://192.168.1.101:554/ch2",
}
TOP = {"gateway_ip": "192.168.1.64", "gateway_name": "hyf64", "gateway_status": "online",
       "gateway_sn": SN, "dev_sno": DEV_SNO}
FLAT_EXT = {"sw_version": "V5R5C01_6a2c62d", "sdk_version": "V5R5C01_30ee591",
            "gateway_mac": "e0:a5:09:00:32:31", "cpu_usage": 1.0, "memory_size": 3.71,
            "memory_usage": 0.14, "disk_size": 30.54, "disk_free_size": 13.86}
CPU_INFO = {"cpu_rate": 0.01, "info": {"cpu_type": "A53", "cpu_freg": "2.3Ghz",
                                       "cpu_count": "8"}}
REGIONS = {
    "system": {"system_scale": 0.32, "total": "3.71G", "free": "3.17G", "used": "549.0M"},
    "tpu": {"tpu_scale": 0.34, "total": "3.92G", "free": "3.41G", "used": "523.49M"},
    "video": {"video_scale": 0.34, "total": "3.88G", "free": "3.88G", "used": "0.14M"},
}
MEMORY_INFO = {"hardware_total_memory": "12.0G", "total_memory": "11.51G",
               "total_free_memory": "10.46G", "total_used_memory": "1.05G",
               "total_memory_scale": 0.09, **REGIONS}
DISK_INFO = {"hardware_total_disk": "32.0G", "disk_rate": 0.55, "total_disk": "30.54G",
             "free_disk": "13.86G", "used_disk": "16.68G"}
F4_EXT = {"sw_version": "V5R5C01_6a2c62d", "sdk_version": "V5R5C01_30ee591",
          "gateway_mac": "e0:a5:09:00:32:31", "cpu_info": CPU_INFO, "memory_info": MEMORY_INFO,
          "disk_info": DISK_INFO, "temperature": 39}

EXPECTED: dict[ReportFormat, dict[str, Any]] = {
    "F1": {**TOP, "gateway_ext_data": FLAT_EXT, "sub_devices": [FLAT_DEVICE]},
    "F1-MQ": {**TOP, "gateway_ext_data": {**FLAT_EXT, "temperature": 39}, "sub_devices": [{
        **{k: v for k, v in FLAT_DEVICE.items() if k != "ep_url"}, "ep_ext_data": {}}]},
    "F2": {**TOP, "gateway_ext_data": {**FLAT_EXT, "temperature": 39},
           "sub_devices": [FLAT_DEVICE]},
    "F3": {**TOP, "gateway_port": 80, "gateway_ext_data": {**FLAT_EXT, "temperature": 39},
           "sub_devices": [FLAT_DEVICE]},
    "F4": {**TOP, "gateway_port": 80, "gateway_ext_data": F4_EXT, "sub_devices": [FLAT_DEVICE]},
    "F5": {**TOP, "gateway_port": 80, "gateway_ext_data": {
        **{k: v for k, v in F4_EXT.items() if k != "temperature"},
        "external_hard_drives_info": {
            "external_hard_state": "1", "external_hard_disk_rate": 0.6,
            "external_hard_total_disk": "500.0G", "external_hard_free_disk": "200.0G",
            "external_hard_used_disk": "300.0G"},
        "temperature": 39, "board_temperature": 47, "nnsdk_version": "2.0.3_20200512_175058",
        "fan_speed": "0r/min", "uptime": "30 minutes",
        "tpu_info": {"tpu_rate": 0.15, "info": {"detail": "INT8 17.6TOP;FP32 2.2TFLOPS"}},
    }},
    "F6": {"dev_sno": DEV_SNO, "sub_devices": [{
        "ep_id": f"{DEV_SNO}__192.168.1.101", "ep_ip": "192.168.1.101", "ep_status": "online",
        "ep_location": LOCATION, "ep_type": "rtsp", "ep_name": ""}]},
    "F7": {
        "gateway_ip": "192.168.1.64", "gateway_name": "hyf64", "gateway_status": "online",
        "gateway_sn": SN, "gateway_mac": "e0:a5:09:00:32:31", "reporter_id": DEV_SNO,
        "gateway_ext_data": {
            "cpu_info": {"cur_cpu_usage": 0.01, "cpu_arch": "A53", "cpu_freg": "2.3Ghz",
                         "cpu_cores": "8"},
            "memory_info": {"total_memory": "12.0G", "svt_memory": "11.51G",
                            "svt_free_memory": "10.46G", "svt_used_memory": "1.05G",
                            "svt_memory_usage": 0.09, **REGIONS},
            "emmc": {"mount_status": True, "nominal_capacity": "32.0G", "disk_usage": 0.55,
                     "total_disk": "30.54G", "free_disk": "13.86G", "used_disk": "16.68G"},
            "hdd": {"mount_status": True, "nominal_capacity": "500.0G", "disk_usage": 0.6,
                    "total_disk": "500.0G", "free_disk": "200.0G", "used_disk": "300.0G"},
            "core_temperature": 45.0, "board_temperature": 47.0, "fan_speed": 0.0,
            "uptime": "30minutes",
            "tpu_info": {"tpu_usage": 0.15, "tpu_description": "INT8 17.6TOP;FP32 2.2TFLOPS"},
        },
    },
    "F8": {"mq_license_key": DEV_SNO, "media_devices": [{
        "media_device_id": "2c1a6a12-ecf4-4490-a2fc-8d7a5023bfcd",
        "media_device_name": "前门设备", "media_device_url": "rtsp://192.168.1.100:554/ch2",
        "media_device_ip": "192.168.1.100", "media_device_status": "online",
        "media_device_type": "rtsp", "permission_id": "820737ae-a6d3-4322-bf7c-46f48066fb64"}]},
}
# F8's example device, as a record would carry it.
MEDIA_DEVICE = DeviceView("192.168.1.100", record(
    DeviceState, ep_status="online", ep_type="2", ep_location=LOCATION, ep_name="前门设备",
    ep_url="rtsp://192.168.1.100:554/ch2", media_type="rtsp",
    media_device_id="2c1a6a12-ecf4-4490-a2fc-8d7a5023bfcd",
    permission_id="820737ae-a6d3-4322-bf7c-46f48066fb64"), "online")


def built(fmt: ReportFormat) -> dict[str, Any]:
    if fmt == "F6":
        return build_devices_report(fmt, DEV_SNO, [DEVICE])
    if fmt == "F8":
        return build_devices_report(fmt, DEV_SNO, [MEDIA_DEVICE])
    return build_gateway_report(fmt, GATEWAY, [DEVICE])


def key_paths(value: object, path: str = "") -> list[str]:
    """Every key of a JSON value in order, as dotted paths (list items as `[]`)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in (f"{path}{k}", *key_paths(v, f"{path}{k}."))]
    if isinstance(value, list):
        return [p for item in value for p in key_paths(item, f"{path[:-1]}[].")]
    return []


@pytest.mark.parametrize("fmt", list(EXPECTED))
class TestGolden:
    def test_bytes(self, fmt: ReportFormat) -> None:
        """Byte for byte the table's report: its keys, their order and the values."""
        assert dumps(built(fmt)) == dumps(EXPECTED[fmt])

    def test_key_order_is_the_tables(self, fmt: ReportFormat) -> None:
        assert key_paths(built(fmt)) == key_paths(EXPECTED[fmt])

    def test_nothing_missing_on_a_box_that_measures_everything(self, fmt: ReportFormat) -> None:
        devices = [MEDIA_DEVICE] if fmt == "F8" else [DEVICE]
        assert missing_fields(fmt, GATEWAY, devices) == []


class TestShapes:
    def test_every_release_format_has_a_golden(self) -> None:
        """Each report a release sends (and each variant) is pinned down above."""
        sent = {f for r in RELEASES.values() for f in (*r.variants.values(), *r.reports)}
        assert sent == set(EXPECTED)

    def test_f7_reporter_id_when_set(self) -> None:
        gateway = Gateway(SN, INFO, METRICS, HARDWARE, reporter_id="AFVKQF000120210604151110")
        assert build_gateway_report("F7", gateway)["reporter_id"] == "AFVKQF000120210604151110"

    def test_gateway_only_formats_carry_no_devices(self) -> None:
        for fmt in ("F5", "F7"):
            assert "sub_devices" not in build_gateway_report(fmt, GATEWAY, [DEVICE])

    def test_device_json_is_the_reports_entry(self) -> None:
        """A device's entry is one function of (format, dev_sno, view)."""
        assert build_gateway_report("F4", GATEWAY, [DEVICE])["sub_devices"] == [
            device_json("F4", DEV_SNO, DEVICE)]
        assert build_devices_report("F8", DEV_SNO, [DEVICE])["media_devices"] == [
            device_json("F8", DEV_SNO, DEVICE)]


class TestMediaDevices:
    @pytest.mark.parametrize(("ep_type", "media"), [
        ("0", "photo"), ("1", "photo"), ("4", "photo"), ("2", "rtsp"), ("3", "rtsp")])
    def test_media_type_from_ep_type(self, ep_type: str, media: str) -> None:
        view = DeviceView("10.0.0.1", record(DeviceState, ep_status="online", ep_type=ep_type,
                                             ep_location=LOCATION), "online")
        assert device_json("F8", DEV_SNO, view)["media_device_type"] == media
        assert device_json("F6", DEV_SNO, view)["ep_type"] == media

    def test_the_records_media_type_wins(self) -> None:
        view = DeviceView("10.0.0.1", record(DeviceState, ep_status="online", ep_type="2",
                                             ep_location=LOCATION, media_type="gb28181"),
                          "online")
        assert device_json("F8", DEV_SNO, view)["media_device_type"] == "gb28181"

    def test_derived_id_is_stable_and_distinct(self) -> None:
        """Without an id of its own a device gets a UUID from dev_sno and its address: the
        same every time, another for another device or box."""
        def derived(dev_sno: str, ip: str) -> str:
            view = DeviceView(ip, record(DeviceState, ep_status="online", ep_type="1",
                                         ep_location=LOCATION), "online")
            return str(device_json("F8", dev_sno, view)["media_device_id"])

        first = derived(DEV_SNO, "10.0.0.1")
        assert first == derived(DEV_SNO, "10.0.0.1") == "f86add8f-b377-5366-82f3-7ad2da65707e"
        assert len({first, derived(DEV_SNO, "10.0.0.2"), derived("OTHER", "10.0.0.1")}) == 3

    def test_url_defaults_to_the_address_and_permission_to_empty(self) -> None:
        view = DeviceView("10.0.0.1", record(DeviceState, ep_status="offline", ep_type="1",
                                             ep_location=LOCATION), "offline")
        entry = device_json("F8", DEV_SNO, view)
        assert (entry["media_device_url"], entry["permission_id"]) == ("10.0.0.1", "")
        assert missing_fields("F8", None, [view]) == [
            "media_devices[].permission_id (1 of 1 devices)"]


class TestMissing:
    """A plain Linux host without the hardware record: nothing is invented."""

    HOST = Gateway(SN, INFO, record(
        GatewayMetrics, cpu_usage=12.5, cpu_model="Intel(R) Xeon(R)", cpu_freq_mhz=2100.0,
        cpu_cores=2, memory_total_bytes=8 * GIB, memory_free_bytes=6 * GIB,
        disk_total_bytes=100 * GIB, disk_free_bytes=40 * GIB, uptime=90061.0,
        core_temperature=51.0), None, "online", 5555)

    def test_f7_names_what_only_a_sophon_box_knows(self) -> None:
        assert missing_fields("F7", self.HOST) == [
            "gateway_ext_data.memory_info.total_memory",
            "gateway_ext_data.memory_info.svt_memory",
            "gateway_ext_data.memory_info.svt_free_memory",
            "gateway_ext_data.memory_info.svt_used_memory",
            "gateway_ext_data.memory_info.svt_memory_usage",
            "gateway_ext_data.memory_info.system.system_scale",
            "gateway_ext_data.memory_info.tpu.tpu_scale",
            "gateway_ext_data.memory_info.tpu.total",
            "gateway_ext_data.memory_info.tpu.free",
            "gateway_ext_data.memory_info.tpu.used",
            "gateway_ext_data.memory_info.video.video_scale",
            "gateway_ext_data.memory_info.video.total",
            "gateway_ext_data.memory_info.video.free",
            "gateway_ext_data.memory_info.video.used",
            "gateway_ext_data.emmc.nominal_capacity",
            "gateway_ext_data.hdd",
            "gateway_ext_data.hdd.nominal_capacity",
            "gateway_ext_data.board_temperature",
            "gateway_ext_data.fan_speed",
            "gateway_ext_data.tpu_info.tpu_usage",
            "gateway_ext_data.tpu_info.tpu_description",
        ]

    def test_f7_fills_as_the_document_says(self) -> None:
        """Strings "", the document's absent values (no disk, fan 0.0), numbers left out."""
        ext = build_gateway_report("F7", self.HOST)["gateway_ext_data"]
        assert ext["memory_info"]["system"] == {"total": "8.0G", "free": "6.0G", "used": "2.0G"}
        assert ext["memory_info"]["tpu"] == {"total": "", "free": "", "used": ""}
        assert ext["hdd"] == {"mount_status": False, "nominal_capacity": "", "total_disk": "",
                              "free_disk": "", "used_disk": ""}
        assert ext["emmc"]["disk_usage"] == 0.6
        assert "board_temperature" not in ext
        assert (ext["fan_speed"], ext["uptime"]) == (0.0, "1days,1hours")
        assert ext["tpu_info"] == {"tpu_description": ""}

    def test_f2_leaves_out_what_it_cannot_measure_and_names_it(self) -> None:
        """The seed's flat metrics come from the same host; a missing temperature is named."""
        report = build_gateway_report("F2", self.HOST)
        assert "temperature" not in report["gateway_ext_data"]
        assert missing_fields("F2", self.HOST) == [
            "gateway_ext_data.memory_size",
            "gateway_ext_data.memory_usage", "gateway_ext_data.disk_size",
            "gateway_ext_data.disk_free_size", "gateway_ext_data.temperature"]

    def test_f3_without_a_port_names_it(self) -> None:
        gateway = Gateway(SN, INFO, METRICS)
        assert "gateway_port" not in build_gateway_report("F3", gateway)
        assert missing_fields("F3", gateway) == ["gateway_port"]


class TestText:
    @pytest.mark.parametrize(("size", "text"), [
        (12 * GIB, "12.0G"), (gib(3.71), "3.71G"), (549 * MIB, "549.0M"),
        (round(0.14 * MIB), "0.14M"), (0, "0.0M")])
    def test_size_text(self, size: int, text: str) -> None:
        """Sizes as the vendor's examples write them."""
        assert size_text(size) == text

    @pytest.mark.parametrize(("seconds", "words", "compact"), [
        (0, "0 minutes", "0minutes"), (1800, "30 minutes", "30minutes"),
        (9600, "2 hours, 40 minutes", "2hours,40minutes"),
        (33 * 3600 + 59, "1 day, 9 hours", "1days,9hours"), (86400 * 3, "3 days", "3days")])
    def test_uptime(self, seconds: float, words: str, compact: str) -> None:
        """F5's uptime for people ("1 day, 9 hours"), F7's as its example ("2hours,40minutes")."""
        assert (uptime_words(seconds), uptime_compact(seconds)) == (words, compact)


# The reference platform's name of each format (it calls F1-MQ by its older name, v2).
AS_RECEIVER: dict[ReportFormat, FormatName] = {
    "F1": "F1", "F1-MQ": "v2", "F2": "F2", "F3": "F3", "F4": "F4", "F5": "F5", "F6": "F6",
    "F7": "F7", "F8": "F8",
}


class TestAgainstTheReferencePlatform:
    """The reference platform checks each format by its own tables (receiver/tables.py),
    written independently of this builder: every golden body passes them."""

    @pytest.mark.parametrize("fmt", list(EXPECTED))
    def test_golden_body_has_no_violation(self, fmt: ReportFormat) -> None:
        from receiver.conformance import check_report

        _payload, violations = check_report(dumps(built(fmt)), AS_RECEIVER[fmt])
        assert violations == []

    @pytest.mark.parametrize("fmt", ["F4", "F5", "F7"])
    def test_a_plain_host_has_no_violation_either(self, fmt: ReportFormat) -> None:
        """Without the hardware record, what is left out is left out the platform's way."""
        from receiver.conformance import check_report

        body = dumps(build_gateway_report(fmt, TestMissing.HOST))
        _payload, violations = check_report(body, AS_RECEIVER[fmt])
        assert violations == []
