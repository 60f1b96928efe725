"""What the page shows of a report, read through its format's table.

The page knows no key of any format: `view` gives it, for one body, the name
of its box, its top-level facts and its nested values (flattened to dotted
paths, `gateway_ext_data.cpu_info.cur_cpu_usage`) in the table's order, keys
the table does not know last, and where its devices are with the columns to
show. Values stay as posted; the page draws them as text.
"""

from __future__ import annotations

from typing import Any

from receiver.tables import Format, Key


def _named(keys: tuple[Key, ...], obj: dict[str, object]) -> list[tuple[str, Key | None]]:
    """The names `obj` uses, in table order (aliases included), then those the table lacks."""
    known: list[tuple[str, Key | None]] = []
    for key in keys:
        known += [(name, key) for name in (key.name, *key.aliases) if name in obj]
    seen = {name for name, _ in known}
    return known + [(name, None) for name in obj if name not in seen]


def identity(fmt: Format, payload: object) -> str | None:
    """The text the body names its box by: the first of the format's identity keys."""
    if not isinstance(payload, dict):
        return None
    for key in fmt.identity:
        value = payload.get(key)
        if isinstance(value, str):
            return value
    return None


def devices_key(fmt: Format, payload: object) -> str | None:
    """The key the body lists its devices under (the table's, or a name its documents'
    examples use), if any."""
    if fmt.devices is None or not isinstance(payload, dict):
        return None
    row = next((k for k in fmt.keys if k.name == fmt.devices.key), None)
    names = (fmt.devices.key, *(row.aliases if row is not None else ()))
    return next((name for name in names if name in payload), None)


def devices_of(fmt: Format, payload: object) -> list[object]:
    """The body's list of devices; [] if it has none (or not a list)."""
    key = devices_key(fmt, payload)
    found = payload.get(key) if key is not None and isinstance(payload, dict) else None
    return found if isinstance(found, list) else []


def _flatten(prefix: str, obj: dict[str, object], keys: tuple[Key, ...],
             out: list[list[object]]) -> None:
    for name, key in _named(keys, obj):
        value = obj[name]
        path = f"{prefix}.{name}"
        if isinstance(value, dict):
            _flatten(path, value, key.keys if key is not None else (), out)
        else:
            out.append([path, value])


def view(fmt: Format, payload: object) -> dict[str, Any]:
    """The page's view of one body checked against `fmt`."""
    facts: list[list[object]] = []
    fields: list[list[object]] = []
    listed = devices_key(fmt, payload)
    if isinstance(payload, dict):
        for name, key in _named(fmt.keys, payload):
            value = payload[name]
            if name == listed:
                continue
            if isinstance(value, dict):
                _flatten(name, value, key.keys if key is not None else (), fields)
            else:
                facts.append([name, value])
    devices = fmt.devices
    return {
        "format": fmt.name,
        "source": fmt.source,
        "carries": fmt.carries,
        "identity": identity(fmt, payload),
        "identity_key": fmt.identity[0],
        "facts": facts,
        "fields": fields,
        "devices_key": listed,
        "columns": list(devices.columns) if devices is not None else [],
        "ip": devices.ip if devices is not None else None,
        "status": devices.status if devices is not None else None,
    }
