"""A cap on the connections a threaded socketserver serves at once.

The metrics listener and the console each run a thread per connection; a client
that opens many and says nothing would otherwise hold a thread each for good.
`CappedThreads` goes in front of a `socketserver.ThreadingMixIn` server: past
`max_connections` open at once, a new connection is closed at once, with a damped
WARNING naming `label`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from bridge.logs import Damper

logger = logging.getLogger(__name__)


class CappedThreads:
    """Mixin (before the ThreadingMixIn server class) bounding its connection threads."""

    label = "listener"

    def __init__(self, *args: Any, max_connections: int, **kwargs: Any) -> None:
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusals = Damper(burst=3, window=60.0)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            allowed, suppressed = self._refusals.allow("full")
            if allowed:
                logger.warning("%s: %d connections open; closing a new one from %s%s",
                               self.label, self.max_connections, client_address[0],
                               f" ({suppressed} more)" if suppressed else "")
            self.shutdown_request(request)  # type: ignore[attr-defined]
            return
        try:
            super().process_request(request, client_address)  # type: ignore[misc]
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self._slots.release()
