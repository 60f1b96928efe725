"""The set of report targets in force: one `Target` per URL, started and stopped as it changes.

A target the login issued carries the login's token and dev_sno on every POST;
the parameters are read at each POST, so the next report after a new login
carries the new token without the target being made again. Targets from the
config topic or file carry none. A URL that moves from one source to the
other becomes a new target.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from bridge.delivery import Target

logger = logging.getLogger(__name__)

# (url, params or None) -> a new, not yet started Target
MakeTarget = Callable[[str, Callable[[], Mapping[str, str]] | None], Target]


class TargetSet:
    """The running targets, keyed by URL and whether the login issued them."""

    def __init__(self, make: MakeTarget) -> None:
        self._make = make
        self._targets: dict[tuple[str, bool], Target] = {}
        self._auth: Mapping[str, str] = {}
        self.login_names: frozenset[str] = frozenset()  # names of the login's targets

    def set_auth(self, params: Mapping[str, str]) -> None:
        """The query parameters of the login's targets from their next POST on.

        New ones (a new login's token) end the backoff of the login's targets: a
        report refused for an old token goes again at once, not a minute later."""
        if dict(params) == self._auth:
            return
        self._auth = dict(params)  # replaced whole: read by the targets' threads
        if params:
            for (_, issued), target in self._targets.items():
                if issued:
                    target.retry_now()

    def _params(self) -> Mapping[str, str]:
        return self._auth

    def update(self, urls: list[str], issued_by_login: bool) -> list[Target]:
        """Make the set `urls`; return the targets started now."""
        wanted = {(url, issued_by_login) for url in urls}
        for key in [k for k in self._targets if k not in wanted]:
            target = self._targets.pop(key)
            logger.info("no longer reporting to %s", target.name)
            target.stop()
        added = []
        for url in urls:
            key = (url, issued_by_login)
            if key in self._targets:
                continue
            target = self._make(url, self._params if issued_by_login else None)
            self._targets[key] = target
            target.start()
            added.append(target)
            logger.info("reporting to %s%s", target.name,
                        " (issued by the login)" if issued_by_login else "")
        self.login_names = frozenset(t.name for (_, issued), t in self._targets.items() if issued)
        return added

    def __len__(self) -> int:
        return len(self._targets)

    def all(self) -> list[Target]:
        return list(self._targets.values())

    def by_url(self) -> dict[str, Target]:
        return {url: target for (url, _), target in self._targets.items()}
