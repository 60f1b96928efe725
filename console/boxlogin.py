"""The box's own login and password-change calls, on both services as the vendor's
boxes have them (sophonai/bm1682: V2R6C01-V5R7C01 `SophonSystem/api/login` and
`password`, V5R7C01 `SophonConfig/api/...`, V6 `sophon/v2/system/login` and
`updatepassword`, `sophon/v2/face/login` and `changepassword`).

A login checks the console's admin user and password, is throttled with the
console's login form and, when right, starts a console session (the same cookie
the form sets). A password change needs the console's credentials and the old
password in its body; the new one is stored hashed and is the only one that
works from then on, on both listeners, the page and every call; every session
ends with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response as BaseResponse

from console.auth import check_password, log_in, open_to_all, throttled, throttled_for
from console.bodies import json_body, v6_body
from console.errors import (
    INTERNAL_ERROR,
    PASSWORD_ERROR,
    UNAUTHORIZED,
    V6_PREFIX,
    ApiError,
    error_response,
    param_error,
)
from console.password import PasswordError, check_new_password
from console.state import state

logger = logging.getLogger(__name__)

system_bp = Blueprint("system_login", __name__)
face_bp = Blueprint("face_login", __name__)

SUCCESS = {"data": {"success": True}}
RESULT = {"result": True}
Answer = BaseResponse | tuple[str, int]


def _login(answer: Mapping[str, object]) -> Callable[[], Answer]:
    @open_to_all
    def view() -> Answer:
        wait = throttled_for()
        if wait > 0:
            return throttled(wait)
        body = _body()
        user, password = _string(body, "username"), _string(body, "password")
        if log_in(user, password, f"{request.path[:60]} call"):
            return jsonify(answer)
        return error_response(401, UNAUTHORIZED, "wrong user name or password",
                              PASSWORD_ERROR)
    return view


def _password(answer: Mapping[str, object]) -> Callable[[], Answer]:
    def view() -> Answer:
        wait = throttled_for()
        if wait > 0:
            return throttled(wait)
        body = _body()
        user, old = _string(body, "username"), _string(body, "old_password")
        new = _string(body, "new_password")
        if not check_password(user, old, "password change"):
            return error_response(403, PASSWORD_ERROR, "username or old_password: wrong")
        try:
            check_new_password(new)
        except ValueError as exc:
            raise param_error("new_password", str(exc)) from None
        console = state()
        try:
            console.password.change(new)
        except PasswordError as exc:
            logger.error("console password not changed: %s", exc)
            raise ApiError(500, INTERNAL_ERROR, f"password not changed: {exc}") from None
        console.sessions.end_all()
        return jsonify(answer)
    return view


def _body() -> Mapping[str, object]:
    return v6_body() if request.path.startswith(V6_PREFIX) else json_body()


def _string(body: Mapping[str, object], field: str) -> str:
    if field not in body:
        raise param_error(field, "required")
    value = body[field]
    if not isinstance(value, str):
        raise param_error(field, "must be a string")
    return value


def _add(bp: Blueprint, path: str, name: str, view: Callable[[], Answer]) -> None:
    bp.add_url_rule(path, name, view, methods=["POST"])


# V5R7C01 documents its SophonConfig login at the system service's port too.
for _bp in (system_bp, face_bp):
    _add(_bp, "/SophonConfig/api/login", "config_login", _login(SUCCESS))
    _add(_bp, "/SophonConfig/api/password", "config_password", _password(SUCCESS))
_add(system_bp, "/SophonSystem/api/login", "system_login", _login(SUCCESS))
_add(system_bp, "/SophonSystem/api/password", "system_password", _password(SUCCESS))
_add(system_bp, "/sophon/v2/system/login", "v2_login", _login(RESULT))
_add(system_bp, "/sophon/v2/system/updatepassword", "v2_password", _password(SUCCESS))
_add(face_bp, "/sophon/v2/face/login", "v2_login", _login(RESULT))
# Its document answers {"result": true}, the other password calls {"data": {"success": true}}.
_add(face_bp, "/sophon/v2/face/changepassword", "v2_password",
     _password({**RESULT, **SUCCESS}))
