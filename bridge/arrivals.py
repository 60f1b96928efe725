"""When a record without `ts` arrived: kept on the broker, so a restart keeps the clock.

A record with a `ttl` and no `ts` is true for `ttl` seconds from its arrival.
The bridge alone sees it arrive, so it keeps each such arrival, retained, on
`bridge/arrivals/{key}` (`key`: the device's IP, or `metrics` / `hardware` for
the gateway's metrics and hardware records):
`{"at": <Unix time>, "record": <digest of the payload>}`. After a restart the
broker replays the record and its arrival; when the digest matches (the very
record the bridge saw arrive), its age counts from that arrival, so a record
whose publisher died stays expired instead of coming back online for another
`ttl`. A record the bridge never saw arrive (published while it was
down) counts from the bridge's own first sight of it, the earliest it can know.

The two may come in either order in a replay: an arrival read after its record
moves the record's deadline back (`restore`). Arrivals are written at most
once a second (`due`/`take`), and an arrival no record needs any more is
deleted (an empty retained payload).

Pure: no I/O; the wall time is passed in.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

import orjson

from bridge.errors import RecordError

FLUSH_EVERY = 1.0  # seconds between two writes of changed arrivals


def digest(payload: bytes) -> str:
    """Which record an arrival belongs to: 16 hex digits of its payload's BLAKE2b."""
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


class Arrivals:
    """The arrival of each record with a `ttl` and no `ts`, by key."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[float, str]] = {}  # key -> (wall time, digest)
        self._restored: dict[str, tuple[float, str]] = {}  # read from the broker's replay
        self._guessed: set[str] = set()  # taken at a replay without a restored arrival
        self._changed: set[str] = set()  # to write (or delete, when no longer held)

    def arrived(self, key: str, payload: bytes, wall: float, replayed: bool) -> float:
        """The wall time `payload` on `key` counts from: now for a live publish; for a
        replayed one, the arrival kept before a restart when it is the same record."""
        sha = digest(payload)
        self._guessed.discard(key)
        if replayed:
            kept = self._restored.get(key)
            if kept is not None and kept[1] == sha:
                wall = min(wall, kept[0])
            else:
                self._guessed.add(key)
        self._hold(key, (wall, sha))
        return wall

    def since(self, key: str, payload: bytes, ts: float | None, ttl: float | None,
              wall: Callable[[], float], replayed: bool) -> float | None:
        """The wall time a record's age counts from: its `ts`, else its arrival (kept
        across restarts for a record with a `ttl`); `wall` tells the time now."""
        if ttl is None or ts is not None:
            self.forget(key)
            return ts
        return self.arrived(key, payload, wall(), replayed)

    def forget(self, key: str) -> None:
        """`key` no longer holds a record that needs an arrival."""
        self._guessed.discard(key)
        if self._held.pop(key, None) is not None or key in self._restored:
            self._restored.pop(key, None)
            self._changed.add(key)

    def restore(self, key: str, payload: bytes) -> float | None:
        """Take a replayed `bridge/arrivals/{key}`; the earlier arrival now in force for a
        record already judged from its own replay, else None. RecordError when malformed."""
        if not payload:
            return None
        at, sha = _parse(payload)
        self._restored[key] = (at, sha)
        held = self._held.get(key)
        if key not in self._guessed or held is None or held[1] != sha or at >= held[0]:
            if held is None:
                self._changed.add(key)  # perhaps an orphan: `take` deletes it unless used
            return None
        self._guessed.discard(key)
        self._hold(key, (at, sha))
        return at

    def take(self) -> list[tuple[str, bytes]]:
        """The retained payloads to write now, by key (b"" deletes)."""
        out = []
        for key in sorted(self._changed):
            held = self._held.get(key)
            if held is None:
                self._restored.pop(key, None)
                out.append((key, b""))
            else:
                out.append((key, orjson.dumps({"at": round(held[0], 3), "record": held[1]})))
        self._changed.clear()
        return out

    def pending(self) -> bool:
        return bool(self._changed)

    def _hold(self, key: str, value: tuple[float, str]) -> None:
        if self._held.get(key) != value:
            self._held[key] = value
            self._changed.add(key)


def _parse(payload: bytes) -> tuple[float, str]:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise RecordError("arrival is not JSON", code="json") from None
    at = doc.get("at") if isinstance(doc, dict) else None
    sha = doc.get("record") if isinstance(doc, dict) else None
    if (not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at)
            or at <= 0 or not isinstance(sha, str) or len(sha) != 16):
        raise RecordError('arrival must be {"at": <Unix time>, "record": <16 hex digits>}',
                          code="arrival")
    return float(at), sha
