"""Subject links in the store (both backends): recorded with the manifest, listed per
repository version, filtered and paged, gone with the manifest; a store made before
migration 0009 gets the subjects of what it holds recorded when it is next opened."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler.model import Digest
from reconciler.store.protocol import Store
from reconciler.store.sql import referrers as sql_referrers
from reconciler.store.sql.connection import Connection
from reconciler.store.sqlite import SQLiteStore
from tests.support import supplychain as sc
from tests.support.backends import sql_backend
from tests.support.imagegen import Image, build_image
from tests.support.serving import commit_tags


def _commit(store: Store, repo: str, images: list[Image], tags: dict[str, Image]) -> int:
    return commit_tags(store, repo, tags, extra=tuple(images))


def _signed() -> tuple[Image, Image, Image, Image]:
    image = build_image("app", oci=True)
    sbom = sc.oci_referrer(image, sc.SPDX, b'{"spdxVersion":"SPDX-2.3"}', annotations={"k": "v"})
    bundle = sc.oci_referrer(image, sc.SIGSTORE_BUNDLE, b'{"bundle":1}')
    sig_of_sbom = sc.oci_referrer(sbom, sc.SIGSTORE_BUNDLE, b'{"bundle":2}')
    return image, sbom, bundle, sig_of_sbom


def test_referrers_are_listed_per_version_filtered_and_paged(store: Store) -> None:
    image, sbom, bundle, sig_of_sbom = _signed()
    v1 = _commit(store, "app", [image, sbom], {"1.0": image})
    v2 = _commit(store, "app", [image, sbom, bundle, sig_of_sbom], {"1.0": image})
    got = store.version_referrers("app", v1, image.digest)
    assert [r.digest for r in got] == [sbom.digest]
    assert got[0].artifact_type == sc.SPDX and got[0].annotations == {"k": "v"}
    assert got[0].size == len(sbom.manifest.raw) and got[0].media_type == sbom.manifest.media_type
    both = sorted([sbom.digest, bundle.digest], key=str)
    assert [r.digest for r in store.version_referrers("app", v2, image.digest)] == both
    # a signature of the SBOM is the SBOM's referrer, not the image's
    assert [r.digest for r in store.version_referrers("app", v2, sbom.digest)] == [sig_of_sbom.digest]
    only = store.version_referrers("app", v2, image.digest, artifact_type=sc.SIGSTORE_BUNDLE)
    assert [r.digest for r in only] == [bundle.digest]
    page1 = store.version_referrers("app", v2, image.digest, limit=1)
    page2 = store.version_referrers("app", v2, image.digest, after=page1[0].digest, limit=1)
    assert [r.digest for r in page1 + page2] == both
    assert store.version_referrers("app", v2, Digest.of(b"unknown")) == []
    # another repository holding only the image sees none of them
    _commit(store, "other", [image], {"x": image})
    assert store.version_referrers("other", 1, image.digest) == []


def test_subject_rows_go_with_the_manifest(store: Store) -> None:
    image, sbom, _, _ = _signed()
    _commit(store, "app", [image, sbom], {"1.0": image})
    _commit(store, "app", [image], {"1.0": image})
    store.repository_delete("app")
    store.gc()
    # either backend's connection speaks the shared SQL
    assert sql_backend(store)._conn().execute("SELECT count(*) FROM manifest_subjects").fetchone()[0] == 0
    store.repository_create("again")
    _commit(store, "again", [image, sbom], {"1.0": image})
    assert [r.digest for r in store.version_referrers("again", 1, image.digest)] == [sbom.digest]


def _as_before_0009(root: Path) -> None:
    """Make the store at ``root`` look as an older release left it: no subject table."""
    import sqlite3
    conn = sqlite3.connect(root / "store.db")
    conn.executescript("DROP TABLE manifest_subjects; DELETE FROM migrations WHERE name = '0009_manifest_subjects';")
    conn.close()


def test_an_older_store_gets_its_subjects_recorded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image, sbom, bundle, _ = _signed()
    store = SQLiteStore(tmp_path / "s")
    _commit(store, "app", [image, sbom, bundle], {"1.0": image})
    store.close()
    _as_before_0009(tmp_path / "s")

    # a crash in the backfill's transaction records nothing and keeps the mark
    def boom(conn: Connection, rows: Sequence[tuple[str, str, str | None, str | None]]) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(sql_referrers, "record", boom)
    with pytest.raises(KeyboardInterrupt):
        SQLiteStore(tmp_path / "s")
    monkeypatch.undo()

    store = SQLiteStore(tmp_path / "s")
    try:
        got = store.version_referrers("app", 1, image.digest)
        assert sorted(r.digest for r in got) == sorted([sbom.digest, bundle.digest], key=str)
        assert not sql_referrers.backfill_pending(store._conn())
        assert store.check().ok
    finally:
        store.close()


def test_an_older_postgres_store_gets_its_subjects_recorded(postgres_url: str, tmp_path: Path) -> None:
    from reconciler.store.postgres import PostgresStore
    image, sbom, _, _ = _signed()
    store = PostgresStore(postgres_url, blobs=tmp_path / "blobs")
    try:
        _commit(store, "app", [image, sbom], {"1.0": image})
        with store._write(binding=True) as conn:
            conn.execute("DROP TABLE manifest_subjects")
            conn.execute("DELETE FROM migrations WHERE name = '0009_manifest_subjects'")
    finally:
        store.close()
    store = PostgresStore(postgres_url, blobs=tmp_path / "blobs")
    try:
        assert [r.digest for r in store.version_referrers("app", 1, image.digest)] == [sbom.digest]
    finally:
        store.close()


def test_artifacts_upload_from_an_oci_layout_and_copy_like_images(store: Store, tmp_path: Path) -> None:
    from reconciler.apply.content_commands import copy_command as copy
    from reconciler.apply.content_commands import upload_command as upload
    from tests.support.archives import oci_layout_dir

    image, sbom, bundle, _ = _signed()
    layout = oci_layout_dir(tmp_path / "layout", [(image, "1.0"), (sbom, None), (bundle, "bundle")])
    upload(store, "up", layout)
    held = store.version_get("up")
    assert {sbom.digest, bundle.digest, image.digest} <= held.content.manifests
    assert sorted(r.digest for r in store.version_referrers("up", held.number, image.digest)) == \
        sorted([sbom.digest, bundle.digest], key=str)
    # the empty config and the artifact's layer are blobs of the version, checked like any
    assert {Digest.parse(d) for d in sbom.blobs} <= held.content.blobs
    assert store.check().ok
    copy(store, source="up", target="down", kind="manifest", names=[str(sbom.digest)])
    down = store.version_get("down")
    assert [r.digest for r in store.version_referrers("down", down.number, image.digest)] == [sbom.digest]
