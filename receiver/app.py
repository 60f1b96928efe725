"""The reference platform's Flask app: the report endpoints, the login, the page.

The release it plays (`receiver.releases`) says where reports arrive and in
which format each is checked, and which login variant answers.

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

from receiver.conformance import (
    check_headers,
    check_query,
    inspect,
    parse_report,
    versions_matched,
)
from receiver.faults import Fault, FaultError, FaultInjector, parse_fault
from receiver.login import (
    Issued,
    LoginRefused,
    LoginSettings,
    TokenBook,
    login_answer,
    login_refusal,
    login_request,
)
from receiver.releases import DEFAULT_RELEASE, Release, Route, checked, release
from receiver.store import Report, ReportStore
from receiver.tables import FormatName

__all__ = ["LoginSettings", "ReceiverState", "create_app", "state_of"]

logger = logging.getLogger(__name__)

_EXTENSION = "se3_receiver"
# A report of the bridge's default max_devices (20,000) is about 4.5 MB.
MAX_BODY = 32 << 20
_CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'"


class _JSON(DefaultJSONProvider):
    # Reports are shown as posted: key order is part of the format, and
    # non-ASCII (the Chinese date in sw_version) stays readable.
    sort_keys = False
    ensure_ascii = False


@dataclass(frozen=True)
class ReceiverState:
    """Everything one app instance holds."""

    strict: bool
    login: Issued
    store: ReportStore
    faults: FaultInjector | None
    release: Release
    tokens: TokenBook = field(default_factory=TokenBook)
    require_token: bool = False

    @property
    def format(self) -> FormatName:
        """The format the (gateway) report is checked against."""
        return self.release.gateway.formats[0]


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
    statuses = report.device_statuses()
    online = sum(1 for status in statuses.values() if status == "online")
    # A report of the box alone (F5, F7) lists no devices: no counts to give.
    devices = ("" if report.table.devices is None
               else f"{online} sub-devices online, {len(statuses) - online} offline, ")
    logger.info(
        "report %s (%s at %s) from gateway %s (%s): %s%d violations, matches %s%s",
        _show(report.report_id),
        report.format,
        report.path,
        _show(report.gateway),
        _show(payload.get("gateway_status", "devices")),
        devices,
        len(report.violations),
        ", ".join(report.formats) or "no version",
        " (refused)" if report.rejected else "",
    )


def issued(settings: LoginSettings, rel: Release) -> Issued:
    """What a login issues under release `rel`: the addresses set, else the release's own."""
    devices = rel.devices.paths[0] if rel.devices is not None else None
    return Issued(settings.address or rel.gateway.paths[0],
                  settings.devices_address or devices, settings.period, settings.new_names)


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
    fmt: FormatName | None = None,
    require_token: bool = False,
    release_name: str = DEFAULT_RELEASE,
) -> Flask:
    """The reference platform of release `release_name`, checking its gateway report against
    `fmt` (one of the release's formats; None: its own); `faults=True` adds /api/faults;
    `require_token=True` answers 401 to a report without the token of its dev_sno's latest
    login. ValueError for an unknown release or a format it does not offer."""
    rel = checked(release(release_name), fmt)
    app = Flask(__name__)
    app.json = _JSON(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    injector = FaultInjector() if faults else None
    state = ReceiverState(strict, issued(login or LoginSettings(), rel), ReportStore(keep),
                          injector, rel, TokenBook(), require_token)
    app.extensions[_EXTENSION] = state
    for route in rel.routes:
        for path in route.paths:
            app.add_url_rule(path, f"report {path}", _report_view(state, route, path),
                             methods=["POST"])

    _add_api_routes(app, state, keep)
    if state.faults is not None:
        _add_fault_routes(app, state.faults)
    return app


def _report_view(state: ReceiverState, route: Route, path: str) -> Any:
    """The handler of POST `path`: one report of `route`, checked against its format."""
    fmt = route.formats[0]

    def receive() -> Any:
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
        payload, violations = parse_report(body)
        unmeasured: list[str] = []
        if not violations:
            verdict = inspect(payload, fmt)
            violations, unmeasured = verdict.violations, verdict.unmeasured
        formats = tuple(versions_matched(payload, known=(fmt, list(violations)),
                                         candidates=route.formats))
        report_id = request.headers.get("X-Report-Id")
        violations += check_headers(request.headers.get("Content-Type"), report_id, payload)
        violations += check_query(request.args.get("dev_sno"), payload, fmt)
        rejected = state.strict and bool(violations)
        report = state.store.add(payload, violations, report_id, rejected, formats, fmt=fmt,
                                 unmeasured=tuple(unmeasured), path=path)
        _log_report(report)
        if rejected:
            message = f"{len(violations)} violation(s) of its format"
            return jsonify(status=1, message=message, violations=violations), 422
        return jsonify(status=0, message="SUCCESS")

    return receive


def _add_api_routes(app: Flask, state: ReceiverState, keep: int) -> None:
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
        variant = state.release.login
        args = request.args
        seen = {"dev_sno": args.get("mq_license_key") or args.get("dev_sno"),
                "hex_mac": args.get("hex_mac"), "device_sn": args.get("device_sn"),
                "remote_addr": request.remote_addr, "variant": variant}
        try:
            asked = login_request(variant, args)
        except LoginRefused as exc:
            state.store.add_login({**seen, "ok": False, "reason": str(exc)})
            logger.info("login refused: %s", exc)
            return jsonify(login_refusal(str(exc))), 400
        code = asked["code"] or ""
        state.store.add_login({**seen, "dev_sno": code, "ok": True, "reason": ""})
        logger.info("login (%s) of %s (%s): report to %s", variant, _show(code),
                    _show(asked.get("hex_mac") or asked.get("device_sn")), state.login.address)
        token = state.tokens.issue(code)
        # carries the token: never log it
        return jsonify(login_answer(variant, state.login, token, code))

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
