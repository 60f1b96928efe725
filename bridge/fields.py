"""The limits of record fields: one definition for every program that checks one.

The bridge's record parser (`devices/{ip}/state`), the `[[devices]]` registry
of the config file and `se3-collector publish device` all admit a device by
these types, so a device the config accepts is never one the bridge refuses
(it would silently never appear in the report); `no_control` is their one rule
for control characters. The board temperature's range
is shared likewise by the gateway collector, the bridge and the reference
platform's conformance check.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

NAME_MAX = 256
LOCATION_MAX = 256
URL_MAX = 2048
EXT_TEXT_MAX = 256  # ep_ext_data's sw_version and group_name
# Board temperature in °C: wide enough for any sensor on a working board, narrow
# enough that a sensor's error value (-273, 1000) is not reported as a reading.
TEMPERATURE_MIN, TEMPERATURE_MAX = -100, 300


_MARKS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_MARKS}]")
_CONTROL_BUT_LINE_BREAKS = re.compile(f"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f{_MARKS}]")
# The only text fields that may span lines (the vendor's sw_version is several lines).
MULTILINE = frozenset({"sw_version"})


def no_control(value: str, field: str = "") -> str:
    """`value`, or ValueError naming its first control character (C0, DEL, C1, the
    invisible bidi and line-separator marks; line breaks allowed in MULTILINE fields).

    A NUL makes a platform on PostgreSQL refuse every report, and bidi marks make a
    name display as something else: no record and no `[[devices]]` entry holds one.
    """
    found = (_CONTROL_BUT_LINE_BREAKS if field in MULTILINE else _CONTROL).search(value)
    if found:
        raise ValueError(f"control character U+{ord(found.group()):04X} not allowed")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank (whitespace only)")
    return value


# For what identifies something (a location, a name, an authorisation code):
# whitespace alone identifies nothing.
NotBlank = AfterValidator(_not_blank)
# ep_location: an id (a UUID in practice).
Location = Annotated[str, Field(min_length=1, max_length=LOCATION_MAX), NotBlank]
# ep_name: free text, "" when none.
Name = Annotated[str, Field(max_length=NAME_MAX)]
# ep_url: the stream URL; "" (or blank) means none.
Url = Annotated[str, Field(max_length=URL_MAX)]
# ep_ext_data.sw_version / group_name; "" (or blank) means unknown.
ExtText = Annotated[str, Field(max_length=EXT_TEXT_MAX)]
