"""The reference platform's Flask app: the report endpoint, the login, the page.

`create_app` builds one self-contained app; its state (kept reports, logins,
counters, faults) lives in a `ReceiverState` reachable with `state_of(app)`,
so tests in the same process can wait for a report instead of polling HTTP.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider

from bridge.report import Format
from receiver.conformance import check_headers, check_report, versions_matched
from receiver.faults import Fault, FaultError, FaultInjector, parse_fault
from receiver.login import (
    LoginRefused,
    LoginSettings,
    TokenBook,
    check_login_args,
    login_answer,
    login_refusal,
)
from receiver.store import Report, ReportStore

__all__ = ["LoginSettings", "ReceiverState", "create_app", "state_of"]

logger = logging.getLogger(__name__)

_EXTENSION = "se3_receiver"
# A report of the bridge's default max_devices (20,000) is about 4.5 MB.
MAX_BODY = 32 << 20
_CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"


class _JSON(DefaultJSONProvider):
    # Reports are shown as posted: key order is part of the contract, and
    # non-ASCII (the Chinese date in sw_version) stays readable.
    sort_keys = False
    ensure_ascii = False


@dataclass(frozen=True)
class ReceiverState:
    """Everything one app instance holds."""

    strict: bool
    login: LoginSettings
    store: ReportStore
    faults: FaultInjector | None
    format: Format = "v1"  # the payload version reports are checked against
    tokens: TokenBook = field(default_factory=TokenBook)
    require_token: bool = False


def state_of(app: Flask) -> ReceiverState:
    """The state of an app made by `create_app`."""
    state = app.extensions.get(_EXTENSION)
    if not isinstance(state, ReceiverState):
        raise LookupError("not an app made by receiver.app.create_app")
    return state


def _show(value: object) -> str:
    """A log-safe rendering of a value from an untrusted body."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else repr(value)
    return text[:64] if text.isprintable() else repr(text)[:64]


def _log_report(report: Report) -> None:
    payload = report.payload if isinstance(report.payload, dict) else {}
    devices = payload.get("sub_devices")
    devices = devices if isinstance(devices, list) else []
    online = sum(1 for d in devices if isinstance(d, dict) and d.get("ep_status") == "online")
    logger.info(
        "report %s from gateway %s (%s): %d sub-devices online, %d offline, %d violations, "
        "matches %s%s",
        _show(report.report_id),
        _show(payload.get("gateway_sn")),
        _show(payload.get("gateway_status")),
        online,
        len(devices) - online,
        len(report.violations),
        ", ".join(report.formats) or "no version",
        " (refused)" if report.rejected else "",
    )


def _fault_response(fault: Fault) -> Response:
    answer = jsonify(status=1, message=f"injected fault: HTTP {fault.status}")
    answer.status_code = fault.status
    if fault.retry_after is not None:
        answer.headers["Retry-After"] = str(fault.retry_after)
    return answer


def _apply_fault(faults: FaultInjector | None, target: str) -> Fault | None:
    """Delay as the fault says; return it if it, not the handler, answers."""
    fault = faults.take(target) if faults is not None else None
    if fault is None:
        return None
    if fault.delay:
        time.sleep(fault.delay)  # simulates a slow platform; runs in its own request thread
    return fault if fault.fails else None


def create_app(
    strict: bool = False,
    login: LoginSettings | None = None,
    keep: int = 200,
    faults: bool = False,
    fmt: Format = "v1",
    require_token: bool = False,
) -> Flask:
    """The reference platform, checking payload version `fmt`; `faults=True` adds /api/faults;
    `require_token=True` answers 401 to a report without the token of its dev_sno's latest
    login."""
    app = Flask(__name__)
    app.json = _JSON(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    injector = FaultInjector() if faults else None
    state = ReceiverState(strict, login or LoginSettings(), ReportStore(keep), injector, fmt,
                          TokenBook(), require_token)
    app.extensions[_EXTENSION] = state

    @app.post("/DeviceStatus")
    def device_status() -> Any:
        body = request.get_data(cache=False)
        fault = _apply_fault(state.faults, "report")
        if fault is not None:
            state.store.count_fault()
            logger.info("report answered by an injected fault: HTTP %d", fault.status)
            return _fault_response(fault)
        if state.require_token and not state.tokens.valid(
            request.args.get("dev_sno"), request.args.get("token")
        ):
            logger.info("report refused: no current token for dev_sno %s",
                        _show(request.args.get("dev_sno")))
            return jsonify(status=1, message="token missing, unknown or replaced by a newer "
                           "login", error={"code": 401, "message": "invalid token",
                                           "status": "UNAUTHENTICATED"}), 401
        payload, violations = check_report(body, state.format)
        formats = tuple(versions_matched(payload, known=(state.format, list(violations))))
        report_id = request.headers.get("X-Report-Id")
        violations += check_headers(request.headers.get("Content-Type"), report_id, payload)
        rejected = state.strict and bool(violations)
        report = state.store.add(payload, violations, report_id, rejected, formats)
        _log_report(report)
        if rejected:
            message = f"{len(violations)} violation(s) of the report contract"
            return jsonify(status=1, message=message, violations=violations), 422
        return jsonify(status=0, message="SUCCESS")

    @app.get("/api/reports")
    def reports() -> Any:
        since = request.args.get("since")
        try:
            after = float(since) if since else None
        except ValueError:
            return jsonify(status=1, message="since must be a Unix time in seconds"), 400
        gateway = request.args.get("gateway") or None
        device = request.args.get("device") or None
        kept = state.store.reports(after, gateway=gateway, device=device)
        return jsonify([r.as_json() for r in kept])

    @app.get("/api/timeline")
    def timeline() -> Any:
        gateway = request.args.get("gateway")
        if not gateway:
            return jsonify(status=1, message="gateway (a gateway_sn) is required"), 400
        device = request.args.get("device") or None
        return jsonify(gateway=gateway, device=device,
                       changes=state.store.timeline(gateway, device))

    @app.get("/api/gateway/login")
    def gateway_login() -> Any:
        fault = _apply_fault(state.faults, "login")
        if fault is not None:
            logger.info("login answered by an injected fault: HTTP %d", fault.status)
            return _fault_response(fault)
        dev_sno, hex_mac = request.args.get("dev_sno"), request.args.get("hex_mac")
        seen = {"dev_sno": dev_sno, "hex_mac": hex_mac, "remote_addr": request.remote_addr}
        try:
            check_login_args(dev_sno, hex_mac)
        except LoginRefused as exc:
            state.store.add_login({**seen, "ok": False, "reason": str(exc)})
            logger.info("login refused: %s", exc)
            return jsonify(login_refusal(str(exc))), 400
        state.store.add_login({**seen, "ok": True, "reason": ""})
        logger.info("login of %s (%s): report to %s", dev_sno, hex_mac, state.login.address)
        token = state.tokens.issue(dev_sno or "")
        return jsonify(login_answer(state.login, token))  # carries the token: never log it

    @app.get("/api/logins")
    def logins() -> Any:
        return jsonify(state.store.logins())

    @app.get("/api/stats")
    def stats() -> Any:
        return jsonify(state.store.stats_json())

    @app.get("/")
    def index() -> Response:
        page = Response(render_template("index.html", state=state, keep=keep))
        # The page only draws with textContent; the policy is a second line of defence.
        page.headers["Content-Security-Policy"] = _CSP
        return page

    if state.faults is not None:
        _add_fault_routes(app, state.faults)
    return app


def _add_fault_routes(app: Flask, injector: FaultInjector) -> None:
    @app.get("/api/faults")
    def list_faults() -> Any:
        return jsonify(injector.as_json())

    @app.post("/api/faults")
    def set_fault() -> Any:
        try:
            fault = parse_fault(request.get_json(silent=True))
        except FaultError as exc:
            return jsonify(status=1, message=str(exc)), 400
        injector.set(fault)
        logger.info("fault injected: %s", fault)
        return jsonify(status=0, message="SUCCESS", fault=fault.as_json())

    @app.delete("/api/faults")
    def clear_faults() -> Any:
        target = request.args.get("target")
        injector.clear(target)
        logger.info("faults cleared for %s", target or "all targets")
        return jsonify(status=0, message="SUCCESS")
