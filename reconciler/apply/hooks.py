"""Crash points for tests: ``RECONCILER_APPLY_KILL_AT`` makes apply SIGKILL itself at a
chosen moment, so the kill tests are deterministic instead of racing a timer.

Values (comma-separated): ``blob:N`` (after the N-th blob this apply stores: into a
content batch, not yet committed), ``batch:N`` (when the N-th content batch's files are
durable in place, before its rows are committed),
``commit:REPO`` (after REPO's new version is committed, before it is published),
``repo:REPO`` (after REPO is completely done, before the next repository). Unset in
normal use, where every hook is a no-op.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, Self

from reconciler.model import Digest
from reconciler.store.protocol import ContentBatch, Store

ENV = "RECONCILER_APPLY_KILL_AT"


class KillSwitch:
    def __init__(self, spec: str | None = None) -> None:
        spec = os.environ.get(ENV, "") if spec is None else spec
        self.points = {p.strip() for p in spec.split(",") if p.strip()}
        self.blobs = 0
        self.batches = 0

    def __bool__(self) -> bool:
        return bool(self.points)

    def at(self, point: str) -> None:
        if point in self.points:
            os.kill(os.getpid(), signal.SIGKILL)

    def blob_stored(self) -> None:
        self.blobs += 1
        self.at(f"blob:{self.blobs}")

    def batch_placed(self) -> None:
        self.batches += 1
        self.at(f"batch:{self.batches}")


class CountingStore:
    """A store proxy that reports every blob stored to the kill switch."""

    def __init__(self, store: Store, switch: KillSwitch) -> None:
        self._store = store
        self._switch = switch

    def blob_put(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
                 size: int | None = None, where: str = "") -> int:
        n = self._store.blob_put(chunks, expected, size=size, where=where)
        self._switch.blob_stored()
        return n

    def content_batch(self) -> CountingBatch:
        return CountingBatch(self._store.content_batch(), self._switch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class CountingBatch:
    """A content batch proxy with the same reports, and one before its rows."""

    def __init__(self, batch: ContentBatch, switch: KillSwitch) -> None:
        self._batch = batch
        self._switch = switch

    def blob_put(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
                 size: int | None = None, where: str = "") -> int:
        n = self._batch.blob_put(chunks, expected, size=size, where=where)
        self._switch.blob_stored()
        return n

    def commit(self, *, before_rows: Callable[[], None] | None = None) -> None:
        def placed() -> None:
            self._switch.batch_placed()
            if before_rows is not None:
                before_rows()

        self._batch.commit(before_rows=placed)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._batch.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)
