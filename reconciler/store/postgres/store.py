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

Connections come from a bounded pool (``pool.py``), lent per statement or per
transaction. A server replica may start while the blob storage is unreachable
(``defer_blob_check``): it then serves what needs only the database, and checks the
store-id binding the first time it needs the storage (``check_blob_storage``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.errors import BlobStorageError, LockLost, StoreError, StoreMissing
from reconciler.model import Digest
from reconciler.store.blobs import BlobStorage, is_remote, open_blobs
from reconciler.store.blobs.s3 import S3Timeouts

try:
    import psycopg
    from psycopg.pq import TransactionStatus
except ImportError as exc:  # pragma: no cover - the message is the point
    raise StoreError("the PostgreSQL store needs psycopg 3, which is not installed",
                     hint="pip install 'reconciler[postgresql]'") from exc

from reconciler.store.postgres.binding import bind, home_of
from reconciler.store.postgres.connection import PgConnection, redact, store_error
from reconciler.store.postgres.lock import APPLY_LOCK_KEY, HELD_BY, advisory_lock, backup_lock
from reconciler.store.postgres.migrations import MIGRATE_LOCK_KEY, migrate
from reconciler.store.postgres.pool import COMMAND_CONNECTIONS, COMMAND_WAIT, Pool
from reconciler.store.sql import identity
from reconciler.store.sql.base import SQLStore
from reconciler.store.sql.groupcommit import GroupCommit

log = logging.getLogger(__name__)


def content_storage(spec: str, timeouts: S3Timeouts | None = None) -> tuple[BlobStorage, BlobStorage]:
    """Where a PostgreSQL store keeps blob and manifest bytes: both in ``spec`` (a folder
    or ``s3://bucket/prefix``), so every replica reads the manifests another one wrote."""
    return (open_blobs(spec, area="blobs", timeouts=timeouts),
            open_blobs(spec, area="manifests", timeouts=timeouts))


class _Rows:
    """A statement's rows, fetched before its connection went back to the pool."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = iter(rows)

    def fetchone(self) -> Any:
        return next(self._rows, None)

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return self._rows


class _Statements:
    """What ``_conn()`` is for a thread outside a transaction: every statement on a
    connection leased for it alone (autocommit, as before the pool)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def execute(self, sql: str, parameters: Any = None, /) -> _Rows:
        with self._pool.lease() as conn:
            cur = conn.execute(sql, parameters)
            return _Rows(cur.fetchall() if cur.description is not None else [])

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> None:
        with self._pool.lease() as conn:
            conn.executemany(sql, parameters)


class PostgresStore(SQLStore):
    """Store backend shared by several processes or machines: ``PostgresStore(url,
    blobs=folder_or_s3_url)`` migrates the database if needed and checks it belongs to
    that blob storage.

    ``max_connections`` bounds this process's connections (the pool; the apply lock has
    one more of its own), ``pool_wait`` is how long a statement waits for one.
    ``defer_blob_check``: a blob storage that cannot be reached now is not an error (a
    server replica starting during an object-storage outage); the binding is checked by
    ``check_blob_storage``, which every read of blob or manifest bytes calls first.
    ``s3_timeouts``: of each S3 request (a server's are short). ``create=False``: a
    database without a store is ``StoreMissing`` (nothing is created in it)."""

    def __init__(self, url: str, *, blobs: str | Path, max_connections: int = COMMAND_CONNECTIONS,
                 pool_wait: float = COMMAND_WAIT, defer_blob_check: bool = False,
                 s3_timeouts: S3Timeouts | None = None, create: bool = True) -> None:
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
        self.blob_files, self.manifest_files = content_storage(spec, s3_timeouts)
        self._local = threading.local()
        # this process's writers queue here rather than on the server's row lock, and
        # parallel blob records share transactions (group commit), as in the SQLite store
        self._write_lock = threading.Lock()
        self._identity_lock = threading.Lock()
        self._content_rows = GroupCommit(self._write)
        #: backend pids of the apply locks this store holds (see ``lock``)
        self._lock_pids: list[int] = []
        #: set when a held apply lock's session ended (its watchdog, or a refused write)
        self._lock_lost = threading.Event()
        #: the id binding the database to the blob storage; None until checked
        self.store_id: int | None = None
        self._bind_lock = threading.Lock()
        #: this process's connections, at most ``max_connections``
        self._pool: Pool | None = None
        # the first connection directly, so a wrong URL or a server that is down is a
        # clear error now rather than a pool timeout later
        raw = self._connect()
        try:
            if not create and raw.execute("SELECT to_regclass('meta')").fetchone()[0] is None:  # type: ignore[index]
                raise StoreMissing(f"the database {self.location} holds no reconciler store",
                                   hint="check --store / RECONCILER_STORE; a store is made by the first write, "
                                        "e.g. `reconciler apply`")
            migrate(raw)
            #: where this database lives: a copy of it (a restored dump) lives elsewhere
            self._home = home_of(raw)
            try:
                self.store_id = bind(raw, self.blob_files, self.location, self._home)
            except BlobStorageError as exc:
                if not defer_blob_check:
                    raise
                log.warning("the blob storage %s cannot be reached (%s); serving what needs only the database "
                            "until it answers", self.blob_files.location, exc.message)
        except psycopg.Error as exc:
            self.close()
            raise store_error(exc, self.location) from exc
        except BaseException:
            self.close()
            raise
        finally:
            raw.close()
        self._pool = Pool(url, self.location, max_size=max_connections, wait=pool_wait)
        self._statements = _Statements(self._pool)
        self._backfill_subjects()

    @property
    def max_connections(self) -> int:
        """The most connections this process opens (not counting an apply lock's own)."""
        return self._pool.max_size if self._pool is not None else 0

    # -- connections and transactions -------------------------------------------
    def _conn(self) -> PgConnection | _Statements:
        bound: PgConnection | None = getattr(self._local, "conn", None)
        return bound if bound is not None else self._statements

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, application_name="reconciler")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL store {self.location}: {str(exc).strip()}",
                             hint="check the URL, that the server runs and that the database exists "
                                  "(createdb)") from exc

    @contextmanager
    def _bound(self) -> Iterator[PgConnection]:
        """A connection for this thread's transaction: the one it has already (a read
        inside a write), else one leased from the pool until the block ends."""
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        assert self._pool is not None, "the store is closed"
        with self._pool.lease() as conn:
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None

    def home(self) -> str:
        return self._home

    @contextmanager
    def identity_guard(self) -> Iterator[None]:
        """The migration lock (which ``bind`` takes too), held by a session this thread
        keeps for the block (its reads and binding writes use it too)."""
        with self._identity_lock, self._bound() as conn:
            conn.execute("SELECT pg_advisory_lock(?)", (MIGRATE_LOCK_KEY,))
            try:
                yield
            finally:
                if not conn.raw.closed:
                    conn.execute("SELECT pg_advisory_unlock(?)", (MIGRATE_LOCK_KEY,))

    @contextmanager
    def _write(self, *, check_lock: bool = True, binding: bool = False) -> Iterator[PgConnection]:
        if not binding:  # the store must own its blob storage (sql/identity.py)
            identity.gate(self)
        # the process's write lock first: a writer waiting for its turn holds no connection
        with self._write_lock, self._bound() as conn:
            try:
                with conn.raw.transaction():
                    # first: the row lock makes this the only writer until commit, and
                    # READ COMMITTED lets every later statement see the latest commits
                    # (a binding write takes it too, but leaves the generation as it is)
                    conn.execute("UPDATE meta SET value = value + ? WHERE key = 'generation'", (int(not binding),))
                    if check_lock:
                        self._check_lock(conn)
                    yield conn
            except psycopg.Error as exc:
                raise store_error(exc, self.location) from exc

    def _check_lock(self, conn: PgConnection) -> None:
        pids = list(self._lock_pids)
        if pids and (self._lock_lost.is_set()
                     or not conn.execute(HELD_BY, (APPLY_LOCK_KEY, pids)).fetchall()[0][0]):
            self._lock_lost.set()
            raise LockLost(
                f"the apply lock on the PostgreSQL store {self.location} was lost (the connection "
                "holding it ended, e.g. a database restart); refusing to write without it",
                hint="run the command again; what it committed before is kept")

    def _journal_write(self) -> AbstractContextManager[PgConnection]:
        """The journal entry of an apply that lost its lock is still closed (as
        ``interrupted``): it touches only that apply's own row."""
        return self._write(check_lock=False)

    @contextmanager
    def _read(self) -> Iterator[PgConnection]:
        with self._bound() as conn:
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
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.close()
        self._local = threading.local()

    # -- the apply lock -------------------------------------------------------------
    @contextmanager
    def _locked(self, timeout: float) -> Iterator[None]:
        self._lock_lost.clear()
        with advisory_lock(self.url, self.location, timeout, on_lost=self._lock_lost.set) as pid:
            self._lock_pids.append(pid)
            outer, self._lock_owner = self._lock_owner, threading.get_ident()
            try:
                yield
            finally:
                self._lock_owner = outer
                self._lock_pids.remove(pid)

    def backup_hold(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        return backup_lock(self.url, self.location, shared=True, timeout=timeout)

    def gc_barrier(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        return backup_lock(self.url, self.location, shared=False, timeout=timeout)

    def lock(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        """The apply lock (module ``lock``); while held, every write of this store checks
        it still is."""
        return self._locked(timeout)

    def lock_lost(self) -> bool:
        """Whether the apply lock this store holds was lost (its session ended)."""
        return bool(self._lock_pids) and self._lock_lost.is_set()

    # -- the blob storage's identity --------------------------------------------------
    def check_blob_storage(self, *, probe: bool = False) -> None:
        """Make sure the blob storage is this store's (the store-id binding); at once when
        it was checked already, unless ``probe`` asks to read the marker again now.
        ``BlobStorageError`` while it cannot be reached, ``StoreError`` when it belongs
        to another store."""
        if self.store_id is not None and not probe:
            return
        with self._bind_lock:
            if self.store_id is None or probe:
                assert self._pool is not None, "the store is closed"
                was, self.store_id = self.store_id, None
                with self._pool.lease() as conn:
                    try:
                        self.store_id = bind(conn.raw, self.blob_files, self.location, self._home)
                    except BlobStorageError:
                        self.store_id = was  # unreachable says nothing new about whose it is
                        raise
                    except psycopg.Error as exc:
                        self.store_id = was
                        raise store_error(exc, self.location) from exc
                if was is None:
                    log.warning("the blob storage %s answers and belongs to this store", self.blob_files.location)

    def ping(self) -> None:
        """One round trip, waiting at most a second for a connection."""
        assert self._pool is not None, "the store is closed"
        problem = self._pool.connect_error()
        if problem is not None:
            raise StoreError(f"the PostgreSQL store {self.location} does not answer: {problem}",
                             hint="check that the server runs and accepts connections")

    def manifest_raw(self, digest: Digest) -> tuple[str, bytes]:
        self.check_blob_storage()
        return super().manifest_raw(digest)

    def blob_open(self, digest: Digest) -> BinaryIO:
        self.check_blob_storage()
        return super().blob_open(digest)

    def blob_url(self, digest: Digest, *, expires: int) -> str | None:
        self.check_blob_storage()
        return super().blob_url(digest, expires=expires)
