"""The console's errors, in the vendor's failure shape.

Every failure of the API answers `{"error": {"code", "message", "status"}}`
(the vendor's documents, sophonai/bm1682 V2R2C01): `code` is the HTTP status,
`status` a word for the kind, `message` says what was wrong and names the field.
"""

from __future__ import annotations

from flask import Response, jsonify

PARAM_ERROR = "PARAM_ERROR"
UNAUTHORIZED = "UNAUTHORIZED"
TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"
NOT_FOUND = "NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
BROKER_ERROR = "BROKER_ERROR"


class ApiError(Exception):
    """A call that cannot be done, with the HTTP status it answers."""

    def __init__(self, http_status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.http_status} {self.kind}: {self.message}"


def param_error(field: str, problem: str) -> ApiError:
    return ApiError(400, PARAM_ERROR, f"{field}: {problem}")


def error_response(http_status: int, kind: str, message: str) -> Response:
    response = jsonify({"error": {"code": http_status, "message": message, "status": kind}})
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
