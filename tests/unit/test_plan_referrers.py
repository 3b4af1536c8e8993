"""The plan's referrer lines (pure): one ``SyncReferrers`` per tag with referrers the
repository lacks, recursive, deduplicated between tags; nothing when all are held; prune
keeps referrers, and keeps what may be one while the upstream cannot be seen."""

from __future__ import annotations

import dataclasses
from typing import Unpack

from reconciler.model import Digest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.model.referrers import ReferrerPolicy
from reconciler.ops.cascade import RefGraph
from reconciler.ops.referrers import Found
from reconciler.ops.state import RepoState
from reconciler.plan.actions import RemoveContent, RemoveTag, SyncReferrers, SyncTag
from reconciler.plan.diff import diff
from reconciler.plan.observed import Observed
from reconciler.plan.render_text import action_line
from reconciler.plan.steps import run_step
from tests.support import supplychain as sc
from tests.support.planworld import IMAGES, RepositorySpec, SpecFields, desired, digest, observed, repo, synced

IMAGE = digest("a")
IMG = IMAGES["a"]
SIG = sc.cosign_signature(IMG)
SBOM = sc.oci_referrer(IMG, sc.SPDX, b'{"spdxVersion":"SPDX-2.3"}')
SBOM_SIG = sc.oci_referrer(SBOM, sc.SIGSTORE_BUNDLE, b'{"b":1}')
SIG_TAG = sc.cosign_tag(IMAGE)
FOUND = {IMAGE: (Found(IMAGE, SIG.digest, sc.SIMPLE_SIGNING, SIG_TAG), Found(IMAGE, SBOM.digest, sc.SPDX)),
         SBOM.digest: (Found(SBOM.digest, SBOM_SIG.digest, sc.SIGSTORE_BUNDLE),)}


def world(held: RepoState | None, *, error: str | None = None, referrers_error: str | None = None) -> Observed:
    base = observed({"r": repo("r", held)} if held is not None else {}, {"r": {"1.0": "a", "latest": "a"}})
    up = base.upstreams["r"]
    up = dataclasses.replace(up, referrers=FOUND, error=error, referrers_error=referrers_error)
    graph = base.graph.merged(RefGraph.from_manifests([SIG.manifest, SBOM.manifest, SBOM_SIG.manifest]))
    return dataclasses.replace(base, upstreams={"r": up}, graph=graph)


def spec(**kw: Unpack[SpecFields]) -> RepositorySpec:
    """Repository ``r``, synced with referrers on (``kw`` sets the rest)."""
    fields: SpecFields = {"referrers": ReferrerPolicy(), **kw}
    return synced("r", **fields)


def held_everything() -> RepoState:
    content = ContentSet(frozenset(Digest.parse(d) for img in (IMG, SIG, SBOM, SBOM_SIG) for d in img.all_blobs()),
                         frozenset({IMAGE, SIG.digest, SBOM.digest, SBOM_SIG.digest}))
    return RepoState(content, {"1.0": TagEntry(IMAGE, Origin.SYNC), "latest": TagEntry(IMAGE, Origin.SYNC),
                               SIG_TAG: TagEntry(SIG.digest, Origin.SYNC)})


def test_one_line_per_image_recursive_and_once() -> None:
    plan = diff(desired(spec()), world(None))
    refs = [a for a in plan.actions if isinstance(a, SyncReferrers)]
    assert len(refs) == 1 and refs[0].tag == "1.0"  # latest points at the same image: nothing left for it
    a = refs[0]
    assert set(a.digests) == {SIG.digest, SBOM.digest, SBOM_SIG.digest}
    assert a.referrer_tags == {SIG_TAG: str(SIG.digest)}
    assert a.depends_on[-1] == "r/sync_tag/1.0"
    assert action_line(a).startswith("3 referrers of 1.0: signature, SBOM")
    assert a.adds["manifests"] == 3 and a.adds["tags"] == 1


def test_nothing_when_all_are_held_and_prune_keeps_them() -> None:
    plan = diff(desired(spec(prune=True)), world(held_everything()))
    assert [a for a in plan.actions if isinstance(a, (SyncReferrers, RemoveTag, RemoveContent))] == []


def test_while_the_upstream_cannot_be_seen_prune_keeps_what_may_be_a_referrer() -> None:
    for obs in (world(held_everything(), error="connection refused"),
                world(held_everything(), referrers_error="GET .../referrers: 500")):
        plan = diff(desired(spec(prune=True)), obs)
        assert [a for a in plan.actions if isinstance(a, (SyncReferrers, RemoveTag, RemoveContent))] == []
    plan = diff(desired(spec(prune=True)), world(held_everything(), referrers_error="GET .../referrers: 500"))
    assert any("referrers of its images could not be looked up" in w for w in plan.warnings)


def test_off_adds_nothing_and_prune_then_removes_the_untagged_ones() -> None:
    plan = diff(desired(synced("r", referrers=ReferrerPolicy(False), prune=True)), world(held_everything()))
    assert [a for a in plan.actions if isinstance(a, SyncReferrers)] == []
    # the cosign tag is a synced tag: an additive sync keeps it, as any synced tag
    assert [a for a in plan.actions if isinstance(a, RemoveTag)] == []
    removed = [a for a in plan.actions if isinstance(a, RemoveContent)]
    assert len(removed) == 1 and set(removed[0].digests) == {SBOM.digest, SBOM_SIG.digest}


def test_with_prune_the_referrers_of_an_image_no_longer_synced_go() -> None:
    from reconciler.model.tagfilter import TagFilter

    # upstream 1.0 moved from a (signed, with an SBOM) to b; a mirror with prune follows
    obs = world(held_everything())
    up = dataclasses.replace(obs.upstreams["r"], tags={"1.0": digest("b"), "latest": digest("b")}, referrers={})
    obs = dataclasses.replace(obs, upstreams={"r": up})
    plan = diff(desired(spec(prune=True, mirror=True, tag_filter=TagFilter(("1.*", "latest")))), obs)
    # the mirror's cascade drops the old image, and its referrers and cosign tag follow it
    # (the cascade follows subjects), so prune has nothing of them left to do
    assert [a for a in plan.actions if isinstance(a, (RemoveTag, RemoveContent))] == []
    state = held_everything()
    for a in plan.actions:
        if isinstance(a, SyncTag):
            state = run_step(a, state, obs.graph).state
    assert set(state.tags) == {"1.0", "latest"}
    assert not {IMAGE, SIG.digest, SBOM.digest, SBOM_SIG.digest} & state.content.manifests
