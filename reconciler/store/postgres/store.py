"""The shared store: PostgreSQL for metadata, content-addressed bytes in a folder or S3.

``PostgresStore("postgresql://user@host:5432/db", blobs="s3://bucket/prefix")`` (or
``blobs="/srv/reconciler-blobs"``). The database holds what the SQLite store's
``store.db`` holds (same tables, same migrations by name); the blob storage holds the
blob and the manifest bytes (``blobs/``, ``manifests/``, a folder also ``tmp/``) and the
``store-id`` marker that binds it to the database. Every process using the store must
see the same storage: one bucket/prefix, or one folder on a shared file system.

Crash safety is the SQLite store's: bytes are durable before the row that names them
commits, and every metadata change is one transaction that bumps the generation. The
generation row is locked first in every write transaction, which gives writers the
one-at-a-time order the shared code relies on (SQLite gets it from ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from reconciler.errors import StoreError
from reconciler.store.blobs import BlobStorage, is_remote, open_blobs

try:
    import psycopg
    from psycopg.pq import TransactionStatus
except ImportError as exc:  # pragma: no cover - the message is the point
    raise StoreError("the PostgreSQL store needs psycopg 3, which is not installed",
                     hint="pip install 'reconciler[postgresql]'") from exc

from reconciler.store.postgres.binding import bind
from reconciler.store.postgres.connection import PgConnection, redact, store_error
from reconciler.store.postgres.lock import APPLY_LOCK_KEY, HELD_BY, advisory_lock
from reconciler.store.postgres.migrations import migrate
from reconciler.store.sql.base import SQLStore
from reconciler.store.sql.groupcommit import GroupCommit


def content_storage(spec: str) -> tuple[BlobStorage, BlobStorage]:
    """Where a PostgreSQL store keeps blob and manifest bytes: both in ``spec`` (a folder
    or ``s3://bucket/prefix``), so every replica reads the manifests another one wrote."""
    return open_blobs(spec, area="blobs"), open_blobs(spec, area="manifests")


class PostgresStore(SQLStore):
    """Store backend shared by several processes or machines: ``PostgresStore(url,
    blobs=folder_or_s3_url)`` migrates the database if needed and checks it belongs to
    that blob storage.
    Each thread gets its own connection (opened on first use, reopened after the server
    dropped it); ``close()`` closes them all."""

    def __init__(self, url: str, *, blobs: str | Path) -> None:
        self.url = url
        self.location = redact(url)
        spec = str(blobs)
        #: the local folder with the bytes (what ``root`` is for the SQLite store); None in S3
        self.root: Path | None = None
        if not is_remote(spec):
            self.root = Path(spec).absolute()
            spec = str(self.root)
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the blob folder {self.root}: {exc}",
                                 hint="choose another folder with --blobs or RECONCILER_BLOBS") from exc
        self.blob_files, self.manifest_files = content_storage(spec)
        self._local = threading.local()
        self._all_conns: list[PgConnection] = []
        self._conns_lock = threading.Lock()
        # this process's writers queue here rather than on the server's row lock, and
        # parallel blob records share transactions (group commit), as in the SQLite store
        self._write_lock = threading.Lock()
        self._content_rows = GroupCommit(self._write)
        #: backend pids of the apply locks this store holds (see ``lock``)
        self._lock_pids: list[int] = []
        conn = self._conn()
        try:
            migrate(conn.raw)
            self.store_id = bind(conn.raw, self.blob_files, self.location)
        except psycopg.Error as exc:
            self.close()
            raise store_error(exc, self.location) from exc
        except BaseException:
            self.close()
            raise

    # -- connections and transactions -------------------------------------------
    def _conn(self) -> PgConnection:
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.raw.closed:
            conn = PgConnection(self._connect(), self.location, reconnect=self._connect)
            self._local.conn = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, application_name="reconciler")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL store {self.location}: {str(exc).strip()}",
                             hint="check the URL, that the server runs and that the database exists "
                                  "(createdb)") from exc

    @contextmanager
    def _write(self) -> Iterator[PgConnection]:
        conn = self._conn()
        with self._write_lock:
            try:
                with conn.raw.transaction():
                    # first: the row lock makes this the only writer until commit, and
                    # READ COMMITTED lets every later statement see the latest commits
                    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                    pids = list(self._lock_pids)
                    if pids and not conn.execute(HELD_BY, (APPLY_LOCK_KEY, pids)).fetchall()[0][0]:
                        raise StoreError(
                            f"the apply lock on the PostgreSQL store {self.location} was lost (the connection "
                            "holding it ended, e.g. a database restart); refusing to write without it",
                            hint="run the command again; what it committed before is kept")
                    yield conn
            except psycopg.Error as exc:
                raise store_error(exc, self.location) from exc

    @contextmanager
    def _read(self) -> Iterator[PgConnection]:
        conn = self._conn()
        if conn.raw.info.transaction_status != TransactionStatus.IDLE:
            yield conn
            return
        # BEGIN through ``execute``: sent again on a new connection if this one was dropped
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            yield conn
        finally:
            if not conn.raw.closed:
                conn.execute("COMMIT")

    def close(self) -> None:
        for files in (getattr(self, "blob_files", None), getattr(self, "manifest_files", None)):
            if files is not None:
                files.close()
        with self._conns_lock:
            for conn in self._all_conns:
                try:
                    conn.raw.close()
                except psycopg.Error:
                    pass
            self._all_conns.clear()
        self._local = threading.local()

    @contextmanager
    def _locked(self, timeout: float) -> Iterator[None]:
        with advisory_lock(self.url, self.location, timeout) as pid:
            self._lock_pids.append(pid)
            outer, self._lock_owner = self._lock_owner, threading.get_ident()
            try:
                yield
            finally:
                self._lock_owner = outer
                self._lock_pids.remove(pid)

    def lock(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        """The apply lock (module ``lock``); while held, every write of this store checks
        it still is."""
        return self._locked(timeout)
