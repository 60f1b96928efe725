"""The sub-device entries of the two-report releases: F6 (V5R7C01) and F8 (V6).

F6 keeps the seed's `ep_*` keys with `ep_type` as a media type and `ep_name`
last; F8 renames everything `media_device_*` and adds `permission_id`. Keys
in the order of the vendor's tables (sophonai/bm1682, "采集端设备状态信息上报";
for F8 the MQ chapter's table). A device's media type is its record's
`media_type`, else follows from `ep_type` (gates, capture cameras and door
units send pictures; IP cameras stream). Its `media_device_id` is its
record's, else a UUID derived from `dev_sno` and its address: the same for the
same device across restarts, and different for each device and each box.
"""

from __future__ import annotations

import uuid

from bridge.reportparts import DeviceView, Json, ep_id

MEDIA_TYPES = {"0": "photo", "1": "photo", "4": "photo", "2": "rtsp", "3": "rtsp"}
# The namespace of derived device ids (uuid5 of "se3-bridge").
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "se3-bridge.media-device")


def media_type(view: DeviceView) -> str:
    record = view.record
    return record.media_type or MEDIA_TYPES[record.ep_type]


def media_device_id(dev_sno: str, view: DeviceView) -> str:
    """The record's id, else one derived from `dev_sno` and the address (stable)."""
    given = view.record.media_device_id
    if given is not None:
        return given
    return str(uuid.uuid5(_NAMESPACE, ep_id(dev_sno, view.ip)))


def entry_f6(dev_sno: str, view: DeviceView) -> Json:
    record = view.record
    return {
        "ep_id": ep_id(dev_sno, view.ip),
        "ep_ip": view.ip,
        "ep_status": view.status,
        "ep_location": record.ep_location,
        "ep_type": media_type(view),
        "ep_name": record.ep_name,
    }


def entry_f8(dev_sno: str, view: DeviceView) -> Json:
    record = view.record
    return {
        "media_device_id": media_device_id(dev_sno, view),
        "media_device_name": record.ep_name,
        "media_device_url": record.ep_url or view.ip,
        "media_device_ip": view.ip,
        "media_device_status": view.status,
        "media_device_type": media_type(view),
        "permission_id": record.permission_id or "",
    }
