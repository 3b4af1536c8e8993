"""Store identity: a store is bound to its blob storage, and a copy never writes to or
collects another store's bytes (reconciler/store/sql/identity.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.errors import StoreIdentityError
from reconciler.store.blobs.protocol import BlobStorage
from reconciler.store.sql import identity
from reconciler.store.sql.identity import State, Step, decide
from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import build_image, store_image
from tests.support.serving import commit_tags

HERE, THERE = "sqlite:/srv/b", "sqlite:/srv/a"


@pytest.mark.parametrize(("state", "step"), [
    (State("s", "b", HERE, internal=True), Step.BIND),
    (State("s", "b", HERE, internal=False), Step.BIND),
    (State("s", "b", HERE, internal=True, marker=7), Step.BIND),
    (State("s", "b", HERE, internal=False, store_id=7, home=None, marker=7), Step.ADOPT_HOME),
    (State("s", "b", HERE, internal=False, store_id=7, home=HERE, marker=7), Step.OK),
    (State("s", "b", HERE, internal=False, store_id=7, home=HERE, marker=None), Step.WRITE_MARKER),
    (State("s", "b", HERE, internal=True, store_id=7, home=HERE, marker=8), Step.WRITE_MARKER),
    (State("s", "b", HERE, internal=True, store_id=7, home=THERE, marker=7), Step.ROTATE),
], ids=["new-internal", "new-external", "new-internal-stale-marker", "no-home-yet", "bound", "marker-lost",
        "own-folder-stale-marker", "copied-directory"])
def test_what_the_gate_does(state: State, step: Step) -> None:
    assert decide(state) is step


@pytest.mark.parametrize(("state", "words"), [
    (State("s", "b", HERE, internal=False, marker=9), "belongs to another store"),
    (State("s", "b", HERE, internal=False, store_id=7, home=THERE, marker=7), "is a copy of the store at /srv/a"),
    (State("s", "b", HERE, internal=False, store_id=7, home=HERE, marker=9), "belongs to another store"),
    (State("s", "b", HERE, internal=False, store_id=7, previous_id=9, home=HERE, marker=9), "was interrupted"),
], ids=["unbound-store-foreign-storage", "copy-with-external-blobs", "claimed-by-another", "interrupted-relocate"])
def test_what_the_gate_refuses(state: State, words: str) -> None:
    with pytest.raises(StoreIdentityError, match=words) as err:
        decide(state)
    assert err.value.hint and "store relocate" in err.value.hint


def _filled(root: Path, blobs: Path | None) -> SQLiteStore:
    store = SQLiteStore(root, blobs=str(blobs) if blobs else None)
    commit_tags(store, "keep", {"v1": build_image("keep")})
    commit_tags(store, "drop", {"v1": build_image("drop")})
    return store


def test_gc_on_a_copy_never_deletes_what_the_original_needs(tmp_path: Path) -> None:
    """The issue's clone-gc case: a copied store with an external blob folder deletes a
    repository and runs gc; the original must keep every byte."""
    original = _filled(tmp_path / "a", tmp_path / "blobs")
    original.close()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copy = SQLiteStore(tmp_path / "b")
    try:
        assert {r.id for r in copy.repository_list()} == {"keep", "drop"}  # reads work
        with pytest.raises(StoreIdentityError, match="is a copy of the store at .*/a"):
            copy.repository_delete("drop")
        with pytest.raises(StoreIdentityError, match="is a copy"):
            copy.gc()
        with pytest.raises(StoreIdentityError):
            store_image(copy, build_image("new"))  # no bytes into the other store's folder either
        assert [p.kind for p in copy.check().problems] == ["identity"]
    finally:
        copy.close()
    original = SQLiteStore(tmp_path / "a")
    try:
        report = original.check()
        dropped = len(build_image("drop").all_blobs())
        assert report.ok and report.blobs_checked == len(build_image("keep").all_blobs()) + dropped
        original.repository_delete("drop")  # the original still writes and collects
        assert original.gc().blobs_removed == dropped
    finally:
        original.close()


def test_a_copied_directory_with_its_own_blobs_takes_a_new_identity(tmp_path: Path) -> None:
    original = _filled(tmp_path / "a", None)
    first = identity.state(original)
    original.close()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copy = SQLiteStore(tmp_path / "b")
    try:
        copy.repository_delete("drop")
        copy.gc()
        now = identity.state(copy)
        assert now.store_id not in (None, first.store_id) and now.marker == now.store_id
        assert now.home == copy.home()
    finally:
        copy.close()
    original = SQLiteStore(tmp_path / "a")
    try:
        assert original.check().ok and identity.state(original).store_id == first.store_id
    finally:
        original.close()


def test_relocate_follows_a_moved_blob_folder(tmp_path: Path) -> None:
    store = _filled(tmp_path / "a", tmp_path / "blobs")
    store.close()
    shutil.move(tmp_path / "blobs", tmp_path / "moved")
    store = SQLiteStore(tmp_path / "a")
    try:
        with store.lock():
            done = identity.rebind(store, identity_blobs(tmp_path / "moved"), target_internal=False)
        assert done.store_id == done.old_id  # the same store, its blobs elsewhere
    finally:
        store.close()
    store = SQLiteStore(tmp_path / "a")
    try:
        assert store.blob_files.location == str(tmp_path / "moved")
        assert store.check().ok
        commit_tags(store, "more", {"v1": build_image("more")})
    finally:
        store.close()


def test_relocate_refuses_another_stores_blobs_and_a_folder_without_them(tmp_path: Path) -> None:
    a = _filled(tmp_path / "a", tmp_path / "blobs-a")
    b = _filled(tmp_path / "b", tmp_path / "blobs-b")
    try:
        with a.lock(), pytest.raises(StoreIdentityError, match="belongs to another store"):
            identity.rebind(a, identity_blobs(tmp_path / "blobs-b"), target_internal=False)
        with a.lock(), pytest.raises(StoreIdentityError, match="lacks 6 of the store's 6 blobs"):
            identity.rebind(a, identity_blobs(tmp_path / "empty"), target_internal=False)
        assert a.check().ok and b.check().ok
    finally:
        a.close()
        b.close()


def test_a_moved_store_claims_its_blobs_only_when_the_original_is_gone(tmp_path: Path) -> None:
    a = _filled(tmp_path / "a", tmp_path / "blobs")
    old = identity.state(a).store_id
    a.close()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = SQLiteStore(tmp_path / "b")
    try:
        with b.lock(), pytest.raises(StoreIdentityError, match="may still use the blob storage"):
            identity.rebind(b, b.blob_files, target_internal=False)
        shutil.rmtree(tmp_path / "a")  # now it was a move
        with b.lock():
            done = identity.rebind(b, b.blob_files, target_internal=False)
        assert done.claimed_from == f"sqlite:{tmp_path / 'a'}" and done.store_id != old
        commit_tags(b, "more", {"v1": build_image("more")})
        assert b.check().ok
    finally:
        b.close()


def identity_blobs(path: Path) -> BlobStorage:
    from reconciler.store.blobs import open_blobs

    return open_blobs(path)
