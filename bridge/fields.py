"""The limits of record fields: one definition for every program that checks one.

The bridge's record parser (`devices/{ip}/state`), the `[[devices]]` registry
of the config file and `se3-collector publish device` all admit a device by
these types, so a device the config accepts is never one the bridge refuses
(it would silently never appear in the report). The board temperature's range
is shared likewise by the gateway collector, the bridge and the reference
platform's conformance check.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

NAME_MAX = 256
LOCATION_MAX = 256
URL_MAX = 2048
EXT_TEXT_MAX = 256  # ep_ext_data's sw_version and group_name
# Board temperature in °C: wide enough for any sensor on a working board, narrow
# enough that a sensor's error value (-273, 1000) is not reported as a reading.
TEMPERATURE_MIN, TEMPERATURE_MAX = -100, 300


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
