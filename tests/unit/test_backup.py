"""Backup and restore in one process (the CLI and the servers: tests/integration/
test_backup_restore.py): gc waits for a running backup, a backup is verified and
incremental, a restore refuses what it must not overwrite."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reconciler import api
from reconciler.errors import InvalidInput, LockTimeout, StoreCorrupt
from reconciler.store import recovery
from reconciler.store.blobs import LocalBlobs
from reconciler.store.protocol import Store
from reconciler.store.sqlite import SQLiteStore
from tests.support.backends import sql_backend
from tests.support.imagegen import build_image
from tests.support.serving import commit_tags


def test_gc_waits_for_a_running_backup(store: Store) -> None:
    """gc is the one thing that deletes bytes: while a backup copies the files its
    snapshot names, gc must not run (applies may)."""
    commit_tags(store, "r", {"v1": build_image("gc-waits")})
    held, done = threading.Event(), threading.Event()

    def backup() -> None:
        with sql_backend(store).backup_hold():
            held.set()
            done.wait(30)

    t = threading.Thread(target=backup)
    t.start()
    try:
        assert held.wait(30)
        with pytest.raises(LockTimeout, match="a backup of it is running"):
            store.gc(lock_timeout=0.3)
        commit_tags(store, "r", {"v2": build_image("gc-waits-2")})  # writes go on meanwhile
    finally:
        done.set()
        t.join()
    store.gc()


def test_a_backup_is_incremental_verified_and_a_store_directory(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s")
    try:
        commit_tags(store, "r", {"v1": build_image("inc-1")})
        first = recovery.backup_store(store, tmp_path / "b")
        commit_tags(store, "r", {"v1": build_image("inc-1"), "v2": build_image("inc-2")})
        second = recovery.backup_store(store, tmp_path / "b")
        assert second.copied == len(build_image("inc-2").blobs) + 1 and first.copied > 0
        # a file damaged in the backup is found by the verification pass of the next one
        digest, _ = next(iter(LocalBlobs(tmp_path / "b", "blobs").all_digests()))
        path = LocalBlobs(tmp_path / "b", "blobs").path(digest)
        path.write_bytes(b"x" + path.read_bytes()[1:])
        with pytest.raises(StoreCorrupt, match="does not hash to its digest"):
            recovery.backup_store(store, tmp_path / "b")
        assert not (tmp_path / "b" / "backup.json").exists()  # marked incomplete
    finally:
        store.close()
    copy = api.open_store(str(tmp_path / "b"), create=False)  # the folder is an embedded store
    try:
        assert copy.version_get("r").tags.keys() == {"v1", "v2"}
    finally:
        copy.close()


def test_restore_refuses_a_folder_that_is_not_a_store_or_a_backup(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s")
    try:
        commit_tags(store, "r", {"v1": build_image("refuse")})
        recovery.backup_store(store, tmp_path / "b")
    finally:
        store.close()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="is not empty and holds no store"):
        recovery.restore_store(tmp_path / "b", str(tmp_path / "busy"))
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]
    with pytest.raises(InvalidInput, match="is not a complete reconciler backup"):
        recovery.restore_store(tmp_path / "busy", str(tmp_path / "new"))
    with pytest.raises(InvalidInput, match="not empty and holds no reconciler backup"):
        recovery.backup_store(SQLiteStore(tmp_path / "s"), tmp_path / "busy")
