"""The platform login, as far as a status-reporting gateway needs it.

`GET /api/gateway/login?dev_sno=...&hex_mac=0x...` answers where to report and
how often. The platform's documented names are `deviceMonitorAddr` /
`deviceMonitorPeriod`; its later system-monitor config calls them
`device_monitor_url` / `device_monitor_report_period`, which `new_names` serves
instead so a bridge can be tested against both.

Each login issues a new token for its dev_sno (`TokenBook`); with
`--require-token` a report must carry the current one as `?token=...&dev_sno=...`,
as the vendor's calls carry it, or it is answered 401.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from bridge import rules

_HEX_MAC = re.compile(r"0x[0-9a-f]{12}")


@dataclass(frozen=True)
class LoginSettings:
    """What a login answers: report address(es), period in seconds, which names."""

    address: str = "/DeviceStatus"
    period: int = 20
    new_names: bool = False

    def __post_init__(self) -> None:
        if not self.address.strip():
            raise ValueError("login address must not be empty")
        if isinstance(self.period, bool) or not isinstance(self.period, int) or self.period < 1:
            raise ValueError("login period must be a whole number of seconds, at least 1")


class LoginRefused(ValueError):
    """The login request's arguments are missing or malformed; the text says which."""


def check_login_args(dev_sno: str | None, hex_mac: str | None) -> None:
    """Raise LoginRefused unless both arguments are present and well formed."""
    if not dev_sno:
        raise LoginRefused("dev_sno is missing")
    try:
        rules.dev_sno(dev_sno)
    except ValueError as exc:
        raise LoginRefused(rules.refusal("dev_sno", exc)) from None
    if not hex_mac:
        raise LoginRefused("hex_mac is missing")
    if not _HEX_MAC.fullmatch(hex_mac):
        raise LoginRefused("hex_mac must be 0x followed by 12 lower-case hex digits")


class TokenBook:
    """The token each dev_sno was last issued: every login issues a new one, and the old
    one stops working at once (a platform that rotates its tokens)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        self.issued: list[str] = []  # every token so far, for tests that look for leaks

    def issue(self, dev_sno: str) -> str:
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens[dev_sno] = token
            self.issued.append(token)
        return token

    def valid(self, dev_sno: str | None, token: str | None) -> bool:
        """Whether `token` is the one last issued to `dev_sno`."""
        if not dev_sno or not token:
            return False
        with self._lock:
            current = self._tokens.get(dev_sno)
        return current is not None and hmac.compare_digest(current, token)


def login_answer(settings: LoginSettings, token: str) -> dict[str, Any]:
    """The body of a successful login, with its token."""
    if settings.new_names:
        where = {
            "device_monitor_url": settings.address,
            "device_monitor_report_period": settings.period,
        }
    else:
        where = {"deviceMonitorAddr": settings.address, "deviceMonitorPeriod": settings.period}
    return {"status": 0, "message": "SUCCESS", **where, "token": token}


def login_refusal(reason: str) -> dict[str, Any]:
    """The body of a refused login: our family's status/message and the spec's error."""
    return {
        "status": 1,
        "message": reason,
        "error": {"code": 400, "message": reason, "status": "INVALID_ARGUMENT"},
    }
