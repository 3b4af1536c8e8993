"""Pushing below the network (issue 23). Referrers go along with a push: what the plan puts in
``push_referrers`` actions (OCI 1.1 referrers of an image and of theirs, cosign's tags
with the image they sign whatever ``tags`` selects), and how ``ops.push.push_referrers``
makes a target list them: its referrers API (``OCI-Subject`` answered) or the referrers
tag schema's index, extended without losing what others listed there. The target is an
in-memory registry (the distribution registry of the integration tests has no referrers
API, so that side is proved here). And the walk's and prune's care at the target: no
manifest HEAD where the answer is known, no deletion of a tag someone moved since."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.desired.model import DesiredState, PushSpec, RepositorySpec
from reconciler.model import Descriptor, Digest, Index, Manifest
from reconciler.model.content import TagEntry
from reconciler.model.registry import RegistryConfig
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.graph import load_graph, with_closure
from reconciler.ops.push import push_referrers, push_tags
from reconciler.ops.state import RepoState
from reconciler.plan.actions import PushReferrers, PushTag
from reconciler.plan.model import Plan, RepoSummary
from reconciler.plan.observe import refresh
from reconciler.plan.pushes import plan_pushes
from reconciler.plan.render_text import render_text
from reconciler.registry.protocol import RequestStats
from reconciler.store.sqlite import SQLiteStore
from tests.support import supplychain as sc
from tests.support.imagegen import Image, build_image, store_image

HARBOR = RegistryConfig(url="https://harbor.example.com", name="harbor")
IMAGE = build_image("push-ref", oci=True)
SIG = sc.cosign_signature(IMAGE)
SIG_TAG = sc.cosign_tag(IMAGE.digest)
SBOM = sc.oci_referrer(IMAGE, sc.SPDX, b'{"spdxVersion":"SPDX-2.3"}')
SBOM_SIG = sc.oci_referrer(SBOM, sc.SIGSTORE_BUNDLE, b'{"bundle":1}')
OTHER = build_image("push-ref-other", oci=True)


class MemRegistry:
    """A target registry in memory (one repository), with or without the referrers API."""

    def __init__(self, *, api: bool) -> None:
        self.api = api
        self.blobs: set[Digest] = set()
        self.manifests: dict[Digest, Manifest | Index] = {}
        self.tags: dict[str, Digest] = {}
        #: blob answers heard (``blob_known``), as the push client keeps them
        self.heard: dict[Digest, bool] = {}
        self.stats = RequestStats()
        self.base = HARBOR.url

    def hold(self, image: Image, tag: str | None = None) -> None:
        self.blobs |= {Digest.parse(d) for d in image.all_blobs()}
        self.manifests.update({m.digest: m for m in image.all_manifests()})
        if tag:
            self.tags[tag] = image.digest

    def push_target(self, spec: RegistryConfig) -> MemRegistry:
        return self

    def manifest_exists(self, name: str, reference: str) -> Digest | None:
        self.stats.add("manifest_head")
        if ":" in reference:
            return Digest.parse(reference) if Digest.parse(reference) in self.manifests else None
        return self.tags.get(reference)

    def manifest_read(self, name: str, reference: str) -> Manifest | Index | None:
        self.stats.add("manifest_get")
        d = self.manifest_exists(name, reference)
        return self.manifests[d] if d is not None else None

    def blob_exists(self, name: str, digest: Digest) -> bool:
        if digest in self.heard:  # as the push client: an answer heard is not asked again
            return self.heard[digest]
        self.stats.add("blob_head")
        self.heard[digest] = digest in self.blobs
        return self.heard[digest]

    def blob_known(self, name: str, digest: Digest) -> bool | None:
        return self.heard.get(digest)

    def blob_mount(self, name: str, digest: Digest, from_name: str) -> bool:
        return False

    def blob_upload(self, name: str, digest: Digest, chunks: Iterator[bytes], size: int | None) -> int:
        self.stats.add("upload")
        n = sum(len(c) for c in chunks)
        self.blobs.add(digest)
        self.heard[digest] = True
        return n

    def manifest_put(self, name: str, reference: str, manifest: Manifest | Index) -> Digest | None:
        self.stats.add("manifest_put")
        missing = [b.digest for b in manifest.blobs()] if isinstance(manifest, Manifest) else []
        assert not [d for d in missing if d not in self.blobs], "a manifest put before its blobs"
        self.manifests[manifest.digest] = manifest
        if ":" not in reference:
            self.tags[reference] = manifest.digest
        return manifest.subject.digest if self.api and manifest.subject is not None else None

    def referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        self.stats.add("referrers")
        if not self.api:
            return None
        return [Descriptor(m.media_type, m.digest, len(m.raw)) for m in self.manifests.values()
                if m.subject is not None and m.subject.digest == digest]

    def tag_delete(self, name: str, tag: str) -> None:
        self.tags.pop(tag, None)

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """Repository ``app``: 1.0 (signed with cosign's tag), its SBOM and the SBOM's
    signature (OCI 1.1 referrers, untagged), and 2.0 (nothing refers to it)."""
    s = SQLiteStore(tmp_path / "store")
    s.repository_create("app")
    images = [IMAGE, SIG, SBOM, SBOM_SIG, OTHER]
    for image in images:
        store_image(s, image)
    roots = [i.digest for i in images]
    content = with_closure(s, load_graph(s, RepoState().content), roots).closure(roots)
    s.version_commit("app", base=0, content=content, operation="test",
                     tags={"1.0": TagEntry(IMAGE.digest), SIG_TAG: TagEntry(SIG.digest), "2.0": TagEntry(OTHER.digest)})
    yield s
    s.close()


def plan_for(store: SQLiteStore, target: MemRegistry, tags: tuple[str, ...] = ("1.0",)) -> Plan:
    spec = PushSpec(HARBOR, "team/app", TagFilter(tags))
    desired = DesiredState(path=Path("repos.yaml"), digest="", version=1, registries={"harbor": HARBOR},
                           repositories={"app": RepositorySpec(id="app", push=(spec,))})
    observed = refresh(store, desired, None, upstreams=False)
    plan = Plan(desired_path="repos.yaml", desired_digest="", store_generation=observed.generation,
                repositories=(RepoSummary("app", "="),))
    return plan_pushes(plan, observed, desired, store, target)


def test_a_pushed_image_takes_its_referrers_and_its_cosign_tag(store: SQLiteStore) -> None:
    target = MemRegistry(api=False)
    plan = plan_for(store, target)
    pushes = {a.tag: a for a in plan.actions if isinstance(a, PushTag)}
    assert set(pushes) == {"1.0", SIG_TAG}  # the filter selects 1.0; its signature's tag goes along
    [refs] = [a for a in plan.actions if isinstance(a, PushReferrers)]
    assert refs.tag == "1.0" and refs.digest == IMAGE.digest
    assert refs.digests == (SBOM.digest, SBOM_SIG.digest)  # each after its subject
    assert refs.depends_on == (pushes["1.0"].id,)
    assert "push 2 referrers of 1.0 -> harbor/team/app: signature, SBOM" in render_text(plan, refresh_line=False)
    # the tag is new there: its referrers are planned without asking (the walk HEADs them)
    assert target.stats.counts["manifest_head"] == 2  # (and a HEAD per blob of the tags pushed)


def test_referrers_the_target_lacks_are_planned_alone_and_none_when_it_has_them(store: SQLiteStore) -> None:
    target = MemRegistry(api=False)
    target.hold(IMAGE, "1.0")
    target.hold(SIG, SIG_TAG)
    target.hold(SBOM)
    plan = plan_for(store, target)
    assert [(type(a), a.digests) for a in plan.actions] == [(PushReferrers, (SBOM_SIG.digest,))]  # type: ignore[union-attr]
    target.hold(SBOM_SIG)
    target.stats = RequestStats()
    assert plan_for(store, target).actions == ()
    assert target.stats.counts == {"manifest_head": 4}  # a HEAD per tag and per referrer


@pytest.mark.parametrize("api", [False, True])
def test_the_target_lists_the_referrers_by_its_api_or_the_tag_schema(store: SQLiteStore, api: bool) -> None:
    target = MemRegistry(api=api)
    target.hold(IMAGE, "1.0")
    foreign = sc.oci_referrer(IMAGE, sc.IN_TOTO, b'{"someone":"else"}')
    if not api:  # someone else's referrer, listed in the tag schema's index already: kept
        target.hold(foreign)
        target.hold(sc.tag_schema_index([foreign]), sc.tag_schema_tag(IMAGE.digest))
    version = store.version_get("app")
    got = push_referrers(store, version, target, "team/app", [SBOM.digest, SBOM_SIG.digest])
    assert got.pushed == 2 and {SBOM.digest, SBOM_SIG.digest} <= set(target.manifests)
    assert Digest.parse(next(iter(SBOM.all_blobs()))) in target.blobs
    if api:
        assert got.listed_by == "api" and not [t for t in target.tags if t.startswith("sha256-")]
        return
    assert got.listed_by == "tag schema" and got.indexes == 2

    def listed(subject: Image) -> list[str]:
        index = target.manifests[target.tags[sc.tag_schema_tag(subject.digest)]]
        return [e["digest"] for e in json.loads(index.raw)["manifests"]]

    assert listed(IMAGE) == [str(foreign.digest), str(SBOM.digest)]
    assert listed(SBOM) == [str(SBOM_SIG.digest)]
    again = push_referrers(store, version, target, "team/app", [SBOM.digest])  # listed already: nothing put
    assert again.indexes == 0 and listed(IMAGE) == [str(foreign.digest), str(SBOM.digest)]


def test_a_referrer_the_version_no_longer_holds_makes_the_plan_stale(store: SQLiteStore) -> None:
    from reconciler.errors import StalePlan

    with pytest.raises(StalePlan, match="no longer holds the referrer"):
        push_referrers(store, store.version_get("app"), MemRegistry(api=True), "team/app",
                       [sc.oci_referrer(OTHER, sc.SPDX, b"{}").digest])


def test_a_manifest_with_a_blob_the_target_lacks_is_put_without_asking(store: SQLiteStore) -> None:
    """The plan's blob HEADs said the target lacks them: the walk sends no manifest HEAD
    for an image whose blob is missing (a registry holding a manifest holds its blobs)."""
    target = MemRegistry(api=False)
    for d in OTHER.all_blobs():
        target.blob_exists("team/app", Digest.parse(d))
    target.stats = RequestStats()
    push_tags(store, store.version_get("app"), target, "team/app", {"2.0": OTHER.digest})
    assert target.tags["2.0"] == OTHER.digest
    assert "manifest_head" not in target.stats.counts and "blob_head" not in target.stats.counts
    assert target.stats.counts == {"upload": len(OTHER.all_blobs()), "manifest_put": 1}


def test_prune_deletes_a_tag_only_while_it_is_where_we_left_it(store: SQLiteStore) -> None:
    """A saved plan may be applied hours later: a tag someone pushed again since is theirs."""
    from reconciler.model.registry import registry_key
    from reconciler.ops.push import delete_tags

    target = MemRegistry(api=False)
    target.hold(IMAGE, "old")
    target.hold(OTHER, "moved")  # we pushed IMAGE as "moved"; someone pushed OTHER there since
    key = registry_key(target.base)
    for tag in ("old", "moved", "gone"):
        store.push_record(key, "team/app", tag, IMAGE.digest)
    deleted, left = delete_tags(store, target, "team/app", {t: IMAGE.digest for t in ("old", "moved", "gone")})
    assert (deleted, left) == (["old"], ["moved"])
    assert target.tags == {"moved": OTHER.digest}
    assert store.pushed(key) == []  # none of them is ours any more
