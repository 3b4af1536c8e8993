"""Backup and restore of the embedded store (the folder format: ``store/backupdir.py``).

Backup, online (servers and applies keep running):

1. the database through SQLite's online backup API: a consistent snapshot, taken while
   writers go on (never a file copy of a live WAL database);
2. the files that snapshot records, from wherever the blobs live (the store directory, a
   folder, S3), each verified on the way into the backup folder;
3. a verification pass: the snapshot's ``integrity_check``, every file re-hashed.

The backup folder is itself an embedded store directory (its blobs inside it): it can be
inspected with ``reconciler --store DIR repo list``.

Restore writes the snapshot into the target's ``store.db`` through the same backup API,
so a server reading the target at that moment sees the old store or the new one, never a
mix; the files are copied into the target's blob storage first (only what it lacks),
and the target is then bound to its blob storage with a new store identity
(``sql/identity.py``) unless the identity is kept.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.errors import InvalidInput, StoreError
from reconciler.model import Digest
from reconciler.store import backupdir
from reconciler.store.backupdir import BackupInfo, Rows, Snapshot
from reconciler.store.sql import identity
from reconciler.store.sqlite.store import SQLiteStore

SNAPSHOT = "store.db"


def content_rows(conn: sqlite3.Connection) -> tuple[Rows, Rows]:
    """(blobs, manifests) a database records, with sizes."""
    blobs: Rows = [(Digest.parse(d), int(n)) for d, n in conn.execute("SELECT digest, size FROM blobs ORDER BY digest")]
    manifests: Rows = [(Digest.parse(d), int(n)) for d, n in
                       conn.execute("SELECT digest, size FROM manifests ORDER BY digest")]
    return blobs, manifests


def _meta(conn: sqlite3.Connection, key: str) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else None


def _snapshot(store: SQLiteStore, target: Path) -> sqlite3.Connection:
    """A consistent copy of the store's database at ``target`` (open, for reading its rows)."""
    target.unlink(missing_ok=True)
    src = sqlite3.connect(store.root / "store.db", timeout=60)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        src.backup(dst)
    except sqlite3.Error as exc:
        dst.close()
        target.unlink(missing_ok=True)
        raise StoreError(f"cannot snapshot {store.root / 'store.db'}: {exc}") from exc
    finally:
        src.close()
    # a self-contained file, its blobs inside its folder
    dst.execute("PRAGMA journal_mode=DELETE")
    dst.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('blobs', '')")
    return dst


def backup(store: SQLiteStore, folder: Path, *, timeout: float = 60.0) -> BackupInfo:
    """``store backup --to folder`` for an embedded store (see the module doc)."""
    folder = backupdir.check_folder(folder)
    tmp = folder / f".{SNAPSHOT}.tmp"
    with store.backup_hold(timeout):
        conn = _snapshot(store, tmp)
        try:
            blobs, manifests = content_rows(conn)
            snap = Snapshot(blobs, manifests, _meta(conn, "store_id"), _meta(conn, "generation") or 0)
        finally:
            conn.close()
        copied = backupdir.copy_content(store.blob_files, store.manifest_files, folder, snap)
    info = BackupInfo("sqlite", SNAPSHOT, store.location, snap.store_id, snap.generation, len(blobs),
                      len(manifests), sum(n or 0 for _, n in blobs), copied=copied)
    return backupdir.complete(folder, tmp, info, snap, _integrity)


def _integrity(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()
    return [] if result == ["ok"] else [f"{path}: {text}" for text in result]


def restore(folder: Path, target: Path, *, blobs: str | None, force: bool, keep_identity: bool,
            timeout: float = 60.0) -> tuple[BackupInfo, SQLiteStore]:
    """Put the backup in ``folder`` into the store directory ``target`` (its blobs into
    ``blobs``, default the target's own storage); return the opened store, which the
    caller binds (``identity.rebind``) and checks. A target holding a store needs
    ``force`` (the restore replaces it in place, under its store lock)."""
    info = backupdir.read_info(folder)
    if info.backend != "sqlite":
        raise InvalidInput(f"{folder} holds a backup of a {info.backend} store, not of an embedded one",
                           hint="restore it into a PostgreSQL store (--store postgresql://...)")
    if (target / SNAPSHOT).exists() and not force:
        raise InvalidInput(f"{target} already holds a store",
                           hint="restore into a new folder, or add --force to replace that store in place")
    if not (target / SNAPSHOT).exists() and not backupdir.target_is_empty(target):
        raise InvalidInput(f"{target} is not empty and holds no store", hint="restore into an empty or new folder")
    snapshot = sqlite3.connect(folder / SNAPSHOT)
    try:
        wanted_blobs, wanted_manifests = content_rows(snapshot)
    finally:
        snapshot.close()
    store = SQLiteStore(target, blobs=blobs)  # creates an empty store (or opens the one to replace)
    try:
        blob_area, manifest_area = backupdir.folder_areas(folder)
        with store.lock(timeout):
            before = identity.state(store)
            identity.check_restore_target(store.blob_files.location, internal=store.blobs_internal,
                                          marker=before.marker,
                                          target_id=before.store_id if before.home == before.here else None,
                                          backup_id=info.store_id, keep_identity=keep_identity)
            backupdir.copy_files(blob_area, store.blob_files, wanted_blobs)
            backupdir.copy_files(manifest_area, store.manifest_files, wanted_manifests)
            store_id = _replace_database(folder / SNAPSHOT, target / SNAPSHOT, blob_setting=_setting_of(store),
                                         here=store.home(), backup_id=info.store_id, marker=before.marker,
                                         keep_identity=keep_identity)
            identity.write_marker(store.blob_files, store_id)
    finally:
        store.close()
    return info, SQLiteStore(target)


def _setting_of(store: SQLiteStore) -> str:
    """The ``blobs`` setting the restored database must carry: the target's storage."""
    return "" if store.blobs_internal else store.blob_files.location


def _replace_database(source: Path, target: Path, *, blob_setting: str, here: str, backup_id: int | None,
                      marker: int | None, keep_identity: bool) -> int:
    """The snapshot into the live ``target`` database in one step (SQLite's backup API:
    readers see the old or the new database), then in one transaction: the target's blob
    storage, a generation past both (a saved plan made before the restore is stale after
    it) and the restored store's identity (``identity.record_restored``), whose id it
    returns for the marker."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target, timeout=60, isolation_level=None)
    try:
        before = _meta(dst, "generation") or 0
        src.backup(dst)
        dst.execute("BEGIN IMMEDIATE")
        dst.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('blobs', ?)", (blob_setting,))
        dst.execute("UPDATE meta SET value = max(value, ?) + 1 WHERE key = 'generation'", (before,))
        store_id = identity.record_restored(dst, here=here, backup_id=backup_id, marker=marker,
                                            keep_identity=keep_identity)
        dst.execute("COMMIT")
        dst.execute("PRAGMA journal_mode=WAL")
        return store_id
    except sqlite3.Error as exc:
        raise StoreError(f"cannot restore {source} into {target}: {exc}",
                         hint="the target is unchanged if the copy did not finish; run the restore again") from exc
    finally:
        src.close()
        dst.close()

