"""``reconciler sync`` (``api.sync_repository``: the repos.yaml entry planned and applied,
docs/architecture.md "One way in") over an in-memory upstream: what gets fetched, what
is counted, what a failure leaves behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from reconciler import api
from reconciler.errors import RegistryError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import Origin
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.parallel import ProgressEvent
from reconciler.ops.refresh import refresh_upstream
from reconciler.ops.sync import SyncResult
from reconciler.store.protocol import Store
from tests.support.fakeupstream import FakeUpstream
from tests.support.imagegen import build_image, build_multiarch

T = TypeVar("T")


def sync(store: Store, upstream: FakeUpstream, repo: str, *, upstream_name: str, **kw: Any) -> SyncResult:
    """The one-off sync of ``repo`` from ``upstream_name`` on the fake upstream."""
    return api.sync_repository(store, repo, feed=upstream.config.url, upstream_name=upstream_name,
                               source_factory=lambda _config: upstream, **kw)


@pytest.fixture
def upstream() -> FakeUpstream:
    up = FakeUpstream(page_size=2)
    up.push("lib/app", build_image("app-v1"), "v1")
    up.push("lib/app", build_image("app-v2", oci=True), "v2", "latest", "stable")
    up.push("lib/app", build_multiarch("app-multi"), "multi")
    up.push("lib/app", build_multiarch("app-ocimulti", oci=True), "oci-multi")
    return up


def tags_of(store: Store, repo: str) -> dict[str, Digest]:
    return {n: e.digest for n, e in store.version_get(repo).tags.items()}


def test_first_sync_fetches_everything_once_and_commits_one_version(store: Store, upstream: FakeUpstream) -> None:
    store.repository_create("app")
    events: list[ProgressEvent] = []
    result = sync(store, upstream, "app", upstream_name="lib/app", progress=events.append)
    assert result.version == 1
    assert tags_of(store, "app") == upstream.repos["lib/app"].tags
    assert {e.origin for e in store.version_get("app").tags.values()} == {Origin.SYNC}
    assert result.tags_added == ("latest", "multi", "oci-multi", "stable", "v1", "v2")
    # 2 images + 2 indexes with 3 children each
    assert result.manifests_added == 10
    assert store.version_get("app").content.counts() == {"blobs": result.blobs_added, "manifests": 8, "indexes": 2}
    # each blob downloaded once although platforms share a base layer
    assert len(upstream.blob_log) == len(set(upstream.blob_log)) == result.blobs_added
    assert upstream.stats.counts["tags"] == 3  # 6 tags, 2 per page
    # a tag the repository lacks is resolved by GET (its manifest is needed anyway), not HEAD + GET
    # (6 by tag + the 6 children of the 2 indexes: 12 requests where HEAD then GET made 16)
    assert "head" not in upstream.stats.counts and upstream.stats.counts["manifest_get"] == 12
    # the manifests are fetched while the change is planned (reported with the tags), the blobs when applied
    assert {e.phase for e in events} == {"tags", "blobs"}
    assert store.check().ok


def test_second_sync_without_change_costs_only_tag_list_and_heads(store: Store, upstream: FakeUpstream) -> None:
    store.repository_create("app")
    sync(store, upstream, "app", upstream_name="lib/app")
    upstream.stats.counts.clear()
    generation = store.generation()
    result = sync(store, upstream, "app", upstream_name="lib/app")
    assert result.version is None
    assert upstream.stats.counts == {"tags": 3, "head": 6}
    assert result.requests == 9
    assert store.repository_get("app").latest_version == 1
    assert store.generation() == generation


def test_blobs_shared_between_repositories_are_downloaded_once(store: Store) -> None:
    up = FakeUpstream()
    base = (b"common base layer",)
    up.push("one", build_image("one", shared=base), "latest")
    up.push("two", build_image("two", shared=base), "latest")
    store.repository_create("one")
    store.repository_create("two")
    sync(store, up, "one", upstream_name="one")
    sync(store, up, "two", upstream_name="two")
    assert len(up.blob_log) == len(set(up.blob_log))
    shared = set(store.version_get("one").content.blobs) & set(store.version_get("two").content.blobs)
    assert len(shared) == 1


def test_registry_without_digest_header_costs_one_get_per_tag(store: Store, upstream: FakeUpstream) -> None:
    upstream.send_digest = False
    store.repository_create("app")
    sync(store, upstream, "app", upstream_name="lib/app", tag_filter=TagFilter(include=("v1",)))
    # one GET by tag to learn the digest, none by digest afterwards
    assert upstream.stats.counts["manifest_get"] == 1
    assert tags_of(store, "app") == {"v1": upstream.repos["lib/app"].tags["v1"]}


def test_filter_selects_tags(store: Store, upstream: FakeUpstream) -> None:
    store.repository_create("app")
    result = sync(store, upstream, "app", upstream_name="lib/app",
                  tag_filter=TagFilter(include=("v*", "re:multi|latest"), exclude=("v2",)))
    assert set(tags_of(store, "app")) == {"v1", "multi", "latest"}
    assert result.tags_selected == 3
    # by tag: the 3 selected (no HEAD: the repository held none of them); by digest: multi's 3 children
    assert "head" not in upstream.stats.counts and upstream.stats.counts["manifest_get"] == 3 + 3


def test_corrupt_blob_fails_and_leaves_repository_unchanged(store: Store, upstream: FakeUpstream) -> None:
    store.repository_create("app")
    sync(store, upstream, "app", upstream_name="lib/app", tag_filter=TagFilter(include=("v1",)))
    before = store.version_get("app")
    img = build_image("bad")
    upstream.push("lib/app", img, "v1")
    bad = next(Digest.parse(d) for d in img.blobs if Digest.parse(d) not in before.content.blobs)
    upstream.corrupt_blobs[bad] = b"x" * len(img.blobs[str(bad)])
    result = sync(store, upstream, "app", upstream_name="lib/app", tag_filter=TagFilter(include=("v1",)))
    assert list(result.tags_failed) == ["v1"] and not result.changed  # the tag fails, the sync reports it
    msg = result.tags_failed["v1"]
    assert str(bad) in msg and "tag 'v1'" in msg and "digest mismatch" in msg
    assert f"http://fake.invalid/v2/lib/app/blobs/{bad}" in msg
    after = store.version_get("app")
    assert (after.number, after.tags, after.content) == (before.number, before.tags, before.content)
    assert not store.blob_has(bad)
    assert not store.manifest_has(img.digest)
    assert store.check().ok


def test_tag_deleted_between_listing_and_head_is_skipped(store: Store, upstream: FakeUpstream) -> None:
    upstream.after_list = lambda name: upstream.delete_tag(name, "v1")
    store.repository_create("app")
    result = sync(store, upstream, "app", upstream_name="lib/app")
    assert "v1" not in tags_of(store, "app")
    assert result.tags_dropped == ("v1",)
    assert len(tags_of(store, "app")) == 5


def test_foreign_layers_are_recorded_not_downloaded(store: Store) -> None:
    up = FakeUpstream()
    img = build_image("win", foreign=True)
    up.push("win", img, "latest")
    store.repository_create("win")
    result = sync(store, up, "win", upstream_name="win")
    assert result.foreign_layers == 1
    foreign = img.manifest.foreign_layers()[0].digest
    assert foreign not in up.blob_log and not store.blob_has(foreign)
    assert store.check().ok


def test_refresh_returns_selected_tags_and_request_count(upstream: FakeUpstream) -> None:
    view = refresh_upstream(upstream, "lib/app", TagFilter(exclude=("*multi",)))
    assert set(view.tags) == {"v1", "v2", "latest", "stable"}
    assert view.requests == 3 + 4 and view.listed == 6


def test_concurrent_fetches_share_in_flight_blobs(store: Store) -> None:
    """Apply fetches several repositories at once, into one content batch; a blob they
    share is downloaded once."""
    import threading
    import time
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from reconciler.ops.fetch import fetch_content
    from reconciler.ops.transfer.walk import InFlight

    class SlowUpstream(FakeUpstream):
        def blob_fetch(self, name: str, digest: Digest, sink: Callable[[Iterator[bytes]], T]) -> T:
            time.sleep(0.05)  # keep both fetches' downloads in flight together
            return super().blob_fetch(name, digest, sink)

    up = SlowUpstream()
    shared = build_image("shared")
    roots = {name: up.push(name, shared, "v1") for name in ("lib/a", "lib/b")}
    start = threading.Barrier(2)
    inflight = InFlight()

    def fetch(name: str) -> int:
        start.wait()
        return fetch_content(store, up, name, [roots[name]], inflight=inflight, batch=batch).blobs_added

    with store.content_batch() as batch:
        with ThreadPoolExecutor(2) as pool:
            added = list(pool.map(fetch, roots))
        assert store.blobs_missing(Digest.parse(d) for d in shared.all_blobs())  # nothing visible yet
        batch.commit()
    assert sum(added) == len(shared.all_blobs())
    assert set(Counter(up.blob_log).values()) == {1}
    assert not store.blobs_missing(Digest.parse(d) for d in shared.all_blobs())


@pytest.mark.parametrize("allow_empty", [False, True], ids=["held-back", "allow-empty"])
def test_mirror_with_an_empty_upstream_removes_nothing_unless_allowed(store: Store, upstream: FakeUpstream,
                                                                      allow_empty: bool) -> None:
    store.repository_create("app")
    sync(store, upstream, "app", upstream_name="lib/app", mirror=True)
    before = tags_of(store, "app")
    for tag in list(upstream.repos["lib/app"].tags):
        upstream.delete_tag("lib/app", tag)
    result = sync(store, upstream, "app", upstream_name="lib/app", mirror=True, allow_empty=allow_empty)
    if allow_empty:
        assert tags_of(store, "app") == {}
        assert result.tags_removed == tuple(sorted(before)) and not result.warnings
        assert store.version_get("app").content.counts() == {"blobs": 0, "manifests": 0, "indexes": 0}
    else:
        assert result.version is None and tags_of(store, "app") == before
        assert len(result.warnings) == 1 and "selected no tags" in result.warnings[0]
    assert store.check().ok


def test_a_tag_whose_manifest_is_gone_when_fetched_is_dropped_not_failed(store, upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    """v1 moved upstream, and its new manifest was deleted between the HEAD that resolved
    it and the GET: the tag was deleted while we looked, so it is dropped (kept as it was),
    not a failure."""
    only_v1 = TagFilter(include=("v1",))
    sync(store, upstream, "app", upstream_name="lib/app", tag_filter=only_v1)
    before = tags_of(store, "app")
    moved = upstream.push("lib/app", build_image("app-v1-moved"), "v1")
    get = upstream.manifest_get

    def deleted(name: str, reference: str) -> Manifest | Index:
        if reference == str(moved):
            raise RegistryError("GET", f"http://fake.invalid/v2/{name}/manifests/{reference}", 404,
                                codes=["MANIFEST_UNKNOWN"])
        return get(name, reference)

    upstream.manifest_get = deleted  # type: ignore[method-assign]
    result = sync(store, upstream, "app", upstream_name="lib/app", tag_filter=only_v1)
    assert result.tags_dropped == ("v1",) and not result.tags_failed and not result.changed
    assert tags_of(store, "app") == before
