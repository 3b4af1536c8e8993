"""``ContentBatch`` of the SQL stores (SQLite, PostgreSQL): many blobs and manifests made
durable together.

A cold sync stores hundreds of blobs. Stored one by one, each paid an fsync of its file,
an fsync of its directory and a (group-)committed row, all inside the download thread, so
the HTTP connection waited for the disk three times per blob. A batch instead:

1. ``blob_put`` streams into a verified temporary file and hands its fsync to a small
   pool of sync threads at once (the disk writes back while the next blob downloads);
   ``manifests_put`` only stages, in memory;
2. ``commit`` waits for those fsyncs, writes and fsyncs the manifest files, renames every
   file into place, fsyncs each directory renamed into (once, however many files it got),
   and only then records every row in ONE transaction.

So the store's order holds for the whole batch: bytes durable, renames durable, then the
metadata that names them. A kill before the commit's transaction leaves temporary files
(``gc`` removes them) and perhaps renamed files no row names (invisible: a row is what
makes content known; the next sync stores them again, ``gc`` removes leftovers). Nothing
staged is visible, not even to ``blob_has`` of the store, until ``commit`` returns.

In object storage (S3) there is nothing to batch on the byte side: a blob or manifest is
verified before it is visible under its key (see ``blobs.s3``), so it is written at once
and only its row waits for ``commit``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Self

from reconciler.errors import StoreError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.mediatypes import is_index
from reconciler.store.blobs.local import ContentFiles, discard, fsync_path
from reconciler.store.sql import maintenance, referrers
from reconciler.store.sql.connection import Connection
from reconciler.store.sql.refs import refs_text

if TYPE_CHECKING:
    from reconciler.store.sql.base import SQLStore

#: fsyncs in flight at once (they wait on the disk, not on the GIL)
SYNC_THREADS = 4

#: a staged blob: (temporary file, size, its fsync); no file when the storage is remote
_Staged = tuple[str | None, int, "Future[None] | None"]


class SQLContentBatch:
    """``ContentBatch`` of a ``SQLStore`` (see the module doc)."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        #: digest -> (temporary file, size, its fsync); no file: already in remote storage
        self._blobs: dict[Digest, _Staged] = {}
        self._manifests: dict[Digest, Manifest | Index] = {}
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sync_later(self, path: str) -> Future[None] | None:
        if not self._store.durable:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="store-fsync")
            return self._pool.submit(fsync_path, path)

    def blob_put(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
                 size: int | None = None, where: str = "") -> int:
        """Stage a blob (verified; see the module docstring); return its byte count."""
        files = self._store.blob_files
        staged: _Staged
        if isinstance(files, ContentFiles):
            tmp_name, n = files.stage(chunks, expected, size=size, where=where)
            staged = (tmp_name, n, self._sync_later(tmp_name))
        else:  # object storage: verified before visible under its key (no rename to batch); the row waits
            n = files.write(chunks, expected, size=size, where=where)
            staged = (None, n, None)
        with self._lock:
            old = self._blobs.pop(expected, None)
            self._blobs[expected] = staged
        if old is not None:  # the same blob twice: keep one temporary file
            _discard(old)
        return n

    def blob_has(self, digest: Digest) -> bool:
        """Staged in this batch (not yet committed)."""
        with self._lock:
            return digest in self._blobs

    def manifests_put(self, manifests: Sequence[Manifest | Index]) -> None:
        """Stage manifests; ``commit`` stores them with the blobs, children and indexes
        in one transaction."""
        with self._lock:
            for m in manifests:
                self._manifests.setdefault(m.digest, m)

    def commit(self, *, before_rows: Callable[[], None] | None = None) -> None:
        """Make everything staged durable and known (see the module docstring).
        ``before_rows`` runs after the files are in place, before the transaction (a
        crash point for tests)."""
        with self._lock:
            blobs, self._blobs = self._blobs, {}
            manifests, self._manifests = list(self._manifests.values()), {}
        store = self._store
        staged_manifests: list[tuple[Manifest | Index, str]] = []
        try:
            for _, _, synced in blobs.values():
                self._wait(synced)
            manifests = [m for m in manifests
                         if not (store.manifest_has(m.digest) and store.manifest_files.exists(m.digest))]
            manifest_files = store.manifest_files
            for m in manifests:
                if isinstance(manifest_files, ContentFiles):
                    staged_manifests.append((m, manifest_files.stage_bytes(m.raw)))
                else:  # object storage: an atomic PUT of bytes the manifest's digest verified
                    manifest_files.write_bytes(m.raw, m.digest)
            for synced in [self._sync_later(tmp_name) for _, tmp_name in staged_manifests]:
                self._wait(synced)
            dirs: set[Path] = set()
            for digest, (tmp_name, _, _) in blobs.items():
                if tmp_name is not None:
                    dirs.add(_rename(tmp_name, store.blob_files.path(digest)))
            for m, tmp_name in staged_manifests:
                dirs.add(_rename(tmp_name, store.manifest_files.path(m.digest)))
            for synced in [self._sync_later(str(d)) for d in dirs]:
                self._wait(synced)
        except BaseException as exc:
            for staged in blobs.values():
                _discard(staged)
            for _, tmp_name in staged_manifests:
                discard(tmp_name)
            if isinstance(exc, OSError):
                raise StoreError(f"cannot store the fetched content in {store.manifest_files.location}: "
                                 f"{exc.strerror or exc}",
                                 hint="check the free space and the health of the disk; nothing was "
                                      "recorded, the next run fetches it again") from exc
            raise
        if before_rows is not None:
            before_rows()
        store.record_content([(d, n) for d, (_, n, _) in blobs.items()], manifests)

    @staticmethod
    def _wait(synced: Future[None] | None) -> None:
        if synced is not None:
            synced.result()

    def close(self) -> None:
        """Drop what was staged and not committed (its temporary files)."""
        with self._lock:
            blobs, self._blobs = self._blobs, {}
            self._manifests = {}
            pool, self._pool = self._pool, None
        for staged in blobs.values():
            _discard(staged)
        if pool is not None:
            pool.shutdown(wait=True)


def content_rows(blobs: Iterable[tuple[Digest, int]], manifests: Sequence[Manifest | Index]
                 ) -> Callable[[Connection], None]:
    """The inserts recording ``(digest, size)`` blobs and manifests (with their
    references), for one transaction."""
    blob_rows = [(str(d), n) for d, n in blobs]
    per_manifest = [maintenance.manifest_refs(m) for m in manifests]
    rows = [(str(m.digest), m.media_type, "index" if is_index(m.media_type) else "manifest", len(m.raw),
             refs_text((r[2], r[3], r[4]) for r in mrefs)) for m, mrefs in zip(manifests, per_manifest, strict=True)]
    refs = [r for mrefs in per_manifest for r in mrefs]
    subjects = referrers.subject_rows(manifests)

    def record(conn: Connection) -> None:
        conn.executemany("INSERT INTO blobs (digest, size) VALUES (?, ?) ON CONFLICT DO NOTHING", blob_rows)
        conn.executemany("INSERT INTO manifests (digest, media_type, kind, size, refs) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)
        conn.executemany("DELETE FROM manifest_refs WHERE parent = ?", [(r[0],) for r in rows])
        conn.executemany("INSERT INTO manifest_refs (parent, position, child, child_kind, media_type, size, platform)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", refs)
        referrers.record(conn, subjects)

    return record


def _rename(tmp_name: str, final: Path | None) -> Path:
    assert final is not None  # a local folder always has a path
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_name, final)
    return final.parent


def _discard(staged: _Staged) -> None:
    tmp_name, _, synced = staged
    if synced is not None:
        synced.cancel()
        try:
            synced.result()
        except BaseException:  # noqa: BLE001 - the file is going away; its fsync does not matter
            pass
    if tmp_name is not None:
        discard(tmp_name)
