"""The shared store: PostgreSQL for metadata, content-addressed files for bytes.

``PostgresStore("postgresql://user@host:5432/db", blobs="/srv/reconciler-blobs")``.
The database holds what the SQLite store's ``store.db`` holds (same tables, same
migrations by name); the ``blobs`` folder holds what the SQLite store directory holds
besides (``blobs/``, ``manifests/``, ``tmp/``). Every process using the store must see
the same folder (a shared file system), or the same S3 bucket once blob storage moves.

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

from reconciler.errors import StoreError

try:
    import psycopg
    from psycopg.pq import TransactionStatus
except ImportError as exc:  # pragma: no cover - the message is the point
    raise StoreError("the PostgreSQL store needs psycopg 3, which is not installed",
                     hint="pip install 'reconciler[postgresql]'") from exc

from reconciler.store.postgres.binding import bind
from reconciler.store.postgres.connection import PgConnection, redact, store_error
from reconciler.store.postgres.lock import advisory_lock
from reconciler.store.postgres.migrations import migrate
from reconciler.store.sql.base import SQLStore
from reconciler.store.sql.groupcommit import GroupCommit
from reconciler.store.sqlite.files import ContentFiles


def content_files(root: Path) -> tuple[ContentFiles, ContentFiles]:
    """Where a PostgreSQL store keeps blob and manifest bytes: the one place to change
    when blobs may live elsewhere (S3)."""
    return ContentFiles(root, "blobs"), ContentFiles(root, "manifests")


class PostgresStore(SQLStore):
    """Store backend shared by several processes or machines: ``PostgresStore(url,
    blobs=folder)`` migrates the database if needed and checks it belongs to ``folder``.
    Each thread gets its own connection (opened on first use, reopened after the server
    dropped it); ``close()`` closes them all."""

    def __init__(self, url: str, *, blobs: str | Path) -> None:
        self.url = url
        self.location = redact(url)
        #: the local folder with the bytes (what ``root`` is for the SQLite store)
        self.root = Path(blobs).absolute()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the blob folder {self.root}: {exc}",
                             hint="choose another folder with --blobs or RECONCILER_BLOBS") from exc
        self.blob_files, self.manifest_files = content_files(self.root)
        self._local = threading.local()
        self._all_conns: list[PgConnection] = []
        self._conns_lock = threading.Lock()
        # this process's writers queue here rather than on the server's row lock, and
        # parallel blob records share transactions (group commit), as in the SQLite store
        self._write_lock = threading.Lock()
        self._content_rows = GroupCommit(self._write)
        conn = self._conn()
        try:
            migrate(conn.raw)
            self.store_id = bind(conn.raw, self.root, self.location)
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
            try:
                raw = psycopg.connect(self.url, autocommit=True, application_name="reconciler")
            except psycopg.Error as exc:
                raise StoreError(f"cannot connect to the PostgreSQL store {self.location}: {str(exc).strip()}",
                                 hint="check the URL, that the server runs and that the database exists "
                                      "(createdb)") from exc
            conn = PgConnection(raw, self.location)
            self._local.conn = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[PgConnection]:
        conn = self._conn()
        with self._write_lock:
            try:
                with conn.raw.transaction():
                    # first: the row lock makes this the only writer until commit, and
                    # READ COMMITTED lets every later statement see the latest commits
                    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                    yield conn
            except psycopg.Error as exc:
                raise store_error(exc, self.location) from exc

    @contextmanager
    def _read(self) -> Iterator[PgConnection]:
        conn = self._conn()
        if conn.raw.info.transaction_status != TransactionStatus.IDLE:
            yield conn
            return
        try:
            with conn.raw.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield conn
        except psycopg.Error as exc:
            raise store_error(exc, self.location) from exc

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._all_conns:
                try:
                    conn.raw.close()
                except psycopg.Error:
                    pass
            self._all_conns.clear()
        self._local = threading.local()

    def lock(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        return advisory_lock(self.url, self.location, timeout)
