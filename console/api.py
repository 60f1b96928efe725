"""The vendor's configuration calls (sophonai/bm1682, V2R2C01 sections 4.5 and 8) and
`GET /api/view`, the console's whole view as JSON.

A call's effect is a retained `config/...` topic, published at QoS 1 and
answered only once the broker has acknowledged it. A GET answers what is in
force: what the bridge says it uses (`bridge/settings`), else, until the
bridge has said so, the config topics and the file; the `X-SE3-Settings`
header tells which.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from bridge.urltext import redact
from console import calls
from console.auth import changes_need_header
from console.bodies import json_body
from console.present import FROM_BRIDGE, NOT_CONFIRMED
from console.state import state

bp = Blueprint("api", __name__)
bp.before_request(changes_need_header)
@bp.route("/SophonFogSys/api/MonitorServerUrl", methods=["GET", "POST"])
def monitor_server_url() -> Response:
    if request.method == "POST":
        state().publish(calls.monitor_server_url(json_body(forms=True)))
        return jsonify({"data": "ok"})
    settings = state().in_force()
    return told(settings.confirmed, {"data": {
        "monitor_server_url": ",".join(settings.report_url.value),
        "reported_peroid": settings.report_period.value,
    }})


@bp.route("/SophonMQ/api/LoginUrl", methods=["GET", "PUT"])
def login_url() -> Response:
    if request.method == "PUT":
        change = calls.login_url(json_body())
        state().publish([change])
        return jsonify({"data": {"response": shown_url(change.value)}})
    settings = state().in_force()
    return told(settings.confirmed, {"data": {"response": settings.login_url.value}})


@bp.route("/SophonMQ/api/DevSno", methods=["GET", "PUT"])
def dev_sno() -> Response:
    if request.method == "PUT":
        change = calls.dev_sno(json_body())
        state().publish([change])
        return jsonify({"data": {"response": change.value}})
    # The vendor's GET page (table and example) names the field `dev_sno`, its PUT
    # `response`: both, so a script written for either finds the code.
    settings = state().in_force()
    code = settings.dev_sno.value
    return told(settings.confirmed, {"data": {"response": code, "dev_sno": code}})


@bp.route("/api/report-now", methods=["POST"])
def report_now() -> Response:
    """Not a vendor call: ask the bridge for a report now (what the page's button does)."""
    state().request_report()
    return jsonify({"data": "ok"})


@bp.route("/api/devices/<ip>", methods=["DELETE"])
def remove_device(ip: str) -> Response:
    """Not a vendor call: delete a stale device's retained record (the page's button)."""
    topic = state().remove_device(ip)
    return jsonify({"data": {"deleted": ip, "topic": topic}})


@bp.route("/api/view", methods=["GET"])
def view() -> Response:
    return jsonify(state().model())


def told(confirmed: bool, body: dict[str, object]) -> Response:
    response = jsonify(body)
    response.headers["X-SE3-Settings"] = FROM_BRIDGE if confirmed else f"fallback: {NOT_CONFIRMED}"
    return response


def shown_url(url: str) -> str:
    return redact(url) if url else ""
