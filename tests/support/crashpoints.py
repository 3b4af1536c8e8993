"""Crash points for the kill tests: ``python -m tests.support.crashpoints ARGS...`` runs the
reconciler CLI (``reconciler ARGS...``) with an observer installed (the package's seam,
``reconciler/apply/observer.py``) that counts store writes and SIGKILLs the process at a
chosen one, so the kill tests are deterministic instead of racing a timer. The shipped
package has no such code path; only this wrapper has.

``RECONCILER_APPLY_KILL_AT`` says where an apply dies.

Values (comma-separated): ``blob:N`` (after the N-th blob this apply stores: into a
content batch, not yet committed), ``batch:N`` (when the N-th content batch's files are
durable in place, before its rows are committed), ``write:N`` (at the N-th store write
event, see below), ``commit:REPO`` (after REPO's new version is committed, before it is
published), ``repo:REPO`` (after REPO is completely done, before the next repository).

Store write events, counted in the order they happen: every store write call the apply
makes (``blob_put``, ``manifest(s)_put``, ``version_commit``, ``repository_*``,
``publish``, ``unpublish``, ``v1_images_put``, ``v1_commit``, ``versions_drop``; into a
content batch ``blob_put``, ``manifests_put`` and its ``commit``) is one event once it returned; a ``blob_put`` is also an event *while* it
writes, when its bytes sit in a temporary file but are not yet renamed into place (so a
kill there leaves a temporary file for ``store gc``), and a batch's commit is also one
when its files are durable in place but its rows not yet committed.
``RECONCILER_APPLY_WRITE_LOG=PATH`` appends one line per event (``N what``) to PATH: a
test counts the events of a full run, then kills a run at each of them.

``store gc`` has the same kind of crash points: ``RECONCILER_GC_KILL_AT=write:N`` kills it
at its N-th step (``rows``: its rows are deleted, no file yet; ``file N``: the N-th file
removed), ``RECONCILER_GC_WRITE_LOG=PATH`` logs the steps (``gc_switch``).

With none of these set the wrapper changes nothing: the store is not wrapped.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, Self, TextIO

from reconciler.apply.observer import Observer, install
from reconciler.model import Digest, Index, Manifest
from reconciler.store.protocol import Store
from reconciler.store.roles.content import ContentBatch

#: ``run_cli(..., module=MODULE)``: the CLI with these crash points
MODULE = "tests.support.crashpoints"
ENV = "RECONCILER_APPLY_KILL_AT"
LOG_ENV = "RECONCILER_APPLY_WRITE_LOG"
GC_ENV = "RECONCILER_GC_KILL_AT"
GC_LOG_ENV = "RECONCILER_GC_WRITE_LOG"

#: the store methods that write (each call is one write event)
WRITE_METHODS = frozenset({"manifest_put", "manifests_put", "version_commit", "repository_create",
                           "repository_update", "repository_delete", "publish", "unpublish", "publications_switch",
                           "v1_images_put", "v1_commit", "versions_drop"})


class KillSwitch:
    def __init__(self, spec: str | None = None, log_path: str | None = None) -> None:
        spec = os.environ.get(ENV, "") if spec is None else spec
        self.points = {p.strip() for p in spec.split(",") if p.strip()}
        self.log_path = (os.environ.get(LOG_ENV) or None) if log_path is None else log_path
        self.blobs = 0
        self.batches = 0
        self.writes = 0
        self._lock = threading.Lock()
        self._log: TextIO | None = None

    def __bool__(self) -> bool:
        return bool(self.points) or bool(self.log_path)

    def at(self, point: str) -> None:
        if point in self.points:
            os.kill(os.getpid(), signal.SIGKILL)

    def blob_stored(self) -> None:
        with self._lock:
            self.blobs += 1
            n = self.blobs
        self.at(f"blob:{n}")

    def write(self, what: str) -> None:
        """One store write event: logged (line-buffered, so a kill right after loses
        nothing), then maybe the kill."""
        with self._lock:
            self.writes += 1
            n = self.writes
            if self.log_path:
                if self._log is None:
                    self._log = open(self.log_path, "a", buffering=1)  # noqa: SIM115 - closed in close()
                self._log.write(f"{n} {what}\n")
            self.at(f"write:{n}")

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def batch_placed(self) -> None:
        with self._lock:
            self.batches += 1
            n = self.batches
        self.at(f"batch:{n}")


def gc_switch() -> KillSwitch:
    """The kill switch of ``store gc`` (from ``RECONCILER_GC_KILL_AT`` / ``..._WRITE_LOG``);
    its ``write`` is what ``Store.gc(events=...)`` calls."""
    return KillSwitch(os.environ.get(GC_ENV, ""), os.environ.get(GC_LOG_ENV) or "")


class CountingStore:
    """A store proxy that reports every write to the kill switch."""

    def __init__(self, store: Store, switch: KillSwitch) -> None:
        self._store = store
        self._switch = switch

    def blob_put(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
                 size: int | None = None, where: str = "") -> int:
        if not hasattr(chunks, "read"):
            chunks = self._announce_end(chunks, expected)
        n = self._store.blob_put(chunks, expected, size=size, where=where)
        self._switch.write(f"blob_put {expected}")
        self._switch.blob_stored()
        return n

    def _announce_end(self, chunks: Iterable[bytes], expected: Digest) -> Iterator[bytes]:
        return announce_end(chunks, self._switch, expected)

    def content_batch(self) -> CountingBatch:
        return CountingBatch(self._store.content_batch(), self._switch)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in WRITE_METHODS:
            return attr
        switch = self._switch

        def counted(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            switch.write(name)
            return result

        return counted


def announce_end(chunks: Iterable[bytes], switch: KillSwitch, expected: Digest) -> Iterator[bytes]:
    """``chunks``, then the "bytes in a temporary file" event once the writer asks for
    more after the last one (a mismatch raised by ``chunks`` itself comes first)."""
    yield from chunks
    switch.write(f"blob_put {expected} (in a temporary file)")


class CountingBatch:
    """A content batch proxy with the same reports, and one before its rows."""

    def __init__(self, batch: ContentBatch, switch: KillSwitch) -> None:
        self._batch = batch
        self._switch = switch

    def blob_put(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
                 size: int | None = None, where: str = "") -> int:
        if not hasattr(chunks, "read"):
            chunks = announce_end(chunks, self._switch, expected)
        n = self._batch.blob_put(chunks, expected, size=size, where=where)
        self._switch.write(f"batch blob_put {expected}")
        self._switch.blob_stored()
        return n

    def manifests_put(self, manifests: Sequence[Manifest | Index]) -> None:
        self._batch.manifests_put(manifests)
        self._switch.write("batch manifests_put")

    def commit(self, *, before_rows: Callable[[], None] | None = None) -> None:
        def placed() -> None:
            self._switch.write("batch commit (files in place, rows not yet)")
            self._switch.batch_placed()
            if before_rows is not None:
                before_rows()

        self._batch.commit(before_rows=placed)
        self._switch.write("batch commit")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._batch.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)


class CrashPoints(Observer):
    """The observer this wrapper installs: an apply's store writes and points go to the
    apply switch (``RECONCILER_APPLY_*``), gc's steps to the gc switch (``RECONCILER_GC_*``)."""

    def __init__(self) -> None:
        self.apply = KillSwitch()
        self.gc = gc_switch()

    def store(self, store: Store) -> Store:
        return CountingStore(store, self.apply) if self.apply else store

    def event(self, scope: str, what: str) -> None:
        if scope == "gc":
            if self.gc:
                self.gc.write(what)
        else:
            self.apply.at(what)

    def close(self) -> None:
        self.apply.close()
        self.gc.close()


def main() -> None:
    install(CrashPoints())
    from reconciler.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
