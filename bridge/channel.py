"""One report's way to the platform: when it is due, and the targets it goes to.

A release of the platform takes one report (the gateway with its devices) or
two (the gateway's own, and the sub-devices' with their own URLs and period:
V5R7C01, V6): each is a `Channel`, named `gateway` or `devices`, with its own
`Schedule` (change-driven, periodic) and `TargetSet` (one delivery worker per
URL, with its own retries). The bridge's platform side (bridge.platform) tells
each what is in force; the bridge's main loop asks each whether it is due.

A target the login issued that refuses its token (a 401 or 403, or three 404s in
a row) asks for a new login: `attempted` says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from bridge.delivery import Attempt, Target
from bridge.schedule import Schedule
from bridge.targets import TargetSet

logger = logging.getLogger(__name__)

# Refusals in a row from one login-issued target that ask for a new login: a 401 or
# 403 says the token is no longer good (the platform rotated it) at the first one; a
# 404 may be a moved address, which a new login issues, or a passing fault.
_RELOGIN_AFTER = {401: 1, 403: 1, 404: 3}

GATEWAY, DEVICES = "gateway", "devices"
# (channel name, url, params or None) -> a new, not yet started Target
MakeTarget = Callable[[str, str, Callable[[], Mapping[str, str]] | None], Target]


class Channel:
    """One report: its schedule, its targets in force, their refusals of the login's token."""

    def __init__(self, name: str, make: MakeTarget, interval: float,
                 min_interval: float) -> None:
        self.name = name
        self.schedule = Schedule(interval, min_interval)
        self._targets = TargetSet(lambda url, params: make(name, url, params))
        self._refusals: dict[str, int] = {}
        self._lock = threading.Lock()
        self._warned_no_target = False

    def set_period(self, period: float) -> None:
        if period != self.schedule.interval:
            logger.info("%s report every %g s", self.name, period)
            self.schedule.interval = period

    def update(self, urls: list[str], issued_by_login: bool,
               auth: Mapping[str, str]) -> list[Target]:
        """Put `urls` in force (with the login's query parameters); the targets new now."""
        self._targets.set_auth(auth)
        added = self._targets.update(urls, issued_by_login)
        if added:
            self._warned_no_target = False
        return added

    def offer(self, body: bytes, count: int) -> None:
        """Hand a report to every target (a warning, once, while there is none)."""
        if not self._targets:
            if not self._warned_no_target:
                logger.warning("no %s report URL configured yet: report not sent", self.name)
                self._warned_no_target = True
            return
        for target in self._targets.all():
            target.offer(body, count)

    def attempted(self, attempt: Attempt) -> int:
        """Called on a target's thread after each POST: the refusals in a row that call for
        a new login now (0: none needed)."""
        if attempt.target not in self._targets.login_names:
            return 0  # only a target the login issued can be fixed by logging in again
        after = _RELOGIN_AFTER.get(attempt.status or 0)
        with self._lock:
            if after is None:
                self._refusals.pop(attempt.target, None)
                return 0
            count = self._refusals.get(attempt.target, 0) + 1
            self._refusals[attempt.target] = 0 if count >= after else count
        return count if count >= after else 0

    def targets(self) -> list[Target]:
        return self._targets.all()

    def by_url(self) -> dict[str, Target]:
        return self._targets.by_url()

    def close(self) -> None:
        """Stop every target (this report is no longer sent)."""
        self._targets.update([], False)
