"""Version lifecycle on every store backend (the ``store`` fixture: SQLite, PostgreSQL):
dropping versions, what is never dropped, gc giving the bytes back (and its dry run),
``store du`` and pruning the journal."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.errors import Conflict, NotFound
from reconciler.model.descriptor import Descriptor
from reconciler.ops.retention import prune_versions
from reconciler.ops.v1.content import remove_v1
from reconciler.ops.v1.upload import upload_v1
from reconciler.store.protocol import Store
from tests.support.imagegen import Image, ManifestImage, build_image, build_multiarch, store_image
from tests.support.narrow import narrow
from tests.support.serving import commit_tags, content_of
from tests.support.v1images import build_chain, v1_save_tar


def size_of(store: Store, *images: Image) -> int:
    """The recorded bytes of the images' blobs and manifests."""
    content = content_of(*images)
    return (sum(store.blob_size(d) for d in content.blobs)
            + sum(len(store.manifest_raw(d)[1]) for d in content.manifests | content.indexes))


def moving_tag(store: Store, repo_id: str, n: int, *, shared: Image | None = None) -> list[ManifestImage]:
    """Versions 1..n of ``repo_id``: tag ``latest`` on a new image each time (and tag
    ``base`` on ``shared`` in every version when given)."""
    images = [build_image(f"{repo_id}-{i}", payload=256) for i in range(1, n + 1)]
    for img in images:
        commit_tags(store, repo_id, {"latest": img, **({"base": shared} if shared else {})})
    return images


def test_dropping_versions_keeps_the_others_exactly_and_gc_frees_what_only_they_held(store: Store) -> None:
    base = build_image("base")
    images = moving_tag(store, "web", 6, shared=base)
    store.publish("web", name="team/web", version=4, protected=False)
    before = {n: store.version_get("web", n) for n in (4, 5, 6)}
    gen = store.generation()

    assert store.versions_drop("web", [1, 2, 3, 0]) == [0, 1, 2, 3]
    assert store.generation() > gen
    assert [v.number for v in store.version_list("web")] == [4, 5, 6]
    for n, version in before.items():  # the kept versions read exactly as before
        assert store.version_get("web", n) == version
    for n in (0, 1, 2, 3):
        with pytest.raises(NotFound):
            store.version_get("web", n)
    assert store.check().ok

    # the images of versions 1-3 are held by nothing now; the shared base stays
    freed = size_of(store, *images[:3])
    report = store.gc()
    assert (report.manifests_removed, report.bytes_freed) == (3, freed)
    assert report.blobs_removed == sum(len(img.blobs) for img in images[:3])
    for img in images[:3]:
        assert not store.manifest_has(img.digest)
    for img in (*images[3:], base):
        assert store.manifest_has(img.digest) and store.blob_has(narrow(Descriptor, img.manifest.config).digest)
    assert store.check().ok


def test_the_latest_and_the_published_version_are_never_dropped(store: Store) -> None:
    moving_tag(store, "web", 4)
    store.publish("web", name="team/web", version=2, protected=False)  # a rollback's target
    assert store.protected_versions()["web"] == {4: ("latest",), 2: ("published",)}
    for numbers, named in (([1, 2], "2 (published)"), ([3, 4], "4 (latest)")):
        with pytest.raises(Conflict, match=rf"version {named.replace('(', '[(]').replace(')', '[)]')}"):
            store.versions_drop("web", numbers)
    assert [v.number for v in store.version_list("web")] == [0, 1, 2, 3, 4]  # nothing was dropped
    with pytest.raises(NotFound, match="no version 9"):
        store.versions_drop("web", [3, 9])
    assert store.versions_drop("web", [3]) == [3]
    # a dropped version can be neither published nor rolled back to
    with pytest.raises(NotFound, match="no longer has version 3"):
        store.publish("web", name="team/web", version=3, protected=False)
    assert store.repository_get("web").published_version == 2


def test_a_new_version_and_its_drops_commit_together(store: Store) -> None:
    images = moving_tag(store, "web", 3)
    nxt = build_image("web-4", payload=256)
    commit = store.version_commit
    store_image(store, nxt)
    info = commit("web", base=3, content=content_of(nxt), tags={}, operation="x", drop=[0, 1, 2, 3])
    assert info is not None and info.number == 4
    # the old latest (3) went in the same transaction that made 4 the latest
    assert [v.number for v in store.version_list("web")] == [4]
    assert store.version_get("web").content == content_of(nxt)
    # a refused drop rolls the new version back with it
    with pytest.raises(Conflict):
        commit("web", base=4, content=content_of(images[0]), tags={}, operation="x", drop=[4, 5])
    assert store.repository_get("web").latest_version == 4
    # no change: the drops still happen
    moving_tag(store, "other", 3)
    latest = store.version_get("other")
    assert store.version_commit("other", base=3, content=latest.content, tags=latest.tags, operation="x",
                                drop=[1]) is None
    assert [v.number for v in store.version_list("other")] == [0, 2, 3]


def test_version_history_tells_retention_what_it_needs(store: Store) -> None:
    base = build_image("base")
    images = moving_tag(store, "web", 3, shared=base)
    commit_tags(store, "other", {"b": base})
    h = store.version_history(["web", "missing"])
    assert set(h) == {"web"}
    web = h["web"]
    assert web.numbers == (0, 1, 2, 3) and web.protected == {3: ("latest",)}
    first = images[0].digest
    assert (first, 1, 2) in web.rows
    assert web.sizes[first] == len(images[0].manifest.raw)
    assert web.shared == content_of(base).blobs | content_of(base).manifests


def test_prune_versions_is_retention_once(store: Store) -> None:
    images = moving_tag(store, "web", 5)
    store.publish("web", name="team/web", version=1, protected=False)
    result = prune_versions(store, "web", 2, dry_run=True)
    assert result.dropped == (0, 2, 3) and result.kept == (1, 4, 5) and result.protected == {1: ("published",)}
    assert result.frees_bytes == size_of(store, images[1], images[2])
    assert [v.number for v in store.version_list("web")] == [0, 1, 2, 3, 4, 5]  # a dry run drops nothing
    assert prune_versions(store, "web", 2).dropped == (0, 2, 3)
    assert [v.number for v in store.version_list("web")] == [1, 4, 5]
    assert store.gc().bytes_freed == result.frees_bytes
    assert prune_versions(store, "web", 2).dropped == ()


def test_gc_dry_run_says_what_gc_removes_and_changes_nothing(store: Store) -> None:
    images = moving_tag(store, "web", 3)
    store.versions_drop("web", [1])
    gen = store.generation()
    dry = store.gc(dry_run=True)
    assert dry.dry_run and dry.manifests_removed == 1 and dry.bytes_freed == size_of(store, images[0])
    assert store.generation() == gen and store.manifest_has(images[0].digest)
    real = store.gc()
    assert (real.blobs_removed, real.manifests_removed, real.bytes_freed) == (
        dry.blobs_removed, dry.manifests_removed, dry.bytes_freed)
    assert real.to_json() == {"freed_bytes": dry.bytes_freed, "blobs_removed": dry.blobs_removed,
                              "manifests_removed": 1, "temporary_files_removed": 0, "dry_run": False}


def test_usage_says_where_the_bytes_are(store: Store) -> None:
    base = build_multiarch("shared-index")
    web = moving_tag(store, "web", 3, shared=base)
    commit_tags(store, "other", {"b": base})
    lone = build_image("lone")
    commit_tags(store, "lonely", {"x": lone})
    commit_tags(store, "lonely", {})  # untags it: only version 1 holds lone now
    store.publish("lonely", name="lonely", version=1, protected=False)  # ... and is protected
    garbage = build_image("garbage")
    store_image(store, garbage)
    u = {r.id: r for r in store.usage().repositories}
    assert u["web"].versions == 4 and u["web"].bytes == size_of(store, web[2], base)
    assert u["web"].unique_bytes == size_of(store, *web)  # base is shared with "other"
    assert u["web"].old_versions_bytes == size_of(store, web[0], web[1])
    assert u["other"].unique_bytes == 0 and u["other"].old_versions_bytes == 0
    assert u["lonely"].bytes == 0 and u["lonely"].unique_bytes == size_of(store, lone)
    assert u["lonely"].old_versions_bytes == 0  # the published version holds it
    usage = store.usage()
    assert usage.unreferenced_bytes == size_of(store, garbage)
    assert usage.total_bytes == size_of(store, *web, base, lone, garbage)
    assert narrow(list, usage.to_json()["repositories"])[0] == {
        "id": "lonely", "versions": 3, "bytes": 0, "unique_bytes": size_of(store, lone), "old_versions_bytes": 0}
    # after dropping and gc, the old bytes are gone from every column
    store.versions_drop("web", [0, 1, 2])
    store.gc()
    after = store.usage()
    assert after.unreferenced_bytes == 0 and {r.id: r for r in after.repositories}["web"].old_versions_bytes == 0
    assert after.total_bytes == usage.total_bytes - usage.unreferenced_bytes - u["web"].old_versions_bytes


def test_journal_prune_keeps_running_entries(store: Store) -> None:
    old = store.journal_start(command="apply old", plan_digest=None, details={})
    store.journal_finish(old, result="ok", details={})
    running = store.journal_start(command="apply running", plan_digest=None, details={})
    assert store.journal_prune("9999-01-01T00:00:00+00:00") == 1
    assert [e.id for e in store.journal_list()] == [running]
    assert store.journal_prune("2000-01-01T00:00:00+00:00") == 0


def test_dropping_versions_with_v1_content_keeps_check_clean_and_frees_the_layers(
        store: Store, tmp_path: Path) -> None:
    old, new = build_chain("old", length=2), build_chain("new", length=2)
    store.repository_create("v1")
    upload_v1(store, "v1", v1_save_tar(tmp_path / "old.tar", old))                   # version 1
    remove_v1(store, "v1", "image", [old.leaf])                                     # version 2
    remove_v1(store, "v1", "image", [old.ids[0]])                                   # version 3
    upload_v1(store, "v1", v1_save_tar(tmp_path / "new.tar", new))                  # version 4
    layers = {store.v1_image_get(i).layer for i in old.ids}
    assert store.usage().repositories[0].old_versions_bytes == sum(store.blob_size(d) for d in layers)
    store.versions_drop("v1", [0, 1, 2, 3])
    assert store.check().ok
    assert store.v1_version_get("v1").images == frozenset(new.ids)
    assert store.gc().blobs_removed == len(layers)
    assert not any(store.blob_has(d) for d in layers) and store.check().ok


def test_a_served_publication_keeps_serving_through_retention_and_gc(store: Store) -> None:
    from reconciler.server import RegistryApp
    from tests.support.serving import wsgi_call

    images = moving_tag(store, "web", 5)
    store.publish("web", name="team/web", version=2, protected=False)  # rolled back to version 2
    app = RegistryApp(lambda: store)
    prune_versions(store, "web", 1)
    store.gc()
    assert [v.number for v in store.version_list("web")] == [2, 5]
    served = images[1]
    status, headers, body = wsgi_call(app, "GET", "/v2/team/web/manifests/latest",
                                      headers={"Accept": served.manifest.media_type})
    assert status == 200 and headers["Docker-Content-Digest"] == str(served.digest)
    for digest, data in served.blobs.items():
        status, _, body = wsgi_call(app, "GET", f"/v2/team/web/blobs/{digest}")
        assert (status, body) == (200, data)
    # what only the dropped versions held is gone: not served, not stored
    status, _, _ = wsgi_call(app, "GET", f"/v2/team/web/manifests/{images[2].digest}")
    assert status == 404 and not store.manifest_has(images[2].digest)


def test_versions_in_a_grace_period_are_protected_until_it_ends(store: Store,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.store.sql.grace import GRACE_ENV

    monkeypatch.setenv(GRACE_ENV, "0.5")
    images = moving_tag(store, "web", 4)
    store.publish("web", name="team/web", version=2, protected=False)
    store.publish("web", name="team/web", version=4, protected=False)  # 2 is served by digest a while
    assert store.protected_versions()["web"] == {2: ("grace",), 4: ("latest", "published")}
    assert store.versions_pinned() == {"web": {2, 4}}  # the server's view: one definition
    with pytest.raises(Conflict, match=r"version 2 \(grace\)"):
        store.versions_drop("web", [1, 2])
    web = {r.id: r for r in store.usage().repositories}["web"]
    assert web.old_versions_bytes == size_of(store, images[0], images[2])  # version 2 counts as kept
    assert prune_versions(store, "web", 1).dropped == (0, 1, 3)
    time.sleep(0.6)
    assert store.protected_versions()["web"] == {4: ("latest", "published")}
    assert prune_versions(store, "web", 1).dropped == (2,)
    assert [v.number for v in store.version_list("web")] == [4]


def test_drift_reads_hand_made_versions_whose_predecessor_was_dropped(store: Store) -> None:
    from reconciler.plan.drift import gather_manual

    a, b, c = build_image("d-a"), build_image("d-b"), build_image("d-c")
    commit_tags(store, "web", {"latest": a}, operation="apply sha256:1234")     # 1, by an apply
    commit_tags(store, "web", {"latest": b}, operation="tag")                   # 2, by hand
    commit_tags(store, "web", {"latest": b, "extra": c}, operation="tag")       # 3, by hand
    prune_versions(store, "web", 2)  # drops 0 and 1, the apply-made version before them
    manual = gather_manual(store, ["web"])["web"]
    assert [n for n, _, _ in manual.versions] == [2, 3] and manual.tags == frozenset({"extra"})
