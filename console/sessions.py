"""The console's logged-in sessions, known on the server so that logging out ends one.

The session cookie is signed, so nobody can make one; but a signed cookie alone
would stay valid until it expires, after a logout too. Each login draws a random
id, kept here and in the cookie; a request's session counts only while its id is
here, and for LIFETIME from its login at most, however busy: Flask renews a
permanent session's cookie at each request, so the cookie alone would slide
forever. The newest MAX_SESSIONS are kept: a flood of logins cannot grow the table.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta

MAX_SESSIONS = 64
LIFETIME = timedelta(hours=12)


class Sessions:
    """Ids of the sessions in force and when each began (thread-safe)."""

    def __init__(self, limit: int = MAX_SESSIONS, lifetime: timedelta = LIFETIME,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._lifetime = lifetime.total_seconds()
        self._clock = clock
        self._lock = threading.Lock()
        self._ids: OrderedDict[str, float] = OrderedDict()

    def start(self) -> str:
        """A new session's id."""
        sid = secrets.token_urlsafe(24)
        with self._lock:
            self._ids[sid] = self._clock()
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)
        return sid

    def alive(self, sid: object) -> bool:
        """Whether `sid` is a session in force: logged in, not out, and younger than
        the lifetime (an expired one is forgotten)."""
        with self._lock:
            if not isinstance(sid, str) or sid not in self._ids:
                return False
            if self._clock() - self._ids[sid] < self._lifetime:
                return True
            del self._ids[sid]
            return False

    def end_all(self) -> None:
        """End every session (the password they were started with is no longer)."""
        with self._lock:
            self._ids.clear()

    def end(self, sid: object) -> None:
        with self._lock:
            if isinstance(sid, str):
                self._ids.pop(sid, None)
