"""Binds a PostgreSQL store database to its blob storage, so a wrong ``--blobs`` is an
error instead of a data loss.

A database pointed at another store's blobs would see its own bytes "missing" and,
worse, ``store gc`` would delete every blob of the other store as unreferenced. So the
first open writes a random store id both beside the blobs (``<folder>/store-id``, or the
object ``<prefix>/store-id`` in S3) and into the database (``meta`` key ``store_id``);
every later open compares them. The marker is written (durably) before the database
row, under the migration advisory lock, so a crash in between leaves a marker that an
empty database adopts on the next open; a new database is refused a storage that
already holds blobs of another store.

The ``settings`` row ``blobs`` (as in the SQLite store) records where the blobs were
first put, for messages; it does not bind (the same folder may be mounted at different
paths on different machines), the store id does.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg

from reconciler.errors import StoreError
from reconciler.store.blobs import BlobStorage
from reconciler.store.postgres.migrations import MIGRATE_LOCK_KEY
from reconciler.store.sql.identity import MARKER, read_marker


def bind(conn: psycopg.Connection[Any], blobs: BlobStorage, where: str, home: str) -> int:
    """Check (or make) the binding of the database behind ``conn`` to ``blobs``; return
    the store id. ``home``: where this database lives (recorded on a first binding; a
    copied database is caught by the write gate, ``sql/identity.py``)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
        row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        in_db = int(row[0]) if row else None
        row = conn.execute("SELECT value FROM meta WHERE key = 'store_id_previous'").fetchone()
        previous = int(row[0]) if row else None
        in_storage = _read(blobs)
        # the previous id: a `store relocate` interrupted between rows and marker (the
        # write gate refuses until it is run again, which needs the store open)
        if in_db is not None and in_storage is not None and in_storage in (in_db, previous):
            return in_db
        if in_db is not None:
            found = f"store id {in_storage}" if in_storage is not None else "no store id"
            first = conn.execute("SELECT value FROM settings WHERE key = 'blobs'").fetchone()
            was = f" (first opened with --blobs {first[0]})" if first else ""
            raise StoreError(
                f"the blob storage {blobs.location} does not belong to the PostgreSQL store {where}: it has "
                f"{found}, the database expects {in_db}{was}",
                hint=f"point --blobs (RECONCILER_BLOBS) at this store's blobs (their {MARKER} holds {in_db}); "
                     "a wrong one would make every byte look missing and `store gc` delete another store's blobs")
        if any(conn.execute("SELECT 1 FROM blobs LIMIT 1")):
            raise StoreError(
                f"the PostgreSQL store {where} holds blobs but has no store id, and {blobs.location} has none",
                hint="point --blobs at the storage this store was written to")
        if in_storage is None:
            in_storage = secrets.randbits(62)
            blobs.write_marker(MARKER, f"{in_storage}\n")
        elif next(iter(blobs.all_digests()), None) is not None:
            # a marker from a crash between marker and row leaves no blobs behind it;
            # blobs mean the storage is another store's, which gc here would empty
            raise StoreError(
                f"the blob storage {blobs.location} belongs to another store (store id {in_storage}, and it "
                f"holds blobs), not to the new PostgreSQL store {where}",
                hint="give the new store its own folder or s3:// prefix; or, if this database replaces a lost "
                     "one, restore the database from its backup instead")
        conn.execute("INSERT INTO meta (key, value) VALUES ('store_id', %s)", (in_storage,))
        conn.execute("INSERT INTO settings (key, value) VALUES ('store_home', %s) ON CONFLICT DO NOTHING", (home,))
        conn.execute("INSERT INTO settings (key, value) VALUES ('blobs', %s) ON CONFLICT DO NOTHING",
                     (blobs.location,))
        return in_storage


def _read(blobs: BlobStorage) -> int | None:
    return read_marker(blobs)


def home_of(conn: psycopg.Connection[Any]) -> str:
    """``postgresql:<cluster system identifier>/<database oid>``: a dump restored into
    another cluster or another database of this one gets another home. The cluster part
    is ``?`` where the server does not let this user read it."""
    try:
        with conn.transaction():
            cluster = str(conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        cluster = "?"
    oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]  # type: ignore[index]
    return f"postgresql:{cluster}/{oid}"
