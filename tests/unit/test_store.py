"""Store conformance suite: run against every backend by the ``store`` fixture."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import (
    Conflict,
    DigestMismatch,
    InvalidInput,
    LockTimeout,
    NameInvalid,
    NotFound,
    RepositoryNotFound,
    StoreError,
)
from reconciler.model import Digest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.model.descriptor import Descriptor
from reconciler.model.repository import Repository
from reconciler.store.protocol import Store
from tests.support.backends import local_root
from tests.support.imagegen import Image, build_image, build_multiarch, build_schema1, store_image
from tests.support.narrow import narrow


def content_of(*images: Image) -> ContentSet:
    blobs: set[Digest] = set()
    manifests: set[Digest] = set()
    indexes: set[Digest] = set()
    for img in images:
        for d in img.all_blobs():
            blobs.add(Digest.parse(d))
        for m in img.all_manifests():
            (indexes if m.is_index else manifests).add(m.digest)
    return ContentSet(frozenset(blobs), frozenset(manifests), frozenset(indexes))


def test_blob_put_verifies_and_is_idempotent(store: Store) -> None:
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


def test_blob_mismatch_leaves_nothing(store: Store) -> None:
    wrong = Digest.of(b"something else")
    with pytest.raises(DigestMismatch):
        store.blob_put(io.BytesIO(b"actual bytes"), wrong)
    assert not store.blob_has(wrong)
    assert store.blob_path(wrong) is None
    with pytest.raises(InvalidInput):
        store.blob_put(io.BytesIO(b"short"), Digest.of(b"short!"), size=6)
    assert list((local_root(store) / "tmp").iterdir()) == []


def test_manifest_roundtrip_every_kind(store: Store) -> None:
    for img in (build_image("a"), build_image("b", oci=True), build_multiarch("c"), build_schema1("d")):
        store_image(store, img)
        got = store.manifest_get(img.digest)
        assert got.raw == img.manifest.raw and got.digest == img.digest
        assert got.media_type == img.manifest.media_type


def test_repository_lifecycle_and_versions(store: Store) -> None:
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
def test_commit_refuses_inconsistent_versions(store: Store, breakage: str) -> None:
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


def test_publish_unique_names_and_rollback(store: Store) -> None:
    for rid in ("a", "b"):
        store.repository_create(rid)
    repo = store.publish("a", name="team/app", version=0, protected=True)
    assert (repo.publish_name, repo.published_version, repo.protected) == ("team/app", 0, True)
    assert narrow(Repository, store.repository_by_publish_name("team/app")).id == "a"
    with pytest.raises(Conflict, match="already used"):
        store.publish("b", name="team/app", version=0, protected=False)
    with pytest.raises(NameInvalid):
        store.publish("b", name="Team/App", version=0, protected=False)
    with pytest.raises(NotFound):
        store.publish("b", name="other", version=5, protected=False)
    assert store.unpublish("a").published_version is None
    with pytest.raises(RepositoryNotFound):
        store.unpublish("zzz")


def test_check_and_gc(store: Store) -> None:
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


def test_check_reports_corrupt_and_missing(store: Store) -> None:
    store.repository_create("r")
    img = build_image("c")
    store_image(store, img)
    store.version_commit("r", base=0, content=content_of(img), tags={}, operation="x")
    layer = img.manifest.layers[0].digest
    path = narrow(Path, store.blob_path(layer))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    config = narrow(Descriptor, img.manifest.config)
    narrow(Path, store.blob_path(config.digest)).unlink()
    report = store.check()
    subjects = {(p.kind, p.subject) for p in report.problems}
    assert ("corrupt", str(layer)) in subjects
    assert ("missing", str(config.digest)) in subjects


def test_repository_delete(store: Store) -> None:
    store.repository_create("gone")
    store.repository_delete("gone")
    assert store.repository_find("gone") is None
    with pytest.raises(RepositoryNotFound):
        store.version_get("gone")


def test_journal(store: Store) -> None:
    jid = store.journal_start(command="apply", plan_digest="sha256:x", details={"n": 1})
    store.journal_finish(jid, result="ok", details={"n": 2})
    (entry,) = store.journal_list()
    assert entry.result == "ok" and entry.finished and entry.details == {"n": 2}


def test_parallel_blob_puts_are_all_recorded(store: Store) -> None:
    """Parallel downloads record their blobs through shared (group) commits: every one
    is recorded when its blob_put returns, and they count as store writes."""
    from concurrent.futures import ThreadPoolExecutor

    datas = [f"blob {i}".encode() * 100 for i in range(60)]
    gen = store.generation()

    def put(data: bytes) -> bool:
        d = Digest.of(data)
        store.blob_put(io.BytesIO(data), d, size=len(data))
        return store.blob_has(d)  # visible as soon as blob_put returned

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(put, datas))
    assert not store.blobs_missing([Digest.of(d) for d in datas])
    assert gen < store.generation() <= gen + len(datas)


def test_manifests_put_stores_an_index_with_its_children(store: Store) -> None:
    img = build_multiarch("m")
    for d, data in img.all_blobs().items():
        store.blob_put(io.BytesIO(data), Digest.parse(d))
    manifests = img.all_manifests()
    store.manifests_put(manifests)
    assert all(store.manifest_has(m.digest) for m in manifests)
    assert store.manifest_get(img.digest).digest == img.digest


def test_manifest_refs_give_the_graph_parsing_gives(store: Store) -> None:
    """The plan builds its graph from the recorded references instead of parsing every
    manifest: both must agree, for every kind (nested index kinds, schema1 included)."""
    from reconciler.ops.cascade import RefGraph

    images = [build_image("a"), build_image("b", oci=True), build_multiarch("c"),
              build_multiarch("d", oci=True), build_schema1("e")]
    manifests = []
    for img in images:
        store_image(store, img)
        manifests += img.all_manifests()
    absent = Digest.of(b"not stored")
    refs = store.manifest_refs([m.digest for m in manifests] + [absent])
    assert absent not in refs and set(refs) == {m.digest for m in manifests}
    by_refs, by_parsing = RefGraph.from_refs(refs), RefGraph.from_manifests(manifests)
    for m in manifests:
        assert by_refs.children(m.digest) == by_parsing.children(m.digest)
        assert by_refs.kind(m.digest) == by_parsing.kind(m.digest)
        for child in by_parsing.children(m.digest):
            assert by_refs.kind(child, parent_kind=by_parsing.kind(m.digest)) == \
                by_parsing.kind(child, parent_kind=by_parsing.kind(m.digest))
    assert store.manifest_refs([]) == {}


def test_versions_latest_matches_version_get(store: Store) -> None:
    img = build_image("x")
    store_image(store, img)
    for repo in ("one", "two"):
        store.repository_create(repo)
    store.version_commit("one", base=0, content=content_of(img), tags={"t": TagEntry(img.digest, Origin.SYNC)},
                         operation="test")
    latest = store.versions_latest()
    assert set(latest) == {"one", "two"}
    for repo in ("one", "two"):
        assert latest[repo] == store.version_get(repo)


def test_versions_latest_keeps_each_tags_origin_when_tags_share_a_digest(store: Store) -> None:
    """The bulk read parses a digest once and shares a tag entry between tags of the same
    digest and origin: tags of one digest with different origins, in one repository and
    across repositories, still read back each with its own."""
    img = build_image("x")
    store_image(store, img)
    tags = {"one": {"a": Origin.SYNC, "b": Origin.PIN, "c": Origin.SYNC},
            "two": {"a": Origin.COPY, "d": Origin.SYNC, "e": Origin.MANUAL}}
    for repo, named in tags.items():
        store.repository_create(repo)
        store.version_commit(repo, base=0, content=content_of(img),
                             tags={n: TagEntry(img.digest, o) for n, o in named.items()}, operation="test")
    latest = store.versions_latest()
    for repo, named in tags.items():
        assert latest[repo] == store.version_get(repo)
        assert {n: e.origin for n, e in latest[repo].tags.items()} == named
        assert {e.digest for e in latest[repo].tags.values()} == {img.digest}


def test_a_verified_stream_that_fails_at_its_end_stores_nothing(store: Store) -> None:
    """The store skips re-hashing a stream the registry client verifies; the stream's own
    failure at its end must still leave nothing behind."""
    from reconciler.model import VerifiedStream

    data = b"layer bytes" * 100
    d = Digest.of(data)

    def lying() -> Iterator[bytes]:
        yield data[:50]
        raise DigestMismatch(str(d), str(Digest.of(b"x")), where="GET http://up/v2/x/blobs")

    with pytest.raises(DigestMismatch):
        store.blob_put(VerifiedStream(lying(), d), d)
    assert not store.blob_has(d) and list((local_root(store) / "tmp").iterdir()) == []
    assert store.blob_put(VerifiedStream(iter([data[:7], data[7:]]), d), d, size=len(data)) == len(data)
    with store.blob_open(d) as f:
        assert f.read() == data
    # a stream verified for another digest is hashed as usual
    other = Digest.of(b"other")
    with pytest.raises(DigestMismatch):
        store.blob_put(VerifiedStream(iter([data]), d), other)


def test_migration_backfills_the_compact_references_of_older_stores(tmp_path: Path) -> None:
    import sqlite3

    from reconciler.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "s")
    images = [build_multiarch("old", oci=True), build_image("plain")]
    for img in images:
        store_image(store, img)
    want = store.manifest_refs(m.digest for img in images for m in img.all_manifests())
    store.close()
    with sqlite3.connect(tmp_path / "s" / "store.db") as conn:  # as a store made before 0003 looked
        conn.execute("ALTER TABLE manifests DROP COLUMN refs")
        conn.execute("DELETE FROM migrations WHERE name = '0003_manifest_refs_text'")
    conn.close()
    store = SQLiteStore(tmp_path / "s")
    try:
        assert store.manifest_refs(want) == want
    finally:
        store.close()


def test_gc_takes_the_store_lock_unless_this_thread_holds_it(store: Store) -> None:
    """gc between another writer's 'bytes stored' and 'version committed' would delete
    what that writer is about to commit: gc waits for the lock, the holder's own does not."""
    outcome: list[BaseException | None] = []

    def other_gc() -> None:
        try:
            store.gc(lock_timeout=0.3)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    with store.lock(5):
        store.gc()  # the holder's gc runs at once
        thread = threading.Thread(target=other_gc)
        thread.start()
        thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], LockTimeout)
    store.gc(lock_timeout=5)  # free again
