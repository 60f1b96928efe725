"""The admin password: one file, made random and private when missing, checked in constant time.

The file holds the password itself (like the broker's `<role>.pass` files), so
an operator can read it with `cat` as the user that runs the console. Nothing
derived from it is ever served.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

USER = "admin"


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
    """Checks a candidate against the admin password without leaking timing."""

    def __init__(self, secret: str) -> None:
        # Comparing digests makes the time independent of the lengths too.
        self._digest = hashlib.sha256(secret.encode("utf-8")).digest()

    def matches(self, candidate: str) -> bool:
        given = hashlib.sha256(candidate.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(given, self._digest)
