"""Table tests for the cascade rules (docs/original-system.md, "The cascade rules") over a
small hand-made reference graph. Names stand for digests so the tables read like the
rules.

    tags:     latest -> I1, a -> mA, d -> mD, nest -> I3
    I3 (OCI index) lists I1 and mE
    I1 lists mA, mB        I2 lists mB, mC
    mA: b1 b2 cA   mB: b1 b3   mC: b4   mD: b5 b1   mE: b6
    loose: an orphan blob nothing references
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from reconciler.errors import RemovalRefused
from reconciler.model import Digest
from reconciler.model.content import ContentSet, Kind, Origin, TagEntry
from reconciler.ops.cascade import RefGraph, cascade_remove, missing_references, unreferenced
from reconciler.ops.state import RepoState


def D(name: str) -> Digest:
    return Digest("sha256", hashlib.sha256(name.encode()).hexdigest())


NAMES = {D(n): n for n in "I1 I2 I3 mA mB mC mD mE b1 b2 b3 b4 b5 b6 cA loose".split()}
MANIFESTS = {"mA": ["b1", "b2", "cA"], "mB": ["b1", "b3"], "mC": ["b4"], "mD": ["b5", "b1"], "mE": ["b6"]}
INDEXES = {"I1": ["mA", "mB"], "I2": ["mB", "mC"], "I3": ["I1", "mE"]}
TAGS = {"latest": "I1", "a": "mA", "d": "mD", "nest": "I3"}


def graph() -> RefGraph:
    nodes = {D(m): (Kind.MANIFEST, [D(b) for b in bs]) for m, bs in MANIFESTS.items()}
    nodes |= {D(i): (Kind.INDEX, [D(c) for c in cs]) for i, cs in INDEXES.items()}
    return RefGraph(nodes)


def state() -> RepoState:
    blobs = {D(b) for bs in MANIFESTS.values() for b in bs} | {D("loose")}
    content = ContentSet(frozenset(blobs), frozenset(map(D, MANIFESTS)), frozenset(map(D, INDEXES)))
    return RepoState(content, {t: TagEntry(D(target), Origin.SYNC) for t, target in TAGS.items()})


def names(digests: frozenset[Digest]) -> set[str]:
    return {NAMES[d] for d in digests}


# (id, kwargs, removed tags, removed indexes, removed manifests, removed blobs)
CASES = [
    ("tag-removes-only-the-tag", dict(tags=["a"]), {"a"}, set(), set(), set()),
    ("tag-of-index-removes-only-the-tag", dict(tags=["latest"]), {"latest"}, set(), set(), set()),
    ("manifest-removes-its-tags-and-blobs-no-other-manifest-uses", dict(manifests=["mD"]), {"d"}, set(), {"mD"}, {"b5"}),
    ("tag-and-its-manifest-in-one-call", dict(tags=["d"], manifests=["mD"]), {"d"}, set(), {"mD"}, {"b5"}),
    ("index-keeps-tagged-manifest-and-manifest-listed-elsewhere",
     dict(indexes=["I3", "I1"]), {"latest", "nest"}, {"I1", "I3"}, {"mE"}, {"b6"}),
    ("two-indexes-remove-untagged-unlisted-manifests-and-orphan-blobs",
     dict(indexes=["I1", "I2", "I3"]), {"latest", "nest"}, {"I1", "I2", "I3"}, {"mB", "mC", "mE"},
     {"b3", "b4", "b6"}),
    ("index-and-the-tag-of-its-manifest-in-one-call",
     dict(indexes=["I1", "I3"], tags=["a"]), {"latest", "nest", "a"}, {"I1", "I3"}, {"mA", "mE"}, {"b2", "cA", "b6"}),
    ("nested-index-keeps-a-tagged-child-index", dict(indexes=["I3"]), {"nest"}, {"I3"}, {"mE"}, {"b6"}),
    ("nested-index-cascades-into-untagged-child-index",
     dict(indexes=["I3"], tags=["latest"]), {"nest", "latest"}, {"I3", "I1"}, {"mE"}, {"b6"}),
    ("manifest-listed-by-removed-index-in-same-call",
     dict(indexes=["I1", "I2", "I3"], manifests=["mB"]), {"latest", "nest"}, {"I1", "I2", "I3"},
     {"mB", "mC", "mE"}, {"b3", "b4", "b6"}),
    ("mirror-rule-tag-with-unneeded-target", dict(tags=["d"], with_targets=True), {"d"}, set(), {"mD"}, {"b5"}),
    ("mirror-rule-target-still-listed-stays", dict(tags=["a"], with_targets=True), {"a"}, set(), set(), set()),
]


@pytest.mark.parametrize("kwargs,tags,indexes,manifests,blobs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cascade_remove(kwargs: dict[str, Any], tags: set[str], indexes: set[str], manifests: set[str],
                        blobs: set[str]) -> None:
    args = dict(kwargs)  # cascade_remove keyword arguments, the digests by name
    for key in ("manifests", "indexes"):
        if key in args:
            args[key] = [D(n) for n in args[key]]
    before = state()
    removal = cascade_remove(before, graph(), **args)
    assert set(removal.tags) == tags
    assert names(removal.indexes) == indexes
    assert names(removal.manifests) == manifests
    assert names(removal.blobs) == blobs
    # the new state is the old one minus exactly what was reported
    assert removal.state.content == before.content.difference(removal.content)
    assert set(removal.state.tags) == set(before.tags) - tags
    # and the remaining content is complete: every remaining tag's closure is still there
    for entry in removal.state.tags.values():
        assert not missing_references(removal.state, graph(), [entry.digest])


REFUSED = [
    ("manifest-listed-by-one-index", dict(manifests=["mA"]), ["I1"]),
    ("manifest-listed-by-two-indexes", dict(manifests=["mB"]), ["I1", "I2"]),
    ("manifest-listed-by-index-not-removed", dict(manifests=["mB"], indexes=["I2"]), ["I1"]),
    ("child-index-of-a-remaining-index", dict(indexes=["I1"]), ["I3"]),
]


@pytest.mark.parametrize("kwargs,listing", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_removal_refused_names_the_indexes(kwargs: dict[str, list[str]], listing: list[str]) -> None:
    args: dict[str, Any] = {k: [D(n) for n in v] for k, v in kwargs.items()}
    with pytest.raises(RemovalRefused) as info:
        cascade_remove(state(), graph(), **args)
    for index in listing:
        assert str(D(index)) in info.value.message
    others = {"I1", "I2", "I3"} - set(listing)
    for index in others:
        assert f"index {D(index)}" not in info.value.message


def test_unreferenced_is_what_no_tag_needs() -> None:
    s = state().without_tags(["a", "d"])
    assert names(unreferenced(s, graph()).manifests) == {"mC", "mD"}
    assert names(unreferenced(s, graph()).indexes) == {"I2"}
    assert names(unreferenced(s, graph()).blobs) == {"b4", "b5", "loose"}


def test_closure_of_index_and_missing_references() -> None:
    g = graph()
    c = g.closure([D("I3")])
    assert names(c.indexes) == {"I3", "I1"}
    assert names(c.manifests) == {"mA", "mB", "mE"}
    assert names(c.blobs) == {"b1", "b2", "b3", "cA", "b6"}
    partial = state().without_content(ContentSet(blobs=frozenset({D("b6")})))
    assert names(missing_references(partial, g, [D("I3")]).blobs) == {"b6"}
