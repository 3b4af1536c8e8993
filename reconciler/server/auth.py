"""HTTP Basic authentication against an htpasswd file with bcrypt hashes.

Only bcrypt (``$2y$``, ``$2b$``, ``$2a$``) entries are accepted, as in the distribution
registry; other hash kinds are ignored with a warning. bcrypt is slow on purpose (tens of
milliseconds a check), so a successful check is remembered per (user, password digest)
until the file changes; a failed one is never cached. The file is re-read when its
mtime or size changes, so users can be added without a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import threading
from pathlib import Path

import bcrypt

from reconciler.errors import InvalidInput

log = logging.getLogger(__name__)

REALM = "reconciler"
_CACHE_MAX = 1024


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) from ``Authorization: Basic ...``; None when absent, not Basic,
    malformed, or with an empty user name (some clients send ``Basic Og==`` meaning
    "anonymous" after a Basic challenge)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return user, password


class Htpasswd:
    """Users and bcrypt hashes of one htpasswd file, reloaded when it changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._users: dict[str, bytes] = {}
        self._ok: set[tuple[str, bytes]] = set()
        self._load()

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read the htpasswd file {self.path}: {exc.strerror}",
                               hint="create it with `htpasswd -Bc FILE USER`") from exc
        users: dict[str, bytes] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                log.warning("%s:%d: not a bcrypt entry; ignored (use htpasswd -B)", self.path, lineno)
                continue
            users[user] = hashed.encode()
        self._users, self._ok = users, set()
        self._stamp = (st.st_mtime, st.st_size)

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return  # keep the last good copy while the file is being replaced
        if (st.st_mtime, st.st_size) != self._stamp:
            self._load()

    def check(self, user: str, password: str) -> bool:
        with self._lock:
            self._refresh()
            hashed = self._users.get(user)
            key = (user, hashlib.sha256(password.encode()).digest())
            if hashed is None:
                return False
            if key in self._ok:
                return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            ok = False
        if ok:
            with self._lock:
                if len(self._ok) >= _CACHE_MAX:
                    self._ok.clear()
                self._ok.add(key)
        return ok
