"""A bulkhead and a circuit breaker in front of the object storage, per worker process.

When S3 stops answering, every request that reads bytes from it waits for its timeout.
Left alone, those requests take every thread of the worker, and requests that need only
the database (``GET /v2/``, ``tags/list``, HEADs, health checks) queue behind them. So:

- **bulkhead**: at most ``slots`` requests of a worker use the object storage at once
  (its threads less one, at least one): a thread is always left for everything else. A
  request that finds no free slot gets a ``503`` with ``Retry-After`` at once.
- **circuit breaker**: after ``failures`` failed storage calls in a row the circuit
  *opens*: for ``cooldown`` seconds every request that would need the storage gets the
  fast ``503`` without trying. Then one request is let through (*half-open*): if it
  succeeds the circuit closes, if it fails it opens for another ``cooldown``.

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

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def unavailable(why: str, retry_after: float) -> RegistryHTTPError:
    return RegistryHTTPError("UNAVAILABLE", f"the object storage is unavailable: {why}",
                             headers={"Retry-After": str(max(1, round(retry_after)))})


class StorageGuard:
    """``with guard.call(): <read from the object storage>``: see the module doc."""

    def __init__(self, *, slots: int, failures: int = FAILURES_TO_OPEN, cooldown: float = COOLDOWN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = max(1, slots)
        self.failures_to_open = max(1, failures)
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._busy = 0
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        #: the last storage failure, for /readyz
        self.last_error: str | None = None

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return CLOSED
            return HALF_OPEN if self._clock() - self._opened_at >= self.cooldown else OPEN

    def _enter(self) -> bool:
        """Take a slot; True when this call is the half-open probe. Raises the fast 503."""
        with self._lock:
            probe = False
            if self._opened_at is not None:
                left = self.cooldown - (self._clock() - self._opened_at)
                if left > 0 or self._probing:
                    raise unavailable(f"{self.last_error or 'it failed'} (retrying in at most "
                                      f"{max(left, 1):.0f} s)", max(left, 1))
                self._probing = probe = True
            if self._busy >= self.slots:
                if probe:
                    self._probing = False
                raise unavailable(f"all {self.slots} requests this worker lets wait on it are waiting", 1)
            self._busy += 1
            return probe

    def _leave(self, ok: bool, probe: bool, error: str | None = None) -> None:
        with self._lock:
            self._busy -= 1
            if probe:
                self._probing = False
            if ok:
                self._failures = 0
                self._opened_at = None
                return
            self.last_error = error
            self._failures += 1
            if probe or self._failures >= self.failures_to_open:
                self._opened_at = self._clock()

    @contextmanager
    def call(self) -> Iterator[None]:
        """One use of the storage; a ``BlobStorageError`` inside becomes the 503."""
        probe = self._enter()
        try:
            yield
        except BlobStorageError as exc:
            self._leave(False, probe, exc.message)
            raise unavailable(exc.message, self.cooldown) from exc
        except BaseException:
            self._leave(True, probe)
            raise
        self._leave(True, probe)

    def opened(self, open_file: Callable[[], BinaryIO]) -> BinaryIO:
        """``open_file()`` under a slot that stays taken until the returned reader is
        closed (a blob streamed to a client reads from the storage all along); a read
        that fails counts as a storage failure."""
        probe = self._enter()
        try:
            file = open_file()
        except BlobStorageError as exc:
            self._leave(False, probe, exc.message)
            raise unavailable(exc.message, self.cooldown) from exc
        except BaseException:
            self._leave(True, probe)
            raise
        return cast(BinaryIO, _GuardedReader(file, lambda ok, error: self._leave(ok, probe, error)))


class _GuardedReader:
    """A reader that gives its slot back when closed, reporting whether reading failed."""

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
