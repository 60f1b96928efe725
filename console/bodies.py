"""Request bodies of the box calls: a JSON object in, or a clear 4xx naming what is wrong.

The older calls take a JSON object whatever its Content-Type says (and
form-data where the vendor takes it); the V6 calls take `application/json`
only, as their documents say (`UNSUPPORT_CONTENT_TYPE` otherwise), and an
empty body as no arguments where every argument is optional.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from flask import request

from console.errors import (
    INVALID_REQUEST_JSON,
    PARAM_ERROR,
    UNSUPPORT_CONTENT_TYPE,
    ApiError,
    param_error,
)

_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


def json_body(forms: bool = False) -> Mapping[str, object]:
    """The request's JSON object (or its form fields, where the vendor takes form-data)."""
    raw = request.get_data(cache=True)
    looks_json = raw.lstrip()[:1] in (b"{", b"[")
    if forms and request.mimetype in _FORMS and not looks_json:
        return request.form.to_dict()
    if not raw.strip():
        raise param_error("body", "empty; send a JSON object", INVALID_REQUEST_JSON)
    return _object(raw, "a JSON object or form-data" if forms else "a JSON object")


def v6_body(optional: bool = False) -> Mapping[str, object]:
    """A V6 call's body: `application/json` holding an object (`{}` when `optional`
    and empty)."""
    raw = request.get_data(cache=True)
    if optional and not raw.strip():
        return {}
    if request.mimetype != "application/json":
        shown = request.mimetype or "none"
        raise ApiError(415, PARAM_ERROR, f"Content-Type: {shown[:100]}; send application/json",
                       UNSUPPORT_CONTENT_TYPE)
    if not raw.strip():
        raise param_error("body", "empty; send a JSON object", INVALID_REQUEST_JSON)
    return _object(raw, "a JSON object")


def _object(raw: bytes, wanted: str) -> Mapping[str, object]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise param_error("body", f"not valid JSON; send {wanted}",
                          INVALID_REQUEST_JSON) from None
    if not isinstance(value, dict):
        raise param_error("body", "must be a JSON object", INVALID_REQUEST_JSON)
    return value
