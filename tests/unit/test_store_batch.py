"""Content batches: blobs and manifests made durable together and recorded in one
transaction; nothing staged is visible before ``commit``; a failure leaves nothing. On
every backend (the ``store`` fixture): the batch is the shared SQL stores' code."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from reconciler.errors import DigestMismatch, InvalidInput
from reconciler.model import Digest
from reconciler.store.protocol import Store
from tests.support.backends import local_root
from tests.support.imagegen import build_multiarch


def test_staged_content_is_invisible_until_commit_then_known_in_one_transaction(store: Store, tmp_path: Path) -> None:
    img = build_multiarch("app")
    try:
        generation = store.generation()
        with store.content_batch() as batch:
            for d, data in img.all_blobs().items():
                assert batch.blob_put(io.BytesIO(data), Digest.parse(d), size=len(data)) == len(data)
            batch.manifests_put(list(img.all_manifests()))
            digests = [Digest.parse(d) for d in img.all_blobs()]
            assert all(batch.blob_has(d) for d in digests)
            assert store.blobs_missing(digests) == set(digests) and not store.manifest_has(img.digest)
            assert store.generation() == generation
            batch.commit()
        assert not store.blobs_missing(digests)
        assert all(store.manifest_has(m.digest) for m in img.all_manifests())
        assert store.generation() == generation + 1  # every row in one transaction
        assert store.manifest_refs([img.digest])[img.digest].children == tuple(c.digest for c in img.children)
        assert list((local_root(store) / "tmp").iterdir()) == []
        assert store.check().ok
    finally:
        store.close()


def test_an_uncommitted_batch_leaves_no_file_and_no_row(store: Store, tmp_path: Path) -> None:
    data = b"layer" * 1000
    d = Digest.of(data)
    try:
        with store.content_batch() as batch:
            batch.blob_put(io.BytesIO(data), d, size=len(data))
        assert not store.blob_has(d) and store.blob_path(d) is None
        assert list((local_root(store) / "tmp").iterdir()) == []
    finally:
        store.close()


@pytest.mark.parametrize(("body", "size", "error"), [
    (b"other bytes", None, DigestMismatch),
    (b"layer" * 1000 + b"x", 5000, InvalidInput),
    (b"layer" * 999, 5000, InvalidInput),
], ids=["wrong-digest", "too-long", "cut-short"])
def test_a_bad_blob_is_refused_and_leaves_nothing(store: Store, tmp_path: Path, body: bytes, size: int | None,
                                                   error: type[Exception]) -> None:
    d = Digest.of(b"layer" * 1000)
    try:
        with store.content_batch() as batch:
            with pytest.raises(error):
                batch.blob_put(io.BytesIO(body), d, size=size)
            assert not batch.blob_has(d)
            batch.commit()
        assert not store.blob_has(d)
        assert list((local_root(store) / "tmp").iterdir()) == []
    finally:
        store.close()


def test_a_disk_failure_at_commit_is_a_store_error_and_records_nothing(store: Store, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.errors import StoreError

    def full(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    data = b"layer" * 1000
    d = Digest.of(data)
    try:
        with store.content_batch() as batch:
            batch.blob_put(io.BytesIO(data), d, size=len(data))
            monkeypatch.setattr("reconciler.store.sql.batch.os.replace", full)
            with pytest.raises(StoreError, match="No space left on device") as raised:
                batch.commit()
            assert raised.value.hint and "free space" in raised.value.hint
        assert not store.blob_has(d)
        assert list((local_root(store) / "tmp").iterdir()) == []
    finally:
        store.close()
