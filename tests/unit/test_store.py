"""Store conformance suite: run against every backend by the ``store`` fixture."""

from __future__ import annotations

import io

import pytest

from reconciler.errors import (
    Conflict,
    DigestMismatch,
    InvalidInput,
    NameInvalid,
    NotFound,
    RepositoryNotFound,
    StoreError,
)
from reconciler.model import Digest
from reconciler.store.protocol import ContentSet, Origin, TagEntry
from tests.support.imagegen import build_image, build_multiarch, build_schema1, store_image


def content_of(*images) -> ContentSet:  # type: ignore[no-untyped-def]
    blobs, manifests, indexes = set(), set(), set()
    for img in images:
        for d in img.all_blobs():
            blobs.add(Digest.parse(d))
        for m in img.all_manifests():
            (indexes if m.is_index else manifests).add(m.digest)
    return ContentSet(frozenset(blobs), frozenset(manifests), frozenset(indexes))


def test_blob_put_verifies_and_is_idempotent(store) -> None:  # type: ignore[no-untyped-def]
    data = b"hello world" * 1000
    d = Digest.of(data)
    gen = store.generation()
    assert store.blob_put(io.BytesIO(data), d, size=len(data)) == len(data)
    assert store.blob_has(d) and store.blob_size(d) == len(data)
    assert store.generation() > gen
    with store.blob_open(d) as f:
        assert f.read() == data
    store.blob_put(iter([data[:10], data[10:]]), d)
    assert store.blobs_missing([d, Digest.of(b"other")]) == {Digest.of(b"other")}


def test_blob_mismatch_leaves_nothing(store) -> None:  # type: ignore[no-untyped-def]
    wrong = Digest.of(b"something else")
    with pytest.raises(DigestMismatch):
        store.blob_put(io.BytesIO(b"actual bytes"), wrong)
    assert not store.blob_has(wrong)
    assert store.blob_path(wrong) is None
    with pytest.raises(InvalidInput):
        store.blob_put(io.BytesIO(b"short"), Digest.of(b"short!"), size=6)
    assert list((store.root / "tmp").iterdir()) == []


def test_manifest_roundtrip_every_kind(store) -> None:  # type: ignore[no-untyped-def]
    for img in (build_image("a"), build_image("b", oci=True), build_multiarch("c"), build_schema1("d")):
        store_image(store, img)
        got = store.manifest_get(img.digest)
        assert got.raw == img.manifest.raw and got.digest == img.digest
        assert got.media_type == img.manifest.media_type


def test_repository_lifecycle_and_versions(store) -> None:  # type: ignore[no-untyped-def]
    repo = store.repository_create("web", feed="https://r.example", upstream_name="lib/web")
    assert repo.latest_version == 0 and repo.feed == "https://r.example"
    with pytest.raises(Conflict):
        store.repository_create("web")
    img, multi = build_image("x"), build_multiarch("y")
    store_image(store, img)
    store_image(store, multi)
    content = content_of(img, multi)
    tags = {"latest": TagEntry(img.digest, Origin.SYNC), "multi": TagEntry(multi.digest, Origin.UPLOAD)}
    v1 = store.version_commit("web", base=0, content=content, tags=tags, operation="sync")
    assert v1 is not None and v1.number == 1
    assert v1.summary.added == {"blobs": len(content.blobs), "manifests": 4, "indexes": 1, "tags": 2}
    # nothing changed: no new version
    assert store.version_commit("web", base=1, content=content, tags=tags, operation="sync") is None
    # move a tag, drop the index
    only_img = content_of(img)
    v2 = store.version_commit("web", base=1, content=only_img, tags={"latest": TagEntry(img.digest, Origin.PIN)},
                              operation="remove")
    assert v2 is not None and v2.number == 2
    assert v2.summary.removed["indexes"] == 1 and v2.summary.removed["tags"] == 2  # origin change = re-tag
    # old versions stay readable and immutable
    assert set(store.version_get("web", 1).tags) == {"latest", "multi"}
    assert store.version_get("web", 1).content == content
    assert store.version_get("web").tags == {"latest": TagEntry(img.digest, Origin.PIN)}
    assert [v.number for v in store.version_list("web")] == [0, 1, 2]
    with pytest.raises(Conflict):  # stale base
        store.version_commit("web", base=1, content=content, tags={}, operation="x")
    with pytest.raises(NotFound):
        store.version_get("web", 9)


@pytest.mark.parametrize("breakage", ["missing-blob", "missing-child", "dangling-tag", "unknown-manifest"])
def test_commit_refuses_inconsistent_versions(store, breakage: str) -> None:  # type: ignore[no-untyped-def]
    store.repository_create("r")
    multi = build_multiarch("m")
    store_image(store, multi)
    full = content_of(multi)
    tags = {"t": TagEntry(multi.digest)}
    child = multi.children[0]
    if breakage == "missing-blob":
        content = ContentSet(full.blobs - {next(iter(Digest.parse(d) for d in child.blobs))}, full.manifests, full.indexes)
    elif breakage == "missing-child":
        content = ContentSet(full.blobs, full.manifests - {child.digest}, full.indexes)
    elif breakage == "dangling-tag":
        content, tags = full, {"t": TagEntry(Digest.of(b"nothing"))}
    else:
        content = ContentSet(full.blobs, full.manifests | {Digest.of(b"unknown")}, full.indexes)
    gen = store.generation()
    with pytest.raises(StoreError, match="inconsistent"):
        store.version_commit("r", base=0, content=content, tags=tags, operation="x")
    assert store.repository_get("r").latest_version == 0
    assert store.generation() == gen


def test_publish_unique_names_and_rollback(store) -> None:  # type: ignore[no-untyped-def]
    for rid in ("a", "b"):
        store.repository_create(rid)
    repo = store.publish("a", name="team/app", version=0, protected=True)
    assert (repo.publish_name, repo.published_version, repo.protected) == ("team/app", 0, True)
    assert store.repository_by_publish_name("team/app").id == "a"
    with pytest.raises(Conflict, match="already used"):
        store.publish("b", name="team/app", version=0, protected=False)
    with pytest.raises(NameInvalid):
        store.publish("b", name="Team/App", version=0, protected=False)
    with pytest.raises(NotFound):
        store.publish("b", name="other", version=5, protected=False)
    assert store.unpublish("a").published_version is None
    with pytest.raises(RepositoryNotFound):
        store.unpublish("zzz")


def test_check_and_gc(store) -> None:  # type: ignore[no-untyped-def]
    store.repository_create("r")
    keep, drop = build_image("keep"), build_image("drop")
    store_image(store, keep)
    store_image(store, drop)
    store.version_commit("r", base=0, content=content_of(keep), tags={}, operation="x")
    report = store.check()
    assert report.ok and report.blobs_checked == len(keep.blobs) + len(drop.blobs)
    gc = store.gc()
    assert gc.manifests_removed == 1 and gc.blobs_removed == len(drop.blobs)
    assert store.manifest_has(keep.digest) and not store.manifest_has(drop.digest)
    assert store.check().ok


def test_check_reports_corrupt_and_missing(store) -> None:  # type: ignore[no-untyped-def]
    store.repository_create("r")
    img = build_image("c")
    store_image(store, img)
    store.version_commit("r", base=0, content=content_of(img), tags={}, operation="x")
    layer = img.manifest.layers[0].digest
    path = store.blob_path(layer)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    store.blob_path(img.manifest.config.digest).unlink()
    report = store.check()
    subjects = {(p.kind, p.subject) for p in report.problems}
    assert ("corrupt", str(layer)) in subjects
    assert ("missing", str(img.manifest.config.digest)) in subjects


def test_repository_delete(store) -> None:  # type: ignore[no-untyped-def]
    store.repository_create("gone")
    store.repository_delete("gone")
    assert store.repository_find("gone") is None
    with pytest.raises(RepositoryNotFound):
        store.version_get("gone")


def test_journal(store) -> None:  # type: ignore[no-untyped-def]
    jid = store.journal_start(command="apply", plan_digest="sha256:x", details={"n": 1})
    store.journal_finish(jid, result="ok", details={"n": 2})
    (entry,) = store.journal_list()
    assert entry.result == "ok" and entry.finished and entry.details == {"n": 2}
