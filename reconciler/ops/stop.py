"""Stop requested: how a long operation (an apply, its downloads) is asked to end early.

Whoever decides that the operation must end calls ``StopToken.request(reason,
exit_code)`` (or ``set(error)``): the CLI on SIGINT/SIGTERM, and the store wrapper of an
apply that has lost its store lock (``apply.stop``). The
operation checks the token (``check``) before every download and every store write, and
its threads check it between the chunks of a blob, so no new download or write starts
once a stop is requested. ``wait_all`` replaces waiting on worker threads: it returns as
soon as a stop is requested, abandoning downloads still in flight (a stalled upstream
could hold a thread for its whole timeout) instead of waiting for their end. What they
were writing is in temporary files or an uncommitted batch, invisible, and ``store gc``
removes it.

``Interrupted`` is what ``check`` raises. It is deliberately not a ``ReconcilerError``:
the ``except ReconcilerError`` of an action that failed must not swallow it and carry on
with the next action.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, wait

from reconciler.errors import Interrupted, ReconcilerError
from reconciler.model import VerifiedStream

#: how often a waiting thread looks at the token (seconds)
POLL = 0.1


class StopToken:
    """A request to stop, shared by the threads of one operation. Thread-safe; the first
    request wins (its reason and exit code are kept)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.reason = ""
        self.exit_code = 1
        self.hint: str | None = None

    def request(self, reason: str, exit_code: int = 1, hint: str | None = None) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason, self.exit_code, self.hint = reason, exit_code, hint
            self._event.set()

    def set(self, error: ReconcilerError) -> None:
        """Stop because of ``error`` (e.g. ``LockLost``): its message is the reason."""
        self.request(error.message, 1, error.hint)

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``Interrupted`` when a stop was requested."""
        if self._event.is_set():
            raise Interrupted(self.reason, exit_code=self.exit_code, hint=self.hint)

    def sleep(self, seconds: float) -> None:
        """Sleep, waking up (and raising ``Interrupted``) when a stop is requested."""
        if self._event.wait(seconds):
            self.check()


def check(stop: StopToken | None) -> None:
    if stop is not None:
        stop.check()


def guarded(chunks: Iterable[bytes], stop: StopToken | None) -> Iterable[bytes]:
    """``chunks``, checking the token before each: a download stops between two chunks.
    A ``VerifiedStream`` stays one (the store need not hash it again)."""
    if stop is None:
        return chunks
    if isinstance(chunks, VerifiedStream):
        return VerifiedStream(_checked(chunks, stop), chunks.digest)
    return _checked(chunks, stop)


def _checked(chunks: Iterable[bytes], stop: StopToken) -> Iterator[bytes]:
    for chunk in chunks:
        stop.check()
        yield chunk


def wait_all(futures: Iterable[Future[object]], stop: StopToken | None) -> None:
    """Wait until every future is done or one failed; raise ``Interrupted`` as soon as a
    stop is requested, without waiting for the threads still running."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=None if stop is None else POLL, return_when=FIRST_EXCEPTION)
        check(stop)
        if any(f.exception() is not None for f in done):
            return
