"""Checking Basic credentials without letting anyone guess passwords at speed.

Both servers (the registry and Crane mode) check credentials here. A bcrypt check costs
tens to hundreds of milliseconds of CPU on purpose, so unchecked guessing is both a
password attack and a denial of service (eight connections guessing against a cost-12
hash raised everyone's latency from 2 ms to 500 ms). So:

- **Failures are throttled** per client address and per user name tried, each a token
  bucket (``reconciler.server.throttle``): ``ADDRESS_RATE`` / ``USER_RATE`` failures at
  once, then one every few seconds. Beyond that a login is answered 429 with
  ``Retry-After`` *without* a bcrypt check. User names that do not exist are throttled
  exactly like real ones, so a 429 does not tell which names exist.
- **A user's own clients are not locked out**: while a user name is throttled, a client
  that already logged in with those credentials *from the same address* (in this worker
  process) is still let in, without bcrypt; only new logins of that name wait. (A bypass
  for any address would let guesses from many addresses be compared with the
  remembered password for free.) A throttled address gets 429 for every login.
- **Concurrent bcrypt checks are bounded** (``BCRYPT_SLOTS`` per worker process), so
  the threads left serve everyone else; a login that finds every slot busy is answered
  429 with ``Retry-After: 1`` at once instead of queueing. Identical credentials sent on
  several connections at once (a client pulling layers in parallel) share one check.

The limits are per worker process: a server with W workers allows W times the rates.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.server.auth import Htpasswd
from reconciler.server.throttle import Buckets, Rate

log = logging.getLogger(__name__)

#: failed logins one client address may make: 10 at once, then one every 5 s
ADDRESS_RATE = Rate(capacity=10, per_second=0.2)
#: failed logins for one user name, from anywhere: the same
USER_RATE = Rate(capacity=10, per_second=0.2)
#: bcrypt checks running at once in one worker process
BCRYPT_SLOTS = 2
#: how long a login waits for an identical one's check before giving up on it
_SHARED_WAIT = 30.0
#: user names are bucketed by their first this many characters (bounds the memory)
_NAME_KEY = 128
#: successful (user, password, address) logins remembered for throttled users
_KNOWN_MAX = 10_000


@dataclass(frozen=True)
class Login:
    """``user`` when the credentials are valid; else None, and ``retry_after`` > 0 when
    the login was not even checked (throttled or busy: answer 429)."""

    user: str | None
    retry_after: int = 0


class LoginGuard:
    """``check(user, password, address)`` for one htpasswd file."""

    def __init__(self, htpasswd: Htpasswd, *, address_rate: Rate = ADDRESS_RATE, user_rate: Rate = USER_RATE,
                 slots: int = BCRYPT_SLOTS, clock: Callable[[], float] = time.monotonic) -> None:
        self.htpasswd = htpasswd
        self.by_address = Buckets(address_rate, clock=clock)
        self.by_user = Buckets(user_rate, clock=clock)
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._checking: dict[tuple[str, bytes], threading.Event] = {}
        # (user, password digest, address) of logins that succeeded: most recent last
        self._known: OrderedDict[tuple[str, bytes, str], None] = OrderedDict()

    def check(self, user: str, password: str, address: str) -> Login:
        address_wait = self.by_address.wait(address)
        if address_wait > 0:
            return Login(None, retry_after=math.ceil(address_wait))
        digest = hashlib.sha256(password.encode()).digest()
        name_key = user[:_NAME_KEY]
        user_wait = self.by_user.wait(name_key)
        if user_wait > 0:
            if (user, digest, address) in self._known and self.htpasswd.remembered(user, password):
                return Login(user)
            return Login(None, retry_after=math.ceil(user_wait))
        if self.htpasswd.remembered(user, password):
            self._remember(user, digest, address)
            return Login(user)
        key = (user, digest)
        with self._lock:
            running = self._checking.get(key)
            if running is None:
                if not self._slots.acquire(blocking=False):
                    return Login(None, retry_after=1)
                running = self._checking[key] = threading.Event()
                mine = True
            else:
                mine = False
        if not mine:
            # the same credentials are being checked right now: use that result
            running.wait(_SHARED_WAIT)
            return Login(user) if self.htpasswd.remembered(user, password) else Login(None)
        try:
            ok = self.htpasswd.check(user, password)
        finally:
            self._slots.release()
            with self._lock:
                del self._checking[key]
            running.set()
        if ok:
            self._remember(user, digest, address)
            return Login(user)
        address_wait, user_wait = self.by_address.take(address), self.by_user.take(name_key)
        throttled = [f"from {address} for {math.ceil(address_wait)} s" if address_wait else "",
                     f"as user {name_key!r} for {math.ceil(user_wait)} s" if user_wait else ""]
        if address_wait or user_wait:
            log.warning("too many failed logins (the last: user %r from %s): logins %s are refused with 429",
                        name_key, address, " and ".join(t for t in throttled if t))
        return Login(None)

    def _remember(self, user: str, digest: bytes, address: str) -> None:
        with self._lock:
            self._known[(user, digest, address)] = None
            self._known.move_to_end((user, digest, address))
            while len(self._known) > _KNOWN_MAX:
                self._known.popitem(last=False)
