"""``store backup``, ``store restore`` and ``store relocate``: the backend-specific
procedures (``sqlite/backup.py``, ``postgres/backup.py``, ``sql/identity.py``) chosen
for a store or a store location, with the verification that ends a restore."""

from __future__ import annotations

from pathlib import Path

from reconciler.errors import InvalidInput, StoreCorrupt
from reconciler.model.reports import CheckReport
from reconciler.store.backupdir import BackupInfo
from reconciler.store.protocol import Store
from reconciler.store.sql.identity import Rebound

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def backup_store(store: Store, folder: str | Path, *, timeout: float = 60.0) -> BackupInfo:
    """``reconciler store backup --to DIR``: an online, consistent, verified backup of
    ``store`` into ``folder`` (store/backupdir.py), while servers and applies go on."""
    from reconciler.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        from reconciler.store.sqlite.backup import backup

        return backup(store, Path(folder), timeout=timeout)
    from reconciler.store.postgres.backup import backup as pg_backup
    from reconciler.store.postgres.store import PostgresStore

    assert isinstance(store, PostgresStore)
    return pg_backup(store, Path(folder), timeout=timeout)


def restore_store(folder: str | Path, location: str, blobs: str | None = None, *,
                  force: bool = False, keep_identity: bool = False,
                  timeout: float = 60.0) -> tuple[BackupInfo, CheckReport]:
    """``reconciler store restore --from DIR``: the backup in ``folder`` into the store at
    ``location`` (its blobs into ``blobs``), with a new store identity unless
    ``keep_identity``, then verified (``StoreCorrupt`` naming what is wrong)."""
    restored: Store
    if location.startswith(POSTGRES_SCHEMES):
        if not blobs:
            raise InvalidInput("restoring a PostgreSQL store needs --blobs: where its blob and manifest bytes go",
                               hint="e.g. --blobs s3://images/restored (its own, for a drill)")
        from reconciler.store.postgres.backup import restore as pg_restore

        info, restored = pg_restore(Path(folder), location, blobs=blobs, force=force, keep_identity=keep_identity,
                                    timeout=timeout)
    else:
        from reconciler.store.sqlite.backup import restore

        info, restored = restore(Path(folder), Path(location), blobs=blobs, force=force, keep_identity=keep_identity,
                                 timeout=timeout)
    try:
        report = restored.check()
    finally:
        restored.close()
    if not report.ok:
        shown = "; ".join(f"{p.kind}: {p.subject}: {p.message}" for p in report.problems[:5])
        raise StoreCorrupt(f"the restored store at {location} has {len(report.problems)} problem(s): {shown}",
                           hint="run `reconciler store check` for the full list; restore again from an intact backup")
    return info, report


def relocate_store(store: Store, blobs: str | None = None, *, force: bool = False,
                   lock_timeout: float = 60.0) -> Rebound:
    """``reconciler store relocate [--blobs DIR]``: bind the store to its blobs where they
    are now (a moved blob folder), or claim them for a moved store (store/sql/identity.py)."""
    from reconciler.store.blobs import open_blobs
    from reconciler.store.sql import identity
    from reconciler.store.sql.base import SQLStore
    from reconciler.store.sqlite import SQLiteStore

    assert isinstance(store, SQLStore)
    if blobs is not None and not isinstance(store, SQLiteStore):
        raise InvalidInput("a PostgreSQL store takes its blob storage from the global --blobs",
                           hint="reconciler --store postgresql://... --blobs NEW store relocate")
    internal = store.blobs_internal
    target = store.blob_files
    if blobs is not None and isinstance(store, SQLiteStore):
        internal = Path(blobs).absolute() == store.root
        target = open_blobs(store.root if internal else blobs)
    with store.lock(lock_timeout):
        return identity.rebind(store, target, target_internal=internal, force=force)
