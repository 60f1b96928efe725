"""The web console at `/`: the gateway, its devices, the report targets, the settings
in force, and forms to change them and to send a report now.

The page is rendered on the server (Jinja escapes every value); a little script
fetches `/status`, the same fragment, every two seconds, so it updates without
a reload. Forms post back here with their CSRF token and come back to `/`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from bridge.urltext import redact
from console import calls
from console.errors import ApiError, PublishError
from console.state import state

bp = Blueprint("pages", __name__)

POLL_MS = 2000
MAX_ROWS = 1000  # devices drawn on the page (every two seconds); /api/view has them all
LABELS = {
    "release": "Platform release",
    "report_url": "Report URL",
    "report_period": "Report period",
    "devices_report_url": "Sub-device report URL",
    "devices_report_period": "Sub-device report period",
    "login_url": "Login URL",
    "dev_sno": "Authorisation code (dev_sno)",
    "reporter_id": "Reporter id",
}
# Shown (and settable) only under a release that uses them.
TWO_REPORTS = ("devices_report_url", "devices_report_period")
REPORTER = ("reporter_id",)


@bp.route("/")
def index() -> str:
    model = state().model()
    return render_template("index.html", m=model, labels=LABELS, forms=_forms(model),
                           poll_ms=POLL_MS, max_rows=MAX_ROWS)


@bp.route("/status")
def status() -> str:
    return render_template("_status.html", m=state().model(), labels=LABELS, max_rows=MAX_ROWS)


@bp.route("/settings/<name>", methods=["POST"])
def change(name: str) -> BaseResponse:
    if name not in LABELS:
        abort(404)
    value = "" if request.form.get("clear") else request.form.get("value", "")
    try:
        wanted = calls.setting(name, value, name)
        state().publish([wanted])
    except ApiError as exc:
        flash(f"{LABELS[name]} not changed: {exc.message}", "error")
    except PublishError as exc:
        flash(f"{LABELS[name]} not changed: {exc.message}", "error")
    else:
        checked = wanted.value
        shown = redact(checked) if "://" in checked else checked
        done = f"set to {shown}" if checked else "cleared: the next source is in force"
        flash(f"{LABELS[name]} {done}.", "ok")
    return redirect(url_for("pages.index"), 303)


@bp.route("/report-now", methods=["POST"])
def report_now() -> BaseResponse:
    try:
        state().request_report()
    except PublishError as exc:
        flash(f"Report not requested: {exc.message}", "error")
    else:
        flash("Report requested: the bridge sends one within its minimum interval.", "ok")
    return redirect(url_for("pages.index"), 303)


@bp.route("/devices/<ip>/remove", methods=["POST"])
def remove_device(ip: str) -> BaseResponse:
    try:
        state().remove_device(ip)
    except (ApiError, PublishError) as exc:
        flash(f"Device {ip} not removed: {exc.message}", "error")
    else:
        flash(f"Device {ip} removed: its record is deleted from the broker.", "ok")
    return redirect(url_for("pages.index"), 303)


def _forms(model: dict[str, Any]) -> list[str]:
    """The settings the page offers to change under the release in force."""
    release = model["release"]
    hidden = (() if release["two_reports"] else TWO_REPORTS) + \
        (() if release["reporter_id"] else REPORTER)
    return [name for name in LABELS if name not in hidden]


def problem_page(message: str, status_code: int) -> tuple[str, int]:
    return render_template("problem.html", message=message), status_code


@bp.app_template_filter("ago")
def ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


@bp.app_template_filter("clock")
def clock(at: float | None) -> str:
    if at is None:
        return "—"
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


@bp.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 0:
        return "expired"
    return f"in {seconds:.0f} s" if seconds < 120 else f"in {seconds / 60:.0f} min"
