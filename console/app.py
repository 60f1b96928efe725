"""The console's Flask apps: `create_app` wires one service's blueprints to the
`ConsoleState` both services share.

    face service (`[console] listen`, the vendor's 5555):
      auth      the login form, and the check every request passes first
      api       the vendor's SE3 calls and `GET /api/view`
      face      the SophonConfig and V6 face config calls (console.keys)
      boxlogin  the box's login and password-change calls
      pages     the web console at `/` and its forms
    system service (`[console] system_listen`, the vendor's 8888):
      auth, system (the monitor calls of V5R7C01 and V6), boxlogin

Sessions are signed with a key made at start, one for both services (a restart
logs everyone out; a login on either holds on both),
the cookie is HttpOnly and SameSite=Strict, every form carries a CSRF token
(Flask-WTF's CSRFProtect), and every answer carries a CSP that allows only the
console's own scripts and styles.
"""

from __future__ import annotations

from typing import Literal

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from console import api, auth, boxlogin, face, pages, system
from console.errors import ApiError, PublishError, error_response, is_api_path
from console.sessions import LIFETIME
from console.state import EXTENSION, ConsoleState

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
MAX_BODY = 64 * 1024
Service = Literal["face", "system"]
SERVICES: tuple[Service, ...] = ("face", "system")


def create_app(console: ConsoleState, service: Service = "face") -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=console.secret_key,
        SESSION_COOKIE_NAME="se3_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=LIFETIME,  # from the login: console.sessions ends it
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=MAX_BODY,
        WTF_CSRF_TIME_LIMIT=None,  # valid as long as the session: a page may stay open all day
        # Over HTTPS Flask-WTF also wants a Referer naming this host; the page sends none
        # (Referrer-Policy: no-referrer), and the token with a SameSite=Strict cookie is
        # the protection.
        WTF_CSRF_SSL_STRICT=False,
    )
    app.session_interface = _SessionInterface()
    app.extensions[EXTENSION] = console
    # The login check must run before the CSRF check: no session, no token talk.
    app.before_request(auth.require_login)
    app.before_request(_whole_body_or_413)  # before the CSRF check reads the form
    csrf = CSRFProtect(app)
    # The calls: JSON, and header credentials only for a change (no cookie, no CSRF).
    calls = (api.bp, face.bp, boxlogin.face_bp) if service == "face" else \
        (system.bp, boxlogin.system_bp)
    for bp in calls:
        csrf.exempt(bp)
        app.register_blueprint(bp)
    if service == "face":
        app.register_blueprint(auth.bp)  # the login form
        app.register_blueprint(pages.bp)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.http_status, exc.kind, exc.message, exc.v6_code)

    @app.errorhandler(PublishError)
    def _publish_error(exc: PublishError) -> Response:
        err = exc.as_api_error()
        return error_response(err.http_status, err.kind, err.message)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> tuple[str, int]:
        return pages.problem_page(f"Refused: {exc.description} Reload the page and try again.",
                                  403)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        if is_api_path(request.path):
            kind = (exc.name or "error").upper().replace(" ", "_")
            response = error_response(exc.code or 500, kind, _describe(exc))
            if exc.code == 405 and exc.response is None:
                allowed = exc.get_headers()
                response.headers.extend([(k, v) for k, v in allowed if k == "Allow"])
            return response
        return exc

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


class _SessionInterface(SecureCookieSessionInterface):
    """The session cookie is `Secure` when it is set over HTTPS (a listener off
    loopback), so the browser never sends it over plain HTTP."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


def _whole_body_or_413() -> None:
    """A body without Content-Length (chunked) is read up to MAX_BODY and then stops
    without a word: one more read tells whether it was cut (werkzeug's capped stream
    raises the 413 itself), as a body over the cap with a Content-Length is."""
    if request.content_length is None and request.headers.get("Transfer-Encoding"):
        request.get_data(cache=True)
        if request.stream.read(1):
            raise RequestEntityTooLarge()


def _describe(exc: HTTPException) -> str:
    if exc.code == 404:
        return f"{request.path[:200]}: no such call"
    if exc.code == 405:
        return f"{request.path[:200]}: method {request.method} not allowed"
    if exc.code == 413:
        return f"body: larger than {MAX_BODY} bytes"
    return exc.description or exc.name
