"""The set of report targets in force: one `Target` per URL, started and stopped as it changes.

A target the login issued carries the login's token and dev_sno on every POST;
the parameters are read at each POST, so the next report after a new login
carries the new token without the target being made again. Targets from the
config topic or file carry none. A URL that moves from one source to the
other stays the same target (its worker, its report numbers, its backoff) and
only changes what it carries: the demo's login issues the file's own URL, and
that is not a new place to report to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from bridge.delivery import Target

logger = logging.getLogger(__name__)

# (url, params or None) -> a new, not yet started Target
MakeTarget = Callable[[str, Callable[[], Mapping[str, str]] | None], Target]


class TargetSet:
    """The running targets, keyed by URL; which of them the login issued."""

    def __init__(self, make: MakeTarget) -> None:
        self._make = make
        self._targets: dict[str, Target] = {}
        self._issued: set[str] = set()  # the URLs the login issued
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
            for url in self._issued:
                self._targets[url].retry_now()

    def _params(self) -> Mapping[str, str]:
        return self._auth

    def update(self, urls: list[str], issued_by_login: bool) -> list[Target]:
        """Make the set `urls`; return the targets started now."""
        for url in [u for u in self._targets if u not in urls]:
            target = self._targets.pop(url)
            self._issued.discard(url)
            logger.info("no longer reporting to %s", target.name)
            target.stop()
        added: list[Target] = []
        for url in urls:
            kept = self._targets.get(url)
            if kept is None:
                target = self._make(url, self._params if issued_by_login else None)
                self._targets[url] = target
                target.start()
                added.append(target)
                logger.info("reporting to %s%s", target.name,
                            " (issued by the login)" if issued_by_login else "")
            elif (url in self._issued) != issued_by_login:
                kept.set_params(self._params if issued_by_login else None)
                logger.debug("%s is now %s", kept.name,
                             "issued by the login" if issued_by_login else "from the settings")
                if issued_by_login and self._auth:
                    kept.retry_now()  # a backoff of the plain URL ends: it has a token now
        self._issued = set(urls) if issued_by_login else set()
        self.login_names = frozenset(self._targets[url].name for url in self._issued)
        return added

    def __len__(self) -> int:
        return len(self._targets)

    def all(self) -> list[Target]:
        return list(self._targets.values())

    def by_url(self) -> dict[str, Target]:
        return dict(self._targets)
