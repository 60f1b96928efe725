"""Who may use the console: the login form, and the check every request passes first.

Two ways in, both as the one user `admin` with the password from
`console.password_file`:
- the page: a login form that sets a signed session cookie (whose id the
  console keeps, so that logging out ends it: console.sessions);
- scripts: `Authorization: Basic admin:<password>` or `Bearer <password>` on
  each request (the vendor's calls take only these, never the cookie, so a
  forged cross-site form cannot use a browser's session).
A 401 never asks the browser for Basic credentials (it would keep sending them,
to cross-site forms too). Failed attempts count per client address: after 5 in
a minute, its attempts are taken one every few seconds (console.throttle), the
right password too, but it is never refused for others' wrong guesses.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from flask import (
    Blueprint,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from bridge.logs import Damper
from console.errors import TOO_MANY_REQUESTS, UNAUTHORIZED, error_response
from console.password import USER
from console.state import state as _console

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
_OPEN = frozenset({"auth.login", "static"})  # the login form and its css/js: no data in them
HEADER = "header"
SESSION = "session"
_failures_logged = Damper(burst=10, window=60.0)


@bp.before_app_request
def require_login() -> BaseResponse | tuple[str, int] | None:
    """Let the request through only with a session or valid credentials in its header."""
    console = _console()
    client = request.remote_addr or "?"
    given = _header_credentials()
    if given is not None:
        wait = console.throttle.wait(client)
        if wait > 0:
            return _throttled(wait)
        user, password = given
        if hmac.compare_digest(user.encode(), USER.encode()) & console.password.matches(password):
            g.auth = HEADER
            return None
        _failed(client, "API credentials")
        return _refuse("wrong credentials")
    if session.get("user") == USER and console.sessions.alive(session.get("sid")):
        g.auth = SESSION
        return None
    if request.endpoint in _OPEN:
        return None
    return _refuse("log in first: HTTP Basic admin:<password> or Authorization: Bearer <password>")


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int]:
    if request.method == "GET":
        return render_template("login.html", error=None), 200
    console = _console()
    client = request.remote_addr or "?"
    wait = console.throttle.wait(client)
    if wait > 0:
        return _throttled(wait)
    user = request.form.get("username", "")
    password = request.form.get("password", "")
    if hmac.compare_digest(user.encode(), USER.encode()) & console.password.matches(password):
        console.sessions.end(session.get("sid"))  # a session replaced is a session ended
        session.clear()
        session.permanent = True
        session["user"] = USER
        session["sid"] = console.sessions.start()
        logger.info("console login from %s", client)
        return redirect(url_for("pages.index"), 303)
    _failed(client, "login form")
    return render_template("login.html", error="Wrong user name or password."), 401


@bp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    _console().sessions.end(session.get("sid"))
    session.clear()
    return redirect(url_for("auth.login"), 303)


def _header_credentials() -> tuple[str, str] | None:
    """(user, password) from a Basic or Bearer Authorization header; None without one."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return USER, value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        user, _, password = decoded.partition(":")
        return user, password
    return ("", "") if header else None


def _failed(client: str, how: str) -> None:
    count = _console().throttle.failed(client)
    # Apart from the request log (which a flood damps), and per address, so that
    # one address's guesses cannot hide another's.
    allowed, suppressed = _failures_logged.allow(client)
    if allowed:
        logger.warning("failed console login (%s) from %s: %d in the last minute%s", how,
                       client, count, f" ({suppressed} more not logged)" if suppressed else "")


def _refuse(message: str) -> BaseResponse | tuple[str, int]:
    if _wants_json():
        response = error_response(401, UNAUTHORIZED, message)
        response.headers["WWW-Authenticate"] = 'Bearer realm="se3-console"'
        return response
    return render_template("login.html", error=None), 401


def _throttled(wait: float) -> BaseResponse | tuple[str, int]:
    seconds = max(1, int(wait + 0.999))
    if not _wants_json():
        error = (f"Too many failed logins from this address: attempts are taken one at a "
                 f"time; try again in {seconds} s.")
        return render_template("login.html", error=error), 429
    response = error_response(
        429, TOO_MANY_REQUESTS, f"too many failed logins from this address: attempts are "
                                f"taken one at a time; try again in {seconds} s")
    response.headers["Retry-After"] = str(seconds)
    return response


def _wants_json() -> bool:
    from console.api import is_api_path

    return is_api_path(request.path) or "Authorization" in request.headers
