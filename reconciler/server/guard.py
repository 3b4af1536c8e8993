"""A bulkhead and a circuit breaker in front of the object storage, per worker process.

When S3 stops answering, every request that reads bytes from it waits for its timeout.
Left alone, those requests take every thread of the worker, and requests that need only
the database (``GET /v2/``, ``tags/list``, HEADs, health checks) queue behind them. So:

- **bulkhead**: at most ``slots`` requests of a worker wait for an answer from the
  object storage at once (its threads less one, at least one): a thread is always left
  for everything else. A slot is held while a request waits for S3 to answer (a manifest
  read, the start of a blob GET), not while a blob body streams to the client, so a
  healthy S3 frees slots within milliseconds. A request that finds no free slot waits
  up to ``slot_wait`` seconds for one, then gets a ``503`` with ``Retry-After``.
- **circuit breaker**: after ``failures`` failed storage calls in a row (a body read that
  fails counts too) the circuit *opens*: for ``cooldown`` seconds every request that
  would need the storage gets the fast ``503`` without trying or waiting. Then one
  request is let through (*half-open*): if it succeeds the circuit closes, if it fails
  it opens for another ``cooldown``.

Only failures of the storage itself count (``BlobStorageError``: timeouts, refused
connections, 5xx); a missing object is an answer and counts as a success.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

from reconciler.errors import BlobStorageError
from reconciler.server.errors import RegistryHTTPError

#: failed storage calls in a row that open the circuit
FAILURES_TO_OPEN = 3
#: seconds the circuit stays open before one request may try again
COOLDOWN = 10.0
#: seconds a request waits for a free slot before its 503
SLOT_WAIT = 0.5

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def unavailable(why: str, retry_after: float) -> RegistryHTTPError:
    return RegistryHTTPError("UNAVAILABLE", f"the object storage is unavailable: {why}",
                             headers={"Retry-After": str(max(1, round(retry_after)))})


class StorageGuard:
    """``with guard.call(): <ask the object storage>``: see the module doc."""

    def __init__(self, *, slots: int, failures: int = FAILURES_TO_OPEN, cooldown: float = COOLDOWN,
                 slot_wait: float = SLOT_WAIT, clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = max(1, slots)
        self.failures_to_open = max(1, failures)
        self.cooldown = cooldown
        self.slot_wait = slot_wait
        self._clock = clock
        self._cond = threading.Condition()
        self._busy = 0
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        #: the last storage failure, for /readyz
        self.last_error: str | None = None

    @property
    def state(self) -> str:
        with self._cond:
            if self._opened_at is None:
                return CLOSED
            return HALF_OPEN if self._clock() - self._opened_at >= self.cooldown else OPEN

    def _refuse_if_open(self) -> bool:
        """Under the lock: raise the fast 503 while open; True when this call becomes the
        half-open probe."""
        if self._opened_at is None:
            return False
        left = self.cooldown - (self._clock() - self._opened_at)
        if left > 0 or self._probing:
            raise unavailable(f"{self.last_error or 'it failed'} (retrying in at most {max(left, 1):.0f} s)",
                              max(left, 1))
        self._probing = True
        return True

    def _enter(self) -> bool:
        """Take a slot (waiting up to ``slot_wait``); True when this call is the probe."""
        with self._cond:
            deadline = time.monotonic() + self.slot_wait
            while True:
                probe = self._refuse_if_open()
                if self._busy < self.slots:
                    self._busy += 1
                    return probe
                if probe:
                    self._probing = False
                left = deadline - time.monotonic()
                if left <= 0:
                    raise unavailable(f"all {self.slots} requests this worker lets wait on it are waiting", 1)
                self._cond.wait(left)

    def _record(self, ok: bool, probe: bool, error: str | None = None, *, release: bool = True) -> None:
        with self._cond:
            if release:
                self._busy -= 1
            if probe:
                self._probing = False
            if ok:
                self._failures = 0
                self._opened_at = None
            else:
                self.last_error = error
                self._failures += 1
                if probe or self._failures >= self.failures_to_open:
                    self._opened_at = self._clock()
            self._cond.notify_all()

    @contextmanager
    def call(self) -> Iterator[None]:
        """One request to the storage; a ``BlobStorageError`` inside becomes the 503."""
        probe = self._enter()
        try:
            yield
        except BlobStorageError as exc:
            self._record(False, probe, exc.message)
            raise unavailable(exc.message, self.cooldown) from exc
        except BaseException:
            self._record(True, probe)
            raise
        self._record(True, probe)

    def watched(self, file: BinaryIO) -> BinaryIO:
        """``file`` (a body being read from the storage) reporting, when closed, whether a
        read failed: a stream that stalls midway counts as a storage failure."""
        return cast(BinaryIO, _WatchedReader(file, lambda ok, error: self._record(ok, False, error, release=False)))


class _WatchedReader:
    """A reader that reports on close whether reading it failed."""
    def __init__(self, file: BinaryIO, done: Callable[[bool, str | None], None]) -> None:
        self._file = file
        self._done: Callable[[bool, str | None], None] | None = done
        self._error: str | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            return self._file.read(size)
        except BlobStorageError as exc:
            self._error = exc.message
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def fileno(self) -> int:
        return self._file.fileno()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done(self._error is None, self._error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)
