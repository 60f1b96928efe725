"""Who may use the console: the login form, and the check every request passes first.

Two ways in, both as the one user `admin` with the password from
`console.password_file`:
- the page: a login form that sets a signed session cookie (whose id the
  console keeps, so that logging out ends it: console.sessions);
- scripts: `Authorization: Basic admin:<password>` or `Bearer <password>` on
  each request (the vendor's calls take only these, never the cookie, so a
  forged cross-site form cannot use a browser's session).
The box's own login calls (console.boxlogin) log in as the form does: they set
the same session cookie. A 401 never asks the browser for Basic credentials (it
would keep sending them, to cross-site forms too). Failed attempts (form, login
calls, header credentials, a password change's old password) count per client
address: after 5 in a minute, its attempts are taken one every few seconds
(console.throttle), the right password too, but it is never refused for others'
wrong guesses.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from typing import TypeVar

from flask import (
    Blueprint,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from bridge.logs import Damper
from console.errors import TOO_MANY_REQUESTS, UNAUTHORIZED, error_response, is_api_path
from console.password import USER
from console.state import state as _console

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
_OPEN = frozenset({"auth.login", "static"})  # the login form and its css/js: no data in them
HEADER = "header"
SESSION = "session"
_failures_logged = Damper(burst=10, window=60.0)
_View = TypeVar("_View", bound=Callable[..., object])


def open_to_all(view: _View) -> _View:
    """Mark a view that needs no login (the box's login calls)."""
    view.se3_open = True  # type: ignore[attr-defined]
    return view


def reads_only(view: _View) -> _View:
    """Mark a POST view that changes nothing: a session may call it too."""
    view.se3_reads = True  # type: ignore[attr-defined]
    return view


def _marked(mark: str) -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, mark, False))


def require_login() -> BaseResponse | tuple[str, int] | None:
    """Let the request through only with a session or valid credentials in its header."""
    console = _console()
    client = request.remote_addr or "?"
    given = _header_credentials()
    if given is not None:
        wait = console.throttle.wait(client)
        if wait > 0:
            return throttled(wait)
        user, password = given
        if hmac.compare_digest(user.encode(), USER.encode()) & console.password.matches(password):
            g.auth = HEADER
            return None
        _failed(client, "API credentials")
        return _refuse("wrong credentials")
    if session.get("user") == USER and console.sessions.alive(session.get("sid")):
        g.auth = SESSION
        return None
    if request.endpoint in _OPEN or _marked("se3_open"):
        return None
    return _refuse("log in first: HTTP Basic admin:<password> or Authorization: Bearer <password>")


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int]:
    if request.method == "GET":
        return render_template("login.html", error=None), 200
    wait = throttled_for()
    if wait > 0:
        return throttled(wait)
    if log_in(request.form.get("username", ""), request.form.get("password", ""), "login form"):
        return redirect(url_for("pages.index"), 303)
    return render_template("login.html", error="Wrong user name or password."), 401


@bp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    _console().sessions.end(session.get("sid"))
    session.clear()
    return redirect(url_for("auth.login"), 303)


def changes_need_header() -> BaseResponse | None:
    """Before a call: one that changes something takes only the Authorization header.

    The cookie would let a cross-site form act with a browser's session.
    """
    if request.method == "GET" or g.get("auth") == HEADER or _marked("se3_open") \
            or _marked("se3_reads"):
        return None
    return error_response(401, UNAUTHORIZED, "this call needs HTTP Basic admin:<password> or "
                                             "Authorization: Bearer <password>")


def throttled_for() -> float:
    """Seconds this client must wait before its next login attempt (0: none)."""
    return _console().throttle.wait(request.remote_addr or "?")


def check_password(user: str, password: str, how: str) -> bool:
    """Whether `user`/`password` are the admin's; a failure counts for the throttle."""
    console = _console()
    if hmac.compare_digest(user.encode(), USER.encode()) & console.password.matches(password):
        return True
    _failed(request.remote_addr or "?", how)
    return False


def log_in(user: str, password: str, how: str) -> bool:
    """Check the credentials and, when right, start a session (its cookie in the answer)."""
    if not check_password(user, password, how):
        return False
    console = _console()
    client = request.remote_addr or "?"
    console.sessions.end(session.get("sid"))  # a session replaced is a session ended
    session.clear()
    session.permanent = True
    session["user"] = USER
    session["sid"] = console.sessions.start()
    logger.info("console login (%s) from %s", how, client)
    return True


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


def throttled(wait: float) -> BaseResponse | tuple[str, int]:
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
    return is_api_path(request.path) or "Authorization" in request.headers
