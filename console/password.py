"""The admin password: one file, made random and private when missing, checked in constant time.

The file made at first start holds the password itself (like the broker's
`<role>.pass` files), so an operator can read it with `cat` as the user that runs
the console. A password changed through a box call is stored hashed (werkzeug's
scrypt with a random salt) in the same file, replacing it whole: the new one is
in force at once for every listener, and after a restart. Nothing derived from it
is ever served.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
import threading
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

logger = logging.getLogger(__name__)

USER = "admin"
HASHED = "scrypt:"  # a password file line that starts so holds a hash (werkzeug's format)
MIN_LENGTH = 8
MAX_LENGTH = 128
# One hash check at a time: werkzeug's scrypt takes 32 MiB and tens of ms, so guesses
# on every connection at once cost 32 MiB, not 32 per connection (the throttle paces
# each address; this bounds them all together).
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
        self._hash: str | None = None  # werkzeug's "scrypt:N:r:p$salt$digest"
        self._known: bytes | None = None  # HMAC of the candidate last found to match
        if secret.startswith(HASHED):
            if secret.count("$") != 2:
                raise PasswordError("a hashed password that cannot be read: expected "
                                    "scrypt:N:r:p$salt$digest")
            self._hash = secret
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
        with _ONE_AT_A_TIME:
            if not check_password_hash(hashed, candidate):
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
        with _ONE_AT_A_TIME:
            line = generate_password_hash(new, method="scrypt")
        _replace(self._store, line + "\n")
        with self._lock:
            self._hash, self._known = line, self._mac(new)
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
