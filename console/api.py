"""The vendor's configuration calls (sophonai/bm1682, V2R2C01 sections 4.5 and 8) and
`GET /api/view`, the console's whole view as JSON.

A call's effect is a retained `config/...` topic, published at QoS 1 and
answered only once the broker has acknowledged it. A GET answers what is in
force: what the bridge says it uses (`bridge/settings`), else, until the
bridge has said so, the config topics and the file; the `X-SE3-Settings`
header tells which.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from flask import Blueprint, Response, g, jsonify, request

from bridge.http import redact
from console import calls
from console.auth import HEADER
from console.calls import Change
from console.errors import UNAUTHORIZED, PublishError, error_response, param_error
from console.present import FROM_BRIDGE, NOT_CONFIRMED, InForce, in_force
from console.state import state

bp = Blueprint("api", __name__)
_PREFIXES = ("/SophonFogSys/", "/SophonMQ/", "/api/")
_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


def is_api_path(path: str) -> bool:
    return path.startswith(_PREFIXES)


@bp.before_request
def _header_credentials_only() -> Response | None:
    # The cookie would let a cross-site form act with a browser's session: the
    # calls that change something take only the Authorization header.
    if request.method != "GET" and g.get("auth") != HEADER:
        return error_response(401, UNAUTHORIZED, "this call needs HTTP Basic "
                              "admin:<password> or Authorization: Bearer <password>")
    return None


@bp.route("/SophonFogSys/api/MonitorServerUrl", methods=["GET", "POST"])
def monitor_server_url() -> Response:
    if request.method == "POST":
        _publish(calls.monitor_server_url(_body(forms=True)))
        return jsonify({"data": "ok"})
    settings = _settings()
    return _told(settings.confirmed, {"data": {
        "monitor_server_url": ",".join(settings.report_url.value),
        "reported_peroid": settings.report_period.value,
    }})


@bp.route("/SophonMQ/api/LoginUrl", methods=["GET", "PUT"])
def login_url() -> Response:
    if request.method == "PUT":
        change = calls.login_url(_body())
        _publish([change])
        return jsonify({"data": {"response": _shown_url(change.value)}})
    settings = _settings()
    return _told(settings.confirmed, {"data": {"response": settings.login_url.value}})


@bp.route("/SophonMQ/api/DevSno", methods=["GET", "PUT"])
def dev_sno() -> Response:
    if request.method == "PUT":
        change = calls.dev_sno(_body())
        _publish([change])
        return jsonify({"data": {"response": change.value}})
    # The vendor's GET page (table and example) names the field `dev_sno`, its PUT
    # `response`: both, so a script written for either finds the code.
    settings = _settings()
    code = settings.dev_sno.value
    return _told(settings.confirmed, {"data": {"response": code, "dev_sno": code}})


@bp.route("/api/report-now", methods=["POST"])
def report_now() -> Response:
    """Not a vendor call: ask the bridge for a report now (what the page's button does)."""
    state().request_report()
    return jsonify({"data": "ok"})


@bp.route("/api/view", methods=["GET"])
def view() -> Response:
    return jsonify(state().model())


def _settings() -> InForce:
    console = state()
    return in_force(console.view.snapshot(), console.config)


def _told(confirmed: bool, body: dict[str, object]) -> Response:
    response = jsonify(body)
    response.headers["X-SE3-Settings"] = FROM_BRIDGE if confirmed else f"fallback: {NOT_CONFIRMED}"
    return response


def _shown_url(url: str) -> str:
    return redact(url) if url else ""


def _body(forms: bool = False) -> Mapping[str, object]:
    """The request's JSON object (or its form fields, where the vendor takes form-data)."""
    raw = request.get_data(cache=True)
    looks_json = raw.lstrip()[:1] in (b"{", b"[")
    if forms and request.mimetype in _FORMS and not looks_json:
        return request.form.to_dict()
    if not raw.strip():
        raise param_error("body", "empty; send a JSON object")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        what = "a JSON object or form-data" if forms else "a JSON object"
        raise param_error("body", f"not valid JSON; send {what}") from None
    if not isinstance(value, dict):
        raise param_error("body", "must be a JSON object")
    return value


def _publish(changes: list[Change]) -> None:
    """Publish each change; stop at the first the broker does not take, and say what was done."""
    console = state()
    done: list[str] = []
    for change in changes:
        try:
            console.publisher.publish(console.config_topic(change.setting), change.value,
                                      retain=True)
        except PublishError as exc:
            if done:
                exc.message += f" (already applied: {', '.join(done)})"
            raise
        done.append(change.setting)
