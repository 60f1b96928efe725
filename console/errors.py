"""The console's errors, in the vendor's two failure shapes.

Every failure of the API answers `{"error": {"code", "message", "status"}}`
(the vendor's documents, sophonai/bm1682 V2R2C01): `code` is the HTTP status,
`status` a word for the kind, `message` says what was wrong and names the field.
The V6 calls (under `/sophon/v2/`) answer `{"error": {"code", "message"}}` with a
string `code` from the V6 documents' list (`INVALID_ARGUMENTS`, ...), with the
same HTTP status; `error_response` picks the shape by the request's path.
"""

from __future__ import annotations

from flask import Response, has_request_context, jsonify, request

PARAM_ERROR = "PARAM_ERROR"
UNAUTHORIZED = "UNAUTHORIZED"
TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
BROKER_ERROR = "BROKER_ERROR"

V6_PREFIX = "/sophon/v2/"
# The calls' paths: a failure there answers JSON, elsewhere (the page) HTML.
_API_PREFIXES = ("/SophonFogSys/", "/SophonMQ/", "/SophonSystem/", "/SophonConfig/", "/sophon/",
                 "/api/")
# The V6 documents' error codes (their spelling).
UNSUPPORT_CONTENT_TYPE = "UNSUPPORT_CONTENT_TYPE"
INVALID_REQUEST_JSON = "INVALID_REQUEST_JSON"
MISSING_ARGUMENTS = "MISSING_ARGUMENTS"
INVALID_ARGUMENTS = "INVALID_ARGUMENTS"
PASSWORD_ERROR = "PASSWORD_ERROR"  # noqa: S105 - an error code
INTERNAL_ERROR = "INTERNAL_ERROR"
_V6_CODES = {PARAM_ERROR: INVALID_ARGUMENTS, UNAUTHORIZED: PASSWORD_ERROR,
             TOO_MANY_REQUESTS: PASSWORD_ERROR, BROKER_ERROR: INTERNAL_ERROR}


def is_api_path(path: str) -> bool:
    """Whether `path` is one of the calls' (JSON answers, errors included)."""
    return path.startswith(_API_PREFIXES)


class ApiError(Exception):
    """A call that cannot be done, with the HTTP status it answers."""

    def __init__(self, http_status: int, kind: str, message: str,
                 v6_code: str | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.kind = kind
        self.message = message
        self.v6_code = v6_code  # the V6 calls' code, when not the kind's usual one

    def __str__(self) -> str:
        return f"{self.http_status} {self.kind}: {self.message}"


def param_error(field: str, problem: str, v6_code: str | None = None) -> ApiError:
    code = v6_code or (MISSING_ARGUMENTS if problem == "required" else INVALID_ARGUMENTS)
    return ApiError(400, PARAM_ERROR, f"{field}: {problem}", code)


def error_response(http_status: int, kind: str, message: str,
                   v6_code: str | None = None) -> Response:
    """The failure in the shape of the call being answered (V6 or older)."""
    if has_request_context() and request.path.startswith(V6_PREFIX):
        body: dict[str, object] = {"code": v6_code or _V6_CODES.get(kind, kind),
                                   "message": message}
    else:
        body = {"code": http_status, "message": message, "status": kind}
    response = jsonify({"error": body})
    response.status_code = http_status
    return response


class PublishError(Exception):
    """The broker did not take a config topic: not connected, refused, or no answer."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message

    def as_api_error(self) -> ApiError:
        return ApiError(self.http_status, BROKER_ERROR, self.message)
