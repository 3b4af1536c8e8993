"""Bounded parallelism for network-bound steps, and the progress events they report.

``run_bounded`` runs one function over many items on at most ``jobs`` threads and stops
at the first failure: queued items are cancelled, running ones are waited for (so no
thread writes into the store after the caller has given up), and the first error is
raised with the item it failed on. A requested stop (``ops.stop``) is the exception:
running items are abandoned then, since what they write is invisible until committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from reconciler.errors import Interrupted
from reconciler.ops.stop import StopToken, check, wait_all

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long operation: ``phase`` is ``tags``, ``manifests`` or ``blobs``;
    ``done`` of ``total`` items finished, ``bytes`` received so far in this phase."""

    phase: str
    done: int
    total: int
    bytes: int = 0
    item: str = ""


Progress = Callable[[ProgressEvent], None]


class ItemFailed(Exception):
    """Internal: carries the item a worker failed on together with its error."""

    def __init__(self, item: object, error: BaseException) -> None:
        super().__init__(f"{item}: {error}")
        self.item = item
        self.error = error


class Counter:
    """Thread-safe progress counting for one phase."""

    def __init__(self, phase: str, total: int, progress: Progress | None) -> None:
        self.phase, self.total, self.progress = phase, total, progress
        self.done = 0
        self.bytes = 0
        self._lock = threading.Lock()
        if progress is not None and total:
            progress(ProgressEvent(phase, 0, total))

    def step(self, item: str = "", nbytes: int = 0) -> None:
        with self._lock:
            self.done += 1
            self.bytes += nbytes
            event = ProgressEvent(self.phase, self.done, self.total, self.bytes, item)
        if self.progress is not None:
            self.progress(event)


def run_bounded(fn: Callable[[T], R], items: Iterable[T], *, jobs: int,
                stop: StopToken | None = None) -> list[tuple[T, R]]:
    """``[(item, fn(item)) ...]`` in input order, using at most ``jobs`` threads.

    Raises ``ItemFailed(item, error)`` for the first item whose call raised, and
    ``Interrupted`` as soon as ``stop`` is requested: then queued items are cancelled and
    running ones abandoned, not waited for (each checks the token itself)."""
    work = list(items)
    if not work:
        return []
    jobs = max(1, min(jobs, len(work)))
    if jobs == 1:
        out = []
        for item in work:
            check(stop)
            try:
                out.append((item, fn(item)))
            except Interrupted:
                raise
            except Exception as exc:
                raise ItemFailed(item, exc) from exc
        return out
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="reconciler")
    futures: dict[Future[R], T] = {}
    abandon = False
    try:
        futures = {pool.submit(fn, item): item for item in work}
        try:
            wait_all(futures, stop)  # type: ignore[arg-type]
        except BaseException:  # a stop (or a signal that abandons the process): do not wait
            abandon = True
            raise
        for fut, item in futures.items():
            error = fut.exception() if fut.done() else None
            if isinstance(error, Interrupted):
                abandon = True
                raise error
            if error is not None:
                pool.shutdown(wait=True, cancel_futures=True)
                raise ItemFailed(item, error) from error
        return [(item, fut.result()) for fut, item in futures.items()]
    finally:
        pool.shutdown(wait=not abandon, cancel_futures=True)
