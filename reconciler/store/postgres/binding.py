"""Binds a PostgreSQL store database to its blobs folder, so a wrong ``--blobs`` is an
error instead of a data loss.

A database pointed at another store's folder would see its own bytes "missing" and,
worse, ``store gc`` would delete every file of the other store as unreferenced. So the
first open writes a random store id both into the folder (``<blobs>/store-id``) and into
the database (``meta`` key ``store_id``); every later open compares them. The folder's
file is written (durably) before the database row, under the migration advisory lock, so
a crash in between leaves a folder whose id an empty database adopts on the next open.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from reconciler.errors import StoreError
from reconciler.store.postgres.migrations import MIGRATE_LOCK_KEY

MARKER = "store-id"


def bind(conn: psycopg.Connection[Any], root: Path, where: str) -> int:
    """Check (or make) the binding of the database behind ``conn`` to folder ``root``;
    return the store id."""
    marker = root / MARKER
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
        row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        in_db = int(row[0]) if row else None
        in_folder = _read(marker)
        if in_db is not None and in_folder == in_db:
            return in_db
        if in_db is not None:
            found = f"store id {in_folder}" if in_folder is not None else "no store id"
            raise StoreError(
                f"the blobs folder {root} does not belong to the PostgreSQL store {where}: it has {found}, "
                f"the database expects {in_db}",
                hint=f"point --blobs (RECONCILER_BLOBS) at this store's folder (its {MARKER} file holds {in_db}); "
                     "a wrong folder would make every byte look missing and `store gc` delete another store's files")
        if in_folder is None:
            if any(conn.execute("SELECT 1 FROM blobs LIMIT 1")):
                raise StoreError(
                    f"the PostgreSQL store {where} holds blobs but has no store id, and the folder {root} has none",
                    hint="point --blobs at the folder this store was written to")
            in_folder = secrets.randbits(62)
            _write(marker, in_folder)
        conn.execute("INSERT INTO meta (key, value) VALUES ('store_id', %s)", (in_folder,))
        return in_folder


def _read(marker: Path) -> int | None:
    try:
        text = marker.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {marker}: {exc}") from exc
    try:
        return int(text)
    except ValueError:
        raise StoreError(f"{marker} does not hold a store id ({text[:40]!r})",
                         hint="it is written by reconciler; restore it from a backup of the folder") from None


def _write(marker: Path, store_id: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix="store-id-", dir=marker.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{store_id}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, marker)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(marker.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
