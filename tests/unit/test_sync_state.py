"""What a sync does to a repository's tags and content (additive and mirror), as the plan
computes it and apply runs it (``plan.diff`` then ``plan.steps``, the road the one-off
``reconciler sync`` takes too), and Docker Hub name normalisation.

Before one way in, ``ops.sync.sync_state`` computed this for the one-off command; these
are its cases, run over the plan's road, plus the issue-17 case it got wrong (a mirror
moving a tag set by hand left the old target's content behind)."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.model import Digest
from reconciler.model.content import Origin, TagEntry
from reconciler.model.reference import normalize_upstream_name
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.state import RepoState
from reconciler.plan.actions import ContentAction
from reconciler.plan.diff import diff
from reconciler.plan.observed import UpstreamTags
from reconciler.plan.steps import run_step
from tests.support.planworld import IMAGES, desired, graph, observed, repo, synced

#: I: an index listing manifests A, B and P (they share a layer); C and D: single images
NAMES: dict[str, Digest] = {"I": IMAGES["multi"].digest, "A": IMAGES["multi"].children[0].digest,
                            "B": IMAGES["multi"].children[1].digest, "P": IMAGES["multi"].children[2].digest,
                            "C": IMAGES["a"].digest, "D": IMAGES["b"].digest}
ANY = TagFilter()
BY_DIGEST = {v: k for k, v in NAMES.items()}


def state(tags: dict[str, tuple[str, Origin]]) -> RepoState:
    content = graph().closure([NAMES[t] for t, _ in tags.values()])
    return RepoState(content, {n: TagEntry(NAMES[t], o) for n, (t, o) in tags.items()})


def sync(before: RepoState, upstream: dict[str, str], flt: TagFilter = ANY,
         mirror: bool = False) -> RepoState:
    """The repository after a sync of ``upstream`` (tag -> name): the plan's actions run
    over ``before`` with the steps apply runs."""
    obs = observed({"web": repo("web", before, feed="http://127.0.0.1:5000", upstream="lib/web")}, {"web": {}})
    tags = UpstreamTags("lib/web", {t: NAMES[n] for t, n in upstream.items()}, listed=len(upstream))
    obs = dataclasses.replace(obs, upstreams={"web": tags})
    plan = diff(desired(synced("web", mirror=mirror, tag_filter=flt, allow_empty=True)), obs)
    after = before
    for a in plan.actions:
        assert isinstance(a, ContentAction), a
        after = run_step(a, after, obs.graph).state
    return after


S = Origin.SYNC
M = Origin.MANUAL


@pytest.mark.parametrize(
    "before, upstream, flt, mirror, want_tags, want_manifests",
    [
        pytest.param({}, {"v1": "C"}, TagFilter(), False, {"v1": "C"}, "C", id="first-sync"),
        pytest.param({"v1": ("C", S)}, {"v1": "C"}, TagFilter(), False, {"v1": "C"}, "C", id="no-change"),
        pytest.param({"v1": ("C", S), "old": ("D", S)}, {"v1": "A"}, TagFilter(), False,
                     {"v1": "A", "old": "D"}, "ACD", id="additive-keeps-vanished-and-moved-from"),
        pytest.param({"v1": ("C", S), "old": ("D", S)}, {"v1": "A", "new": "B"}, TagFilter(), True,
                     {"v1": "A", "new": "B"}, "AB", id="mirror-removes-vanished-and-moved-from"),
        pytest.param({"v1": ("C", S), "mine": ("D", M)}, {}, TagFilter(), True,
                     {"mine": "D"}, "D", id="mirror-keeps-manual-tags"),
        pytest.param({"v1": ("C", S), "dev": ("D", S)}, {"v1": "C"}, TagFilter(include=("v*",)), True,
                     {"v1": "C", "dev": "D"}, "CD", id="mirror-keeps-tags-outside-filter"),
        pytest.param({"list": ("I", S), "amd": ("A", S)}, {"amd": "A"}, TagFilter(), True,
                     {"amd": "A"}, "A", id="mirror-index-keeps-tagged-child"),
        pytest.param({"list": ("I", S), "c": ("C", S)}, {"c": "C"}, TagFilter(), True,
                     {"c": "C"}, "C", id="mirror-index-removes-untagged-children"),
        pytest.param({"v1": ("A", S), "list": ("I", S)}, {"v1": "C", "list": "I"}, TagFilter(), True,
                     {"v1": "C", "list": "I"}, "ABPC", id="mirror-moved-from-still-listed-by-index"),
        pytest.param({"v1": ("A", S), "pin": ("A", Origin.PIN)}, {"v1": "C"}, TagFilter(), True,
                     {"v1": "C", "pin": "A"}, "AC", id="mirror-moved-from-still-pinned"),
        # issue 17: the old one-off sync only dropped the old target of a tag sync had set
        pytest.param({"v1": ("D", M)}, {"v1": "C"}, TagFilter(), True,
                     {"v1": "C"}, "C", id="mirror-moves-a-hand-made-tag-and-drops-its-old-target"),
    ],
)
def test_sync_changes(before: dict[str, tuple[str, Origin]], upstream: dict[str, str], flt: TagFilter, mirror: bool,
                      want_tags: dict[str, str], want_manifests: str) -> None:
    new = sync(state(before), upstream, flt, mirror)
    assert {n: BY_DIGEST[e.digest] for n, e in new.tags.items()} == want_tags
    assert {BY_DIGEST[m] for m in new.content.manifests} == set(want_manifests)
    # every remaining manifest keeps its blobs and every index its children; nothing dangles
    g = graph()
    for m in new.content.manifests | new.content.indexes:
        assert set(g.children(m)) <= new.content.blobs | new.content.manifests
    for e in new.tags.values():
        assert e.digest in new.content


def test_a_tag_the_upstream_has_becomes_sync_even_on_the_same_digest() -> None:
    """The sync owns the tags it sets: a copied tag the upstream has at the same digest
    takes origin sync (a new version, as repos.yaml always did; the old one-off sync kept
    the copy origin), a moved one too."""
    old = state({"v1": ("C", Origin.COPY), "v2": ("D", M)})
    new = sync(old, {"v1": "C", "v2": "A"})
    assert new.tags["v1"] == TagEntry(NAMES["C"], Origin.SYNC)
    assert new.tags["v2"] == TagEntry(NAMES["A"], Origin.SYNC)


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
