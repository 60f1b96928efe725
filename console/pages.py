"""The web console at `/`: the gateway, its devices, the report targets, the settings
in force, and forms to change them and to send a report now.

The page is rendered on the server (Jinja escapes every value); a little script
fetches `/status`, the same fragment, every two seconds, so it updates without
a reload. Forms post back here with their CSRF token and come back to `/`.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from bridge.http import redact
from console import calls
from console.errors import ApiError, PublishError
from console.state import state

bp = Blueprint("pages", __name__)

POLL_MS = 2000
MAX_ROWS = 1000  # devices drawn on the page (every two seconds); /api/view has them all
LABELS = {
    "report_url": "Report URL",
    "report_period": "Report period",
    "login_url": "Login URL",
    "dev_sno": "Authorisation code (dev_sno)",
}


@bp.route("/")
def index() -> str:
    return render_template("index.html", m=state().model(), labels=LABELS, poll_ms=POLL_MS,
                           max_rows=MAX_ROWS)


@bp.route("/status")
def status() -> str:
    return render_template("_status.html", m=state().model(), labels=LABELS, max_rows=MAX_ROWS)


@bp.route("/settings/<name>", methods=["POST"])
def change(name: str) -> BaseResponse:
    if name not in LABELS:
        abort(404)
    value = "" if request.form.get("clear") else request.form.get("value", "")
    try:
        checked = _check(name, value)
        console = state()
        console.publisher.publish(console.config_topic(name), checked, retain=True)
    except ApiError as exc:
        flash(f"{LABELS[name]} not changed: {exc.message}", "error")
    except PublishError as exc:
        flash(f"{LABELS[name]} not changed: {exc.message}", "error")
    else:
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


def problem_page(message: str, status_code: int) -> tuple[str, int]:
    return render_template("problem.html", message=message), status_code


def _check(name: str, value: str) -> str:
    if name == "report_url":
        return calls.report_urls(value)
    if name == "report_period":
        return calls.report_period(value.strip())
    if name == "login_url":
        return calls.login_url({"login_url": value}).value
    return calls.dev_sno({"dev_sno": value}).value


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
