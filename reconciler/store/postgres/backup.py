"""Backup and restore of the PostgreSQL store, driving PostgreSQL's own tools (the
folder format: ``store/backupdir.py``).

Backup, online: one REPEATABLE READ transaction exports its snapshot
(``pg_export_snapshot``); ``pg_dump --snapshot`` dumps exactly that state while the same
transaction lists the blobs and manifests it records; those are then copied out of the
blob storage (a folder or S3) into the backup folder, each verified, while the backup
hold keeps ``store gc`` away. Applies and servers go on meanwhile.

Restore: the content first, into the target blob storage (only what it lacks), then
``pg_restore --clean --if-exists --single-transaction`` (servers reading the database see
the old tables or the new ones), then in one transaction the generation, the blob
storage setting and the restored store's identity; last the storage's marker.

``pg_dump`` and ``pg_restore`` come from ``PATH`` or the newest
``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql-client``); they must be at least as
new as the server. Credentials as for the store: ``PGPASSWORD`` or ``~/.pgpass``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from reconciler.errors import InvalidInput, StoreError
from reconciler.model import Digest
from reconciler.store import backupdir
from reconciler.store.backupdir import BackupInfo, Rows, Snapshot
from reconciler.store.blobs import BlobStorage
from reconciler.store.postgres.binding import home_of
from reconciler.store.postgres.connection import PgConnection, redact
from reconciler.store.postgres.lock import advisory_lock
from reconciler.store.postgres.store import PostgresStore, content_storage
from reconciler.store.sql import identity

SNAPSHOT = "store.pgdump"


def tool(name: str) -> str:
    """``pg_dump`` / ``pg_restore``: on PATH, else the newest Debian server's bin folder."""
    found = shutil.which(name)
    if found:
        return found
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True,
                         key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0):
        if os.access(Path(bindir) / name, os.X_OK):
            return str(Path(bindir) / name)
    raise StoreError(f"{name} was not found: backing up or restoring a PostgreSQL store needs PostgreSQL's "
                     "client tools", hint="install them (Debian: apt-get install postgresql-client), as new as "
                                          "the server")


def _run(args: list[str], what: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        # the URL may carry a password: never echo the command line
        raise StoreError(f"{what} failed ({Path(args[0]).name} exited {proc.returncode}): "
                         f"{proc.stderr.strip()[-2000:] or 'no message'}",
                         hint="check the connection settings and that the client tools are as new as the server")


def _rows(conn: psycopg.Connection[Any]) -> Snapshot:
    blobs: Rows = [(Digest.parse(d), int(n)) for d, n in conn.execute("SELECT digest, size FROM blobs ORDER BY digest")]
    manifests: Rows = [(Digest.parse(d), int(n)) for d, n in
                       conn.execute("SELECT digest, size FROM manifests ORDER BY digest")]
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    store_id = meta.get("store_id")
    return Snapshot(blobs, manifests, int(store_id) if store_id is not None else None, int(meta.get("generation", 0)))


def backup(store: PostgresStore, folder: Path, *, timeout: float = 60.0) -> BackupInfo:
    """``store backup --to folder`` for a PostgreSQL store (see the module doc)."""
    folder = backupdir.check_folder(folder)
    tmp = folder / f".{SNAPSHOT}.tmp"
    tmp.unlink(missing_ok=True)
    with store.backup_hold(timeout):
        try:
            conn = psycopg.connect(store.url, autocommit=True, application_name="reconciler backup")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {store.location} for the backup: {str(exc).strip()}") from exc
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            exported = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
            snap = _rows(conn)
            # the dump sees exactly what the rows above saw
            _run([tool("pg_dump"), "--format=custom", f"--snapshot={exported}", f"--file={tmp}",
                  f"--dbname={store.url}"], f"pg_dump of {store.location}")
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            raise StoreError(f"the backup of {store.location} failed: {str(exc).strip()}") from exc
        finally:
            conn.close()
        copied = backupdir.copy_content(store.blob_files, store.manifest_files, folder, snap)
    info = BackupInfo("postgresql", SNAPSHOT, store.location, snap.store_id, snap.generation, len(snap.blobs),
                      len(snap.manifests), sum(n or 0 for _, n in snap.blobs), copied=copied)
    return backupdir.complete(folder, tmp, info, snap, _dump_readable)


def _dump_readable(path: Path) -> list[str]:
    _run([tool("pg_restore"), "--list", str(path)], f"reading back {path}")
    return []


def _target_state(conn: psycopg.Connection[Any]) -> tuple[bool, int | None, int]:
    """(holds a store with repositories, its store id if it is bound here and not itself a
    restored copy, its generation) of the target database."""
    if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:  # type: ignore[index]
        return False, None, 0
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    has_repos = conn.execute("SELECT to_regclass('repositories')").fetchone()[0] is not None and bool(  # type: ignore[index]
        conn.execute("SELECT 1 FROM repositories LIMIT 1").fetchone())
    home = conn.execute("SELECT value FROM settings WHERE key = 'store_home'").fetchone() \
        if conn.execute("SELECT to_regclass('settings')").fetchone()[0] is not None else None  # type: ignore[index]
    store_id = meta.get("store_id") if home is not None and home[0] == home_of(conn) else None
    return has_repos, int(store_id) if store_id is not None else None, int(meta.get("generation", 0))


def restore(folder: Path, url: str, *, blobs: str, force: bool, keep_identity: bool,
            timeout: float = 60.0) -> tuple[BackupInfo, PostgresStore]:
    """Put the backup in ``folder`` into the PostgreSQL database ``url`` and the blob
    storage ``blobs`` (see the module doc); return the opened store, which the caller
    checks. A database holding a store with repositories needs ``force``."""
    info = backupdir.read_info(folder)
    where = redact(url)
    if info.backend != "postgresql":
        raise InvalidInput(f"{folder} holds a backup of an embedded ({info.backend}) store, not of a PostgreSQL one",
                           hint="restore it into a store directory (--store PATH)")
    target_blobs, target_manifests = content_storage(str(Path(blobs).absolute()) if "://" not in blobs else blobs)
    try:
        try:
            conn = psycopg.connect(url, autocommit=True, application_name="reconciler restore")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {where}: {str(exc).strip()}",
                             hint="the target database must exist (createdb)") from exc
        try:
            has_repos, target_id, before = _target_state(conn)
            if has_repos and not force:
                raise InvalidInput(f"the database {where} already holds a store with repositories",
                                   hint="restore into an empty database, or add --force to replace that store")
            marker = identity.read_marker(target_blobs)
            identity.check_restore_target(target_blobs.location, internal=False, marker=marker, target_id=target_id,
                                          backup_id=info.store_id, keep_identity=keep_identity)
            with advisory_lock(url, where, timeout):
                blob_area, manifest_area = backupdir.folder_areas(folder)
                _copy_in(blob_area, manifest_area, target_blobs, target_manifests)
                _run([tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
                      "--single-transaction", "--exit-on-error", f"--dbname={url}", str(folder / SNAPSHOT)],
                     f"pg_restore into {where}")
                with conn.transaction():
                    pg = PgConnection(conn, where)
                    pg.execute("UPDATE meta SET value = GREATEST(value, ?) + 1 WHERE key = 'generation'", (before,))
                    pg.execute("DELETE FROM settings WHERE key = 'blobs'")
                    pg.execute("INSERT INTO settings (key, value) VALUES ('blobs', ?)", (target_blobs.location,))
                    store_id = identity.record_restored(pg, here=home_of(conn), backup_id=info.store_id,
                                                        marker=marker, keep_identity=keep_identity)
                identity.write_marker(target_blobs, store_id)
        except psycopg.Error as exc:
            raise StoreError(f"restoring into {where} failed: {str(exc).strip()}",
                             hint="run the restore again (with --force: the target may hold part of it)") from exc
        finally:
            conn.close()
    finally:
        target_blobs.close()
        target_manifests.close()
    return info, PostgresStore(url, blobs=blobs)


def _copy_in(blob_area: BlobStorage, manifest_area: BlobStorage, blobs: BlobStorage, manifests: BlobStorage) -> None:
    """The backup's files into the target storage (what it lacks), verified on the way."""
    for source, dest in ((blob_area, blobs), (manifest_area, manifests)):
        wanted: Rows = [(d, Path(path).stat().st_size) for d, path in source.all_digests()]
        backupdir.copy_files(source, dest, wanted)
