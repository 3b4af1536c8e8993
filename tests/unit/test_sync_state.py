"""The pure part of sync: the new tag map and content (additive and mirror), the remove
cascade it uses, and Docker Hub name normalisation."""

from __future__ import annotations

import pytest

from reconciler.model import Digest
from reconciler.model.content import ContentSet, Kind, Origin, TagEntry
from reconciler.model.reference import normalize_upstream_name
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.cascade import RefGraph
from reconciler.ops.state import RepoState
from reconciler.ops.sync import UpstreamView, sync_state, tag_changes


def d(name: str) -> Digest:
    return Digest.of(name.encode())


# a tiny graph: index I lists manifests A and B; A uses blobs a1, shared; B uses b1, shared;
# manifest C uses c1, shared
REFS = {
    d("I"): (d("A"), d("B")),
    d("A"): (d("a1"), d("shared")),
    d("B"): (d("b1"), d("shared")),
    d("C"): (d("c1"), d("shared")),
    d("D"): (d("d1"),),
}
GRAPH = RefGraph({p: (Kind.INDEX if p == d("I") else Kind.MANIFEST, c) for p, c in REFS.items()})
ALL = ContentSet(blobs=frozenset(d(x) for x in ("a1", "b1", "c1", "d1", "shared")),
                 manifests=frozenset(d(x) for x in "ABCD"), indexes=frozenset({d("I")}))


def closure_of(*roots: str) -> ContentSet:
    seen: set[Digest] = set()
    stack = [d(r) for r in roots]
    while stack:
        x = stack.pop()
        if x not in seen:
            seen.add(x)
            stack.extend(REFS.get(x, ()))
    return ContentSet(blobs=frozenset(seen & ALL.blobs), manifests=frozenset(seen & ALL.manifests),
                      indexes=frozenset(seen & ALL.indexes))


def state(tags: dict[str, tuple[str, Origin]], *extra_roots: str) -> RepoState:
    content = closure_of(*[t for t, _ in tags.values()], *extra_roots)
    return RepoState(content, {n: TagEntry(d(t), o) for n, (t, o) in tags.items()})


S = Origin.SYNC


@pytest.mark.parametrize(
    "before, upstream, flt, mirror, want_tags, want_manifests",
    [
        pytest.param({}, {"v1": "C"}, TagFilter(), False, {"v1": "C"}, "C", id="first-sync"),
        pytest.param({"v1": ("C", S)}, {"v1": "C"}, TagFilter(), False, {"v1": "C"}, "C", id="no-change"),
        pytest.param({"v1": ("C", S), "old": ("D", S)}, {"v1": "A"}, TagFilter(), False,
                     {"v1": "A", "old": "D"}, "ACD", id="additive-keeps-vanished-and-moved-from"),
        pytest.param({"v1": ("C", S), "old": ("D", S)}, {"v1": "A", "new": "B"}, TagFilter(), True,
                     {"v1": "A", "new": "B"}, "AB", id="mirror-removes-vanished-and-moved-from"),
        pytest.param({"v1": ("C", S), "mine": ("D", Origin.MANUAL)}, {}, TagFilter(), True,
                     {"mine": "D"}, "D", id="mirror-keeps-manual-tags"),
        pytest.param({"v1": ("C", S), "dev": ("D", S)}, {"v1": "C"}, TagFilter(include=("v*",)), True,
                     {"v1": "C", "dev": "D"}, "CD", id="mirror-keeps-tags-outside-filter"),
        pytest.param({"list": ("I", S), "amd": ("A", S)}, {"amd": "A"}, TagFilter(), True,
                     {"amd": "A"}, "A", id="mirror-index-keeps-tagged-child"),
        pytest.param({"list": ("I", S), "c": ("C", S)}, {"c": "C"}, TagFilter(), True,
                     {"c": "C"}, "C", id="mirror-index-removes-untagged-children"),
        pytest.param({"v1": ("A", S), "list": ("I", S)}, {"v1": "C", "list": "I"}, TagFilter(), True,
                     {"v1": "C", "list": "I"}, "ABC", id="mirror-moved-from-still-listed-by-index"),
        pytest.param({"v1": ("A", S), "pin": ("A", Origin.PIN)}, {"v1": "C"}, TagFilter(), True,
                     {"v1": "C", "pin": "A"}, "AC", id="mirror-moved-from-still-pinned"),
    ],
)
def test_sync_state(before: dict[str, tuple[str, Origin]], upstream: dict[str, str], flt: TagFilter, mirror: bool,
                    want_tags: dict[str, str], want_manifests: str) -> None:
    old = state(before)
    view = UpstreamView("lib/x", {t: d(m) for t, m in upstream.items()})
    new = sync_state(old, view, closure_of(*upstream.values()), flt, mirror=mirror, graph=GRAPH)
    assert {n: e.digest for n, e in new.tags.items()} == {n: d(m) for n, m in want_tags.items()}
    assert new.content.manifests == frozenset(d(m) for m in want_manifests)
    # every remaining manifest keeps its blobs; nothing dangles
    for m in new.content.manifests | new.content.indexes:
        assert set(REFS[m]) <= new.content.blobs | new.content.manifests
    for e in new.tags.values():
        assert e.digest in new.content


def test_unchanged_tag_keeps_its_origin_and_moved_tag_becomes_sync() -> None:
    old = state({"v1": ("C", Origin.COPY), "v2": ("D", Origin.MANUAL)})
    new = sync_state(old, UpstreamView("x", {"v1": d("C"), "v2": d("A")}), closure_of("C", "A"))
    assert new.tags["v1"] == TagEntry(d("C"), Origin.COPY)
    assert new.tags["v2"] == TagEntry(d("A"), Origin.SYNC)
    assert tag_changes(old, new) == ((), ("v2",), ())


def test_mirror_needs_graph() -> None:
    with pytest.raises(ValueError):
        sync_state(state({"v1": ("C", S)}), UpstreamView("x", {}), ContentSet(), mirror=True)


@pytest.mark.parametrize(
    "feed, name, want",
    [
        pytest.param("https://registry-1.docker.io", "busybox", "library/busybox", id="hub-official"),
        pytest.param("https://docker.io", "busybox", "library/busybox", id="hub-short-host"),
        pytest.param("https://index.docker.io:443/", "alpine", "library/alpine", id="hub-port"),
        pytest.param("https://registry-1.docker.io", "bitnami/redis", "bitnami/redis", id="hub-user-repo"),
        pytest.param("https://quay.io", "busybox", "busybox", id="other-registry"),
        pytest.param("http://127.0.0.1:5000", "busybox", "busybox", id="loopback"),
    ],
)
def test_normalize_upstream_name(feed: str, name: str, want: str) -> None:
    assert normalize_upstream_name(feed, name) == want
