"""The embedded store: SQLite (WAL) for metadata, content-addressed files for bytes.

Layout of a store directory::

    <root>/store.db            SQLite database (WAL mode)
    <root>/blobs/sha256/ab/... blob bytes (or in the blob storage given by ``blobs=``,
                               e.g. s3://bucket/prefix, which the store then remembers)
    <root>/manifests/sha256/.. manifest and index bytes, exactly as received
    <root>/tmp/                files being written (removed by gc)
    <root>/lock                the exclusive apply lock
    <root>/store-id            the identity marker of the blob storage (beside the blobs
                               it binds: ``sql/identity.py``)

Bytes are made durable before the metadata that refers to them is committed, and every
metadata change happens in one transaction that also bumps the store generation.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from reconciler.errors import StoreError, StoreMissing
from reconciler.store.blobs import ContentFiles, open_blobs
from reconciler.store.blobs.s3 import S3Timeouts
from reconciler.store.sql import identity
from reconciler.store.sql.base import SQLStore
from reconciler.store.sql.groupcommit import GroupCommit
from reconciler.store.sqlite.lock import backup_lock, exclusive_lock
from reconciler.store.sqlite.migrations import migrate


class SQLiteStore(SQLStore):
    """Store backend on one machine: ``SQLiteStore(path)`` creates the store if needed
    (``create=False``: ``StoreMissing`` instead, and nothing is created).

    ``durable=False`` skips every fsync (files and SQLite): only for generating test and
    benchmark fixtures quickly, never for a store anyone relies on. ``blobs`` is where the
    blob bytes live (``open_blobs``: a folder, or ``s3://bucket/prefix``); by default the
    store's own directory, or what an earlier open recorded. ``s3_timeouts``: of each S3
    request (a server's are short)."""

    def __init__(self, root: str | Path, *, durable: bool = True, blobs: str | None = None,
                 s3_timeouts: S3Timeouts | None = None, create: bool = True) -> None:
        self.root = Path(root).absolute()
        self.location = str(self.root)
        if not create and not (self.root / "store.db").is_file():
            raise StoreMissing(f"there is no store at {self.root} (no {self.root / 'store.db'})",
                               hint="check --store / RECONCILER_STORE (the default is ./.reconciler); a store is "
                                    "made by the first write, e.g. `reconciler apply` or `reconciler repo create`")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store directory {self.root}: {exc}",
                             hint="choose another location with --store or RECONCILER_STORE") from exc
        self.durable = durable
        self.manifest_files = ContentFiles(self.root, "manifests", durable=durable)
        self._local = threading.local()
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        # Writers of this process queue here rather than in SQLite's busy handler, which
        # sleeps up to 100 ms between tries: with parallel downloads recording blobs, that
        # sleep (not the disk) was most of a cold sync's wall time.
        self._write_lock = threading.Lock()
        self._content_rows = GroupCommit(self._write)
        #: the thread that holds the store lock through this object, if any
        self._lock_owner: int | None = None
        self._identity_lock = threading.Lock()
        with exclusive_lock(self.root / "migrate.lock", timeout=60):
            migrate(self._conn())
            blobs = self._blobs_setting(blobs)
            self._backfill_subjects()
        #: a string, not a Path: ``replaced`` stats it on every request of a server
        self._db_path = str(self.root / "store.db")
        db = os.stat(self._db_path)
        self._db_file = (db.st_dev, db.st_ino)
        self.blobs_internal = not blobs
        self.blob_files = open_blobs(blobs or self.root, durable=durable, timeouts=s3_timeouts)

    def _blobs_setting(self, wanted: str | None) -> str | None:
        """The blob storage this store uses: recorded on first use, so later commands
        need no ``--blobs`` and a different one is refused instead of silently finding
        every blob missing."""
        conn = self._conn()
        row = conn.execute("SELECT value FROM settings WHERE key = 'blobs'").fetchone()
        recorded = row[0] if row and row[0] else None
        if row is not None:
            if wanted is not None and wanted.rstrip("/") != (recorded or "").rstrip("/") and not (
                    recorded is None and Path(wanted).absolute() == self.root):
                raise StoreError(f"the store at {self.location} keeps its blobs in {recorded or self.location}, "
                                 f"not {wanted}", hint="drop --blobs (the store remembers it) or give the same one")
            return recorded
        if wanted is not None and conn.execute("SELECT 1 FROM blobs LIMIT 1").fetchone():
            raise StoreError(f"the store at {self.location} already holds blobs in {self.location}; "
                             f"it cannot switch to {wanted}", hint="start a new store for the new blob storage")
        conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES ('blobs', ?)", (wanted or "",))
        return wanted

    # -- connections and transactions -------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.root / "store.db", isolation_level=None,
                                       check_same_thread=False, timeout=60)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL" if self.durable else "PRAGMA synchronous=OFF")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA busy_timeout=60000")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store database {self.root / 'store.db'}: {exc}") from exc
            self._local.conn = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    def home(self) -> str:
        return "sqlite:" + os.path.realpath(self.root)

    @contextmanager
    def identity_guard(self) -> Iterator[None]:
        with self._identity_lock, exclusive_lock(self.root / "migrate.lock", timeout=60):
            yield

    @contextmanager
    def _write(self, *, binding: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction that bumps the store generation (after the identity
        gate, ``sql/identity.py``; neither for ``binding``)."""
        if not binding:
            identity.gate(self)
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                if not binding:
                    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs."""
        conn = self._conn()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        if hasattr(self, "blob_files"):
            self.blob_files.close()
        with self._conns_lock:
            for conn in self._all_conns:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all_conns.clear()
        self._local = threading.local()

    def lock(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        return self._locked(timeout)

    def backup_hold(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        return backup_lock(self.root / "backup.lock", shared=True, timeout=timeout)

    def gc_barrier(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        return backup_lock(self.root / "backup.lock", shared=False, timeout=timeout)

    def replaced(self) -> bool:
        """Whether ``store.db`` is another file than the one this object opened (a store
        restored or copied into place under a running server)."""
        try:
            st = os.stat(self._db_path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._db_file

    @contextmanager
    def _locked(self, timeout: float) -> Iterator[None]:
        with exclusive_lock(self.root / "lock", timeout):
            outer, self._lock_owner = self._lock_owner, threading.get_ident()
            try:
                yield
            finally:
                self._lock_owner = outer



@contextmanager
def temporary_store() -> Iterator[SQLiteStore]:
    """A new, empty store in a temporary directory, removed afterwards: what ``plan`` and
    ``drift`` read when the store does not exist yet (so they create nothing where --store
    points). Its generation is a new store's, so ``apply PLAN`` against the store it
    creates finds the plan fresh."""
    with tempfile.TemporaryDirectory(prefix="reconciler-empty-") as tmp:
        store = SQLiteStore(tmp, durable=False)
        try:
            yield store
        finally:
            store.close()
