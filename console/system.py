"""The "system" service's calls (`[console] system_listen`, the vendor's port 8888): the
gateway report's URLs and period as V5R7C01 (`/SophonSystem/api/monitor`) and V6
(`/sophon/v2/system/*systemmonitorconfig`) set and read them.

V5R7C01 wraps its answers in `{"data": ...}`, V6 answers flat; each call's
failures come in its release's shape (console.errors). A change is the retained
`config/...` topics, published and acknowledged before the answer.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from bridge.urltext import redact
from console import calls
from console.api import told
from console.auth import changes_need_header, reads_only
from console.bodies import json_body, v6_body
from console.calls import Change
from console.state import state

bp = Blueprint("system", __name__)
bp.before_request(changes_need_header)


@bp.route("/SophonSystem/api/monitor", methods=["GET", "POST"])
def monitor() -> Response:
    console = state()
    if request.method == "POST":
        changes = calls.monitor(json_body())
        console.publish(changes)
        settings = console.in_force()
        return jsonify({"data": {
            "dev_sno": _value(changes, "dev_sno", settings.dev_sno.value),
            "monitor_address_list": _urls(changes),
            "report_period": _period(changes),
        }})
    settings = console.in_force()
    return told(settings.confirmed, {"data": {
        "dev_sno": settings.dev_sno.value,
        "monitor_address_list": list(settings.report_url.value),
        "report_period": settings.report_period.value,
    }})


@bp.route("/sophon/v2/system/setsystemmonitorconfig", methods=["POST"])
def set_system_monitor_config() -> Response:
    console = state()
    changes = calls.system_monitor_config(v6_body())
    console.publish(changes)
    settings = console.in_force()
    return jsonify({
        "device_monitor_url": _urls(changes),
        "device_monitor_report_period": _period(changes),
        "reporter_id": _value(changes, "reporter_id", settings.reporter_id.value),
    })


@bp.route("/sophon/v2/system/getsystemmonitorconfig", methods=["POST", "GET"])
@reads_only
def get_system_monitor_config() -> Response:
    v6_body(optional=True)  # no arguments; a body that is there must still be JSON
    settings = state().in_force()
    return told(settings.confirmed, {
        "reporter_id": settings.reporter_id.value,
        "device_monitor_url": ",".join(settings.report_url.value),
        "device_monitor_report_period": settings.report_period.value,
    })


def _value(changes: list[Change], setting: str, otherwise: str) -> str:
    """The value a call set for `setting`, else what is in force (the call left it)."""
    for change in changes:
        if change.setting == setting:
            return change.value
    return otherwise


def _period(changes: list[Change]) -> int | None:
    text = _value(changes, "report_period", "")
    return int(text) if text else None  # None: cleared


def _urls(changes: list[Change]) -> list[str]:
    text = _value(changes, "report_url", "")
    return [redact(url) for url in text.split(",") if url]
