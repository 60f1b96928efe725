"""The "face" service's configuration calls (`[console] listen`, the vendor's port 5555):
the box's config keys (console.keys) as V5R7C01 (`/SophonConfig/api/Configs`) and
V6 (`/sophon/v2/face/getconfigs`, `setconfigs`) read and set them.

A set names one or more keys; every key is checked before anything is published,
so a 400 naming a key means nothing changed (the vendor's boxes may apply the
keys before a failing one; this one never half-applies a call it refuses).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from bridge.urltext import redact
from console import keys
from console.api import told
from console.auth import changes_need_header, reads_only
from console.bodies import json_body, v6_body
from console.errors import NOT_FOUND, ApiError, param_error
from console.state import state

bp = Blueprint("face", __name__)
bp.before_request(changes_need_header)


@bp.route("/SophonConfig/api/Configs", methods=["GET", "PUT"])
def configs() -> Response:
    if request.method == "PUT":
        given = keys.config_dict(json_body())
        state().publish(keys.changes(given))
        return jsonify({"data": {"failed_configs": [], "success_configs": list(given)}})
    confirmed, values = _values()
    return told(confirmed, {"data": values})


@bp.route("/SophonConfig/api/Configs/<name>", methods=["GET"])
def config(name: str) -> Response:
    confirmed, values = _values()
    if name not in values:
        raise ApiError(404, NOT_FOUND, f"{name[:100]}: not a key this box serves")
    return told(confirmed, {"data": {name: values[name]}})


@bp.route("/sophon/v2/face/getconfigs", methods=["POST"])
@reads_only
def get_configs() -> Response:
    body = v6_body(optional=True)
    confirmed, values = _values()
    if "config_name" not in body:
        return told(confirmed, values)
    name = body["config_name"]
    if not isinstance(name, str) or name not in values:
        raise param_error("config_name", "not a key this box serves")
    return told(confirmed, {name: values[name]})


@bp.route("/sophon/v2/face/setconfigs", methods=["POST"])
def set_configs() -> Response:
    given = keys.config_dict(v6_body())
    changes = keys.changes(given)
    state().publish(changes)
    by_setting = {change.setting: change.value for change in changes}
    return jsonify({key: _shown(keys.SETTABLE[key], by_setting[keys.SETTABLE[key]])
                    for key in given})


def _values() -> tuple[bool, dict[str, Any]]:
    console = state()
    settings = console.in_force()
    info = console.view.snapshot().info
    return settings.confirmed, keys.values(settings, info.data.get("gateway_mac") if info
                                           else None)


def _shown(setting: str, value: str) -> object:
    """A value set, as the GET calls show it: periods as numbers, URLs redacted."""
    if setting.endswith("_period"):
        return int(value) if value else None
    if setting.endswith("_url"):
        return ",".join(redact(url) for url in value.split(",") if url)
    return value
