"""HTTP Basic authentication against an htpasswd file with bcrypt hashes.

Only bcrypt (``$2y$``, ``$2b$``, ``$2a$``) entries are accepted, as in the distribution
registry. Any other line (MD5 ``$apr1$``, ``{SHA}``, crypt, plain text) is an error when
the server starts, naming the file and line, because that user could never log in; when
the file changes while the server runs, such a line is logged as an error and skipped
(the other entries apply, so removing a user takes effect at once). bcrypt is slow on
purpose (tens of milliseconds a check), so a successful check is remembered per (user,
password digest) until the file changes; a failed one is never cached. An unknown user
costs one bcrypt check too, against a dummy hash at the file's highest cost, so response
times do not tell which user names exist even when users' costs differ. (Throttling
failed logins is ``reconciler.server.logins``' job.) The
file is re-read when its mtime or size changes, so users can be added without a restart;
deleting it revokes every login until it exists again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import threading
from pathlib import Path

import bcrypt

from reconciler.errors import InvalidInput

log = logging.getLogger(__name__)

REALM = "reconciler"
_CACHE_MAX = 1024
_BCRYPT_MAX_BYTES = 72
_COST = re.compile(r"\$2[aby]\$(\d\d)\$")


def dummy_hash(cost: int) -> bytes:
    """A well-formed bcrypt hash at ``cost`` that no password matches (an all-zero salt
    and checksum): checking it takes exactly as long as checking a real one."""
    return f"$2b${cost:02d}${'.' * 53}".encode()


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
        self._dummy: bytes | None = None
        self._ok: set[tuple[str, bytes]] = set()
        self._load(strict=True)

    def _load(self, *, strict: bool = False) -> None:
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
            if not sep or not user or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                what = f"{self.path}:{lineno}: not a 'user:bcrypt-hash' entry; only bcrypt hashes are supported"
                hint = "recreate the entry with `htpasswd -B FILE USER` (-B selects bcrypt)"
                if strict:
                    raise InvalidInput(what, hint=hint)
                log.error("%s; entry skipped (%s)", what, hint)
                continue
            users[user] = hashed.encode()
        if not users:
            log.warning("%s has no users: protected repositories cannot be pulled until one is added", self.path)
        costs = [int(m.group(1)) for m in map(_COST.match, (h.decode() for h in users.values())) if m]
        self._dummy = dummy_hash(min(31, max(4, *costs))) if costs else None
        self._users, self._ok = users, set()
        self._stamp = (st.st_mtime, st.st_size)

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            # deleted (an atomic replace never leaves it missing): fail closed, so that
            # removing the user list revokes access; a new file is read when it appears
            if self._stamp is not None:
                log.error("%s is gone: no user can log in until it exists again", self.path)
            self._users, self._ok, self._stamp, self._dummy = {}, set(), None, None
            return
        except OSError:
            return  # unreadable for a moment: keep the last good copy
        if (st.st_mtime, st.st_size) != self._stamp:
            self._load()

    def users(self) -> frozenset[str]:
        """The user names in the file now."""
        with self._lock:
            self._refresh()
            return frozenset(self._users)

    def remembered(self, user: str, password: str) -> bool:
        """True when these credentials already passed a check since the file last
        changed: valid, and no bcrypt needed to know it."""
        with self._lock:
            self._refresh()
            return user in self._users and (user, hashlib.sha256(password.encode()).digest()) in self._ok

    def check(self, user: str, password: str) -> bool:
        with self._lock:
            self._refresh()
            hashed = self._users.get(user)
            key = (user, hashlib.sha256(password.encode()).digest())
            if hashed is not None and key in self._ok:
                return True
            # an unknown user still pays for one bcrypt check, at the file's highest cost,
            # so that timing does not reveal which names exist
            against = hashed if hashed is not None else self._dummy
        try:
            # bcrypt uses at most 72 bytes, and htpasswd -B hashes just those; the bcrypt
            # module refuses longer input instead of truncating, so truncate as htpasswd did
            secret = password.encode()[:_BCRYPT_MAX_BYTES]
            ok = bcrypt.checkpw(secret, against) if against is not None else False
        except ValueError:
            ok = False
        if hashed is None:
            return False
        if ok:
            with self._lock:
                if len(self._ok) >= _CACHE_MAX:
                    self._ok.clear()
                self._ok.add(key)
        return ok
