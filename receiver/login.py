"""The platform login ("管理平台系统登录接口"), in the variant of each release.

`GET /api/gateway/login?...` answers where to report and how often, in the
variant the release printed (docs/protocol.md): L0 (V2R1C01) to L3 (V2R6C01,
V5R2C01-V5R7C01) ask `dev_sno` and `hex_mac` and answer `token`,
`deviceMonitorAddr` and `deviceMonitorPeriod` beside the message-queue settings
(`rabbitmq`), L2 and L3 with their record-upload switches; L4 (V6) asks
`mq_license_key` and `device_sn` and answers every name renamed
(`mq_login_token`, `device_monitor_url`, `media_device_monitor_url`, ...).
`new_names` makes L0-L3 answer the later names `device_monitor_url` /
`device_monitor_report_period` instead, so a bridge can be tested against both.

Each login issues a new token for its dev_sno (`TokenBook`); with
`--require-token` a report must carry the current one as `?token=...&dev_sno=...`,
as the vendor's calls carry it, or it is answered 401.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge import rules
from receiver.releases import LoginName

_HEX_MAC = re.compile(r"0x[0-9a-f]{12}")


@dataclass(frozen=True)
class LoginSettings:
    """What a login answers: report address(es), period in seconds, which names.

    An address left None is the release's own (`receiver.releases`); `devices_address`
    is the sub-device report's, which only V6's login (L4) can issue.
    """

    address: str | None = None
    period: int = 20
    new_names: bool = False
    devices_address: str | None = None

    def __post_init__(self) -> None:
        for name in ("address", "devices_address"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ValueError(f"login {name.replace('_', ' ')} must not be empty")
        if isinstance(self.period, bool) or not isinstance(self.period, int) or self.period < 1:
            raise ValueError("login period must be a whole number of seconds, at least 1")


@dataclass(frozen=True)
class Issued:
    """What one login issues: the report address(es) and period, resolved for a release."""

    address: str
    devices_address: str | None
    period: int
    new_names: bool = False


class LoginRefused(ValueError):
    """The login request's arguments are missing or malformed; the text says which."""


def _checked(name: str, value: str | None, rule: Callable[[str], str]) -> str:
    if not value:
        raise LoginRefused(f"{name} is missing")
    try:
        return rule(value)
    except ValueError as exc:
        raise LoginRefused(rules.refusal(name, exc)) from None


def _check_mac(hex_mac: str | None) -> None:
    if hex_mac is not None and not _HEX_MAC.fullmatch(hex_mac):
        raise LoginRefused("hex_mac must be 0x followed by 12 lower-case hex digits")


def check_login_args(dev_sno: str | None, hex_mac: str | None) -> None:
    """Raise LoginRefused unless both arguments are present and well formed (L0-L3)."""
    _checked("dev_sno", dev_sno, rules.dev_sno)
    if not hex_mac:
        raise LoginRefused("hex_mac is missing")
    _check_mac(hex_mac)


def login_request(variant: LoginName, args: Mapping[str, str]) -> dict[str, str | None]:
    """The arguments of one login in `variant`, by name; LoginRefused if they are not
    all there and well formed. "code" is the authorisation code the token is issued to.

    L0-L3 ask `dev_sno` and `hex_mac`; L4 `mq_license_key` (its own example still
    sends `dev_sno`, which is taken in its place) and `device_sn`, with `hex_mac`
    checked when given.
    """
    if variant != "L4":
        dev_sno, hex_mac = args.get("dev_sno"), args.get("hex_mac")
        check_login_args(dev_sno, hex_mac)
        return {"code": dev_sno, "dev_sno": dev_sno, "hex_mac": hex_mac}
    name = "mq_license_key" if args.get("mq_license_key") or not args.get("dev_sno") else "dev_sno"
    code = _checked(name, args.get(name), rules.dev_sno)
    sn = _checked("device_sn", args.get("device_sn"), rules.serial)
    _check_mac(args.get("hex_mac"))
    return {"code": code, "dev_sno": code, "device_sn": sn, "hex_mac": args.get("hex_mac")}


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


# The record-upload switches L2 and L3 add to the answer (each the documented default).
_SWITCHES: dict[LoginName, dict[str, int]] = {
    "L0": {},
    "L1": {},
    "L2": {"recordUploadReg": 1, "recordUploadSpotPic": 1, "recordUploadRecognizeFace": 1},
    "L3": {"recordUploadReg": 1, "recordUploadSpotPic": 1, "recordUploadRecognizeFace": 1,
           "recordUploadInfo": 0},
}
# This platform runs no message queue: the MQ settings every variant must carry name
# a broker on loopback that nothing serves, so a box that tried it would fail at once.
_MQ_HOST, _MQ_PORT = "127.0.0.1", 5672


def _rabbitmq(code: str) -> dict[str, Any]:
    return {
        "host": _MQ_HOST, "port": _MQ_PORT, "login": code, "password": "",
        "queue": f"queue-dev-{code}",
        "exchange": {"name": f"exchange-dev-{code}", "type": "topic", "passive": False,
                     "durable": True, "auto_delete": False},
    }


def _mq_server_configs(code: str) -> dict[str, Any]:
    return {
        "mq_server_ip": _MQ_HOST, "mq_server_port": _MQ_PORT, "mq_username": code,
        "mq_password": "",
        "mq_exchange": {"mq_exchange_name": f"exchange-dev-{code}",
                        "mq_exchange_type": "topic", "mq_exchange_passive": False,
                        "mq_exchange_durable": True, "mq_exchange_auto_delete": False},
        "mq_down_queue": f"queue-dev-{code}",
    }


def login_answer(variant: LoginName, issued: Issued, token: str, code: str) -> dict[str, Any]:
    """The body of a successful login in `variant`, in its table's key order, with its
    token (never log it). L0-L3 issue one report address; L4 two, the box's
    (`device_monitor_url`) and the media devices' (`media_device_monitor_url`)."""
    if variant == "L4":
        answer: dict[str, Any] = {"mq_login_status": 0, "mq_login_token": token,
                                  "mq_img_server_addr": ""}
        if issued.devices_address is not None:
            answer["media_device_monitor_url"] = issued.devices_address
            answer["media_device_monitor_report_period"] = issued.period
        answer["device_monitor_url"] = issued.address
        answer["device_monitor_report_period"] = issued.period
        answer["mq_server_configs"] = _mq_server_configs(code)
        return answer
    if issued.new_names:
        where = {"device_monitor_url": issued.address,
                 "device_monitor_report_period": issued.period}
    else:
        where = {"deviceMonitorAddr": issued.address, "deviceMonitorPeriod": issued.period}
    answer = {"token": token, "imgServerAddr": "", **_SWITCHES[variant], **where,
              "rabbitmq": _rabbitmq(code), "arguments": {}}
    if variant != "L0":
        answer["message"] = "登录成功"  # L1 onward, as their example answers
    return answer


def login_refusal(reason: str) -> dict[str, Any]:
    """The body of a refused login: our family's status/message and the spec's error."""
    return {
        "status": 1,
        "message": reason,
        "error": {"code": 400, "message": reason, "status": "INVALID_ARGUMENT"},
    }
