"""The shortcuts a big plan takes give what the long way gives.

``RefGraph.closure`` of image manifests is the union of each manifest's blob set instead
of the walk; ``TagFilter.matching`` of a filter of plain names is set operations instead
of ``matches`` per tag. A user would notice a difference as content pruned or kept
wrongly, or a tag synced or left alone wrongly, so for generated graphs, roots, filters
and tag lists both ways must agree exactly (kinds included), including the odd graphs
the shortcut hands back to the walk: a digest that is a blob of one manifest and a tag's
manifest, a manifest listing a node, kinds an index recorded.
"""

from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model import Digest
from reconciler.model.content import ContentSet, Kind
from reconciler.model.referrers import is_cosign_tag
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.cascade import RefGraph
from reconciler.plan.diff_referrers import _ENDS_LIKE_COSIGN

PROPS = settings(derandomize=True, max_examples=400, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


def D(n: int) -> Digest:
    return Digest("sha256", hashlib.sha256(str(n).encode()).hexdigest())


_NODES = st.dictionaries(st.integers(0, 15), st.tuples(st.sampled_from([Kind.MANIFEST, Kind.INDEX]),
                                                       st.lists(st.integers(0, 25), max_size=4)), max_size=8)
_KINDS = st.dictionaries(st.integers(0, 25), st.sampled_from(list(Kind)), max_size=4)


@PROPS
@given(nodes=_NODES, kinds=_KINDS, roots=st.lists(st.lists(st.integers(0, 25), max_size=6), min_size=1, max_size=4),
       skip=st.frozensets(st.integers(0, 25), max_size=3))
def test_closure_gives_what_the_walk_gives(nodes: dict[int, tuple[Kind, list[int]]], kinds: dict[int, Kind],
                                           roots: list[list[int]], skip: frozenset[int]) -> None:
    graph = RefGraph({D(n): (k, [D(c) for c in cs]) for n, (k, cs) in nodes.items()},
                     {D(n): k for n, k in kinds.items()})
    for some in roots:  # several closures of one graph: the per-manifest sets are reused
        digests = [D(r) for r in some]
        assert graph.closure(digests, {D(s) for s in skip}) == graph._walk(digests, {D(s) for s in skip})


def test_the_shortcut_is_taken_for_plain_manifests_and_left_for_the_rest() -> None:
    graph = RefGraph({D(1): (Kind.MANIFEST, [D(10), D(11)]), D(2): (Kind.MANIFEST, [D(10), D(12)]),
                      D(3): (Kind.INDEX, [D(1), D(4)]), D(5): (Kind.MANIFEST, [D(1)])})
    assert graph._manifests_closure((D(1), D(2), D(6))) == ContentSet(
        frozenset({D(10), D(11), D(12)}), frozenset({D(1), D(2), D(6)}))
    assert graph._manifests_closure((D(1), D(3))) is None  # an index
    assert graph._manifests_closure((D(5),)) is None  # a manifest listing a node
    assert graph._manifests_closure((D(1), D(10))) is None  # D(10): a blob of D(1) and a tag's manifest


_TAGS = st.lists(st.sampled_from(["t0", "t1", "v1.2", "latest", "sha256-" + "a" * 64 + ".sig", "x"]), max_size=8)
_PATTERNS = st.lists(st.sampled_from(["t0", "t1", "latest", "v1.2", "nope", "t*", "re:v.*"]), max_size=4)


@PROPS
@given(tags=_TAGS, include=_PATTERNS, exclude=_PATTERNS, semver=st.sampled_from([None, ">=1"]))
def test_matching_gives_what_matches_gives(tags: list[str], include: list[str], exclude: list[str],
                                           semver: str | None) -> None:
    f = TagFilter(tuple(include), tuple(exclude), semver=semver)
    assert f.matching(tags) == {t for t in tags if f.matches(t)}


@PROPS
@given(name=st.one_of(st.text(max_size=80), st.builds(
    lambda h, s: f"sha256-{h}{s}", st.text("0123456789abcdef", min_size=63, max_size=65),
    st.sampled_from([".sig", ".att", ".sbom", ".sig.x", ".SIG", "", ".att."]))))
def test_every_cosign_tag_has_one_of_the_endings(name: str) -> None:
    assert (_ENDS_LIKE_COSIGN(name) and is_cosign_tag(name)) == is_cosign_tag(name)
