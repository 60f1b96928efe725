"""The admin password: one file, made random and private when missing, checked in constant time.

The file made at first start holds the password itself (like the broker's
`<role>.pass` files), so an operator can read it with `cat` as the user that runs
the console. A password changed through a box call is stored hashed (scrypt, a
random salt) in the same file, replacing it whole: the new one is in force at
once for every listener, and after a restart. Nothing derived from it is ever
served.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

USER = "admin"
HASHED = "scrypt$"  # a password file line that starts so holds a hash
MIN_LENGTH = 8
MAX_LENGTH = 128
_N, _R, _P = 1 << 14, 8, 1  # scrypt cost: about 16 MiB and tens of ms per check
# One scrypt at a time: guesses on every connection at once cost 16 MiB, not 16 per
# connection (the throttle paces each address; this bounds them all together).
_ONE_AT_A_TIME = threading.Lock()


class PasswordError(RuntimeError):
    """The password file cannot be made or read, or it is empty."""


def ensure_password_file(path: Path) -> Path:
    """Make `path` with a random password (mode 0600, directory 0700) unless it exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    except OSError as exc:
        raise PasswordError(f"cannot make {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_urlsafe(18) + "\n")
    logger.info("new console admin password in %s", path)
    return path


def read_password(path: Path) -> str:
    """The password in `path` (stripped); PasswordError when unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = stat.S_IMODE(path.stat().st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordError(f"cannot read {path}: {exc}") from exc
    if mode & 0o077:
        logger.warning("%s is open to other users (mode %04o): chmod 600 it", path, mode)
    if not text:
        raise PasswordError(f"{path} is empty")
    return text


class Password:
    """Checks a candidate against the admin password without leaking timing, and
    changes it (thread-safe: both listeners share one).

    `secret` is the password file's content: the password itself, or its hash.
    A hashed password costs a scrypt per check; the last candidate that matched is
    remembered (as an HMAC under a key of this process), so a script sending the
    same credentials on every call pays it once.
    """

    def __init__(self, secret: str, store: Path | None = None) -> None:
        self._store = store
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._hash: tuple[bytes, bytes] | None = None  # (salt, scrypt digest)
        self._known: bytes | None = None  # HMAC of the candidate last found to match
        if secret.startswith(HASHED):
            self._hash = _parse_hash(secret)
        else:
            self._known = self._mac(secret)

    def matches(self, candidate: str) -> bool:
        given = self._mac(candidate)
        with self._lock:
            known, hashed = self._known, self._hash
        if known is not None and hmac.compare_digest(given, known):
            return True
        if hashed is None:
            return False
        salt, digest = hashed
        if not hmac.compare_digest(_scrypt(candidate, salt), digest):
            return False
        with self._lock:
            if self._hash is hashed:  # not changed meanwhile
                self._known = given
        return True

    def change(self, new: str) -> None:
        """Store `new` hashed in the password file, then put it in force.

        ValueError when `new` is not a usable password; PasswordError when it
        cannot be stored (the old one then stays in force).
        """
        check_new_password(new)
        if self._store is None:
            raise PasswordError("no password file to store a new password in")
        salt = secrets.token_bytes(16)
        digest = _scrypt(new, salt)
        line = (f"{HASHED}{_N}${_R}${_P}${base64.b64encode(salt).decode()}$"
                f"{base64.b64encode(digest).decode()}")
        _replace(self._store, line + "\n")
        with self._lock:
            self._hash, self._known = (salt, digest), self._mac(new)
        logger.info("console admin password changed (stored hashed in %s)", self._store)

    def _mac(self, candidate: str) -> bytes:
        # Comparing digests makes the time independent of the lengths too.
        return hmac.digest(self._key, candidate.encode("utf-8", "surrogatepass"), "sha256")


def check_new_password(new: str) -> str:
    """`new` when usable as the admin password, else ValueError saying why."""
    if not MIN_LENGTH <= len(new) <= MAX_LENGTH:
        raise ValueError(f"must be {MIN_LENGTH}-{MAX_LENGTH} characters")
    if new != new.strip() or not new.isprintable():
        raise ValueError("must be printable, without spaces at either end")
    if new.startswith(HASHED):
        raise ValueError(f"must not start with {HASHED}")
    return new


def _scrypt(candidate: str, salt: bytes) -> bytes:
    with _ONE_AT_A_TIME:
        return hashlib.scrypt(candidate.encode("utf-8", "surrogatepass"), salt=salt, n=_N,
                              r=_R, p=_P, dklen=32)


def _parse_hash(line: str) -> tuple[bytes, bytes]:
    parts = line.removeprefix(HASHED).split("$")
    try:
        if len(parts) != 5 or tuple(int(p) for p in parts[:3]) != (_N, _R, _P):
            raise ValueError("unknown scrypt parameters")
        return base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4],
                                                                           validate=True)
    except ValueError as exc:
        raise PasswordError(f"a hashed password that cannot be read: {exc}") from None


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` whole (0600, synced) or not at all."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PasswordError(f"cannot write {path}: {exc.strerror or exc}") from exc
