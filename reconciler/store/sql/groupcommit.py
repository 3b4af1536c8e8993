"""Group commit: many threads' small metadata writes share one transaction.

A cold sync records hundreds of blobs from parallel download threads. One transaction
each means one WAL fsync each, all in a row behind the write lock: measured, that was
most of the wall time. Here a thread queues its write and then either finds it already
committed by another thread's batch, or becomes the flusher and commits everything
queued so far in one transaction. Each caller still returns only after its own row is
durable, so the store's "bytes durable, then metadata committed" order is unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager

from reconciler.store.sql.connection import Connection

Write = Callable[[Connection], None]


class GroupCommit:
    def __init__(self, transaction: Callable[[], AbstractContextManager[Connection]]) -> None:
        self._transaction = transaction
        self._queue_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._queue: list[tuple[Write, Future[None]]] = []

    def run(self, write: Write) -> None:
        """Run ``write`` in a committed transaction (maybe shared); raise what it raised."""
        done: Future[None] = Future()
        with self._queue_lock:
            self._queue.append((write, done))
        with self._flush_lock:
            # still pending: nobody has taken it, so this thread's batch includes it
            if not done.done():
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    with self._transaction() as conn:
                        for fn, _ in batch:
                            fn(conn)
                except BaseException as exc:
                    for _, fut in batch:
                        fut.set_exception(exc)
                else:
                    for _, fut in batch:
                        fut.set_result(None)
        done.result()
