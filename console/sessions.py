"""The console's logged-in sessions, known on the server so that logging out ends one.

The session cookie is signed, so nobody can make one; but a signed cookie alone
would stay valid until it expires, after a logout too. Each login draws a random
id, kept here and in the cookie; a request's session counts only while its id is
here. The newest MAX_SESSIONS are kept: a flood of logins cannot grow the table.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

MAX_SESSIONS = 64


class Sessions:
    """Ids of the sessions in force (thread-safe)."""

    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._ids: OrderedDict[str, None] = OrderedDict()

    def start(self) -> str:
        """A new session's id."""
        sid = secrets.token_urlsafe(24)
        with self._lock:
            self._ids[sid] = None
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)
        return sid

    def alive(self, sid: object) -> bool:
        with self._lock:
            return isinstance(sid, str) and sid in self._ids

    def end(self, sid: object) -> None:
        with self._lock:
            if isinstance(sid, str):
                self._ids.pop(sid, None)
