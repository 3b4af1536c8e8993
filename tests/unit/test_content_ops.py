"""tag, copy and remove against a real store: the recipes of pulp_docker's user guide that
need no internet, the rules of docs/original-system.md ("Tag", "Copy", "The cascade
rules"), and one new version per operation."""

from __future__ import annotations

from typing import Literal, TypedDict

import pytest

from reconciler.apply.content_commands import copy_command, remove_command, tag_command
from reconciler.errors import ContentNotFound, RemovalRefused, TagInvalid
from reconciler.model import Digest, Manifest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.ops.cascade import RefGraph
from reconciler.ops.copy import copy_state
from reconciler.ops.state import RepoState
from reconciler.store.protocol import Store
from tests.support import imagegen as ig
from tests.support.narrow import narrow


class Containers(TypedDict):
    multi: ig.IndexImage
    solo: ig.ManifestImage
    loose: ig.ManifestImage


@pytest.fixture
def containers(store: Store) -> Containers:
    """Repository ``containers``: a multi-arch index tagged ``latest``, its amd64 child also
    tagged ``amd64``, a standalone image tagged ``solo``, and an untagged image; the images
    share a base layer."""
    multi = ig.build_multiarch("multi")
    solo = ig.build_image("solo", shared=(b"base",))
    loose = ig.build_image("loose", shared=(b"base",))
    for image in (multi, solo, loose):
        ig.store_image(store, image)
    content = ContentSet()
    for image in (multi, solo, loose):
        content = content.union(RefGraph.from_manifests(image.all_manifests()).closure([image.digest]))
    tags = {"latest": TagEntry(multi.digest, Origin.SYNC), "amd64": TagEntry(multi.children[0].digest, Origin.SYNC),
            "solo": TagEntry(solo.digest, Origin.SYNC)}
    store.repository_create("containers")
    store.version_commit("containers", base=0, content=content, tags=tags, operation="fixture")
    return {"multi": multi, "solo": solo, "loose": loose}


def versions(store: Store, repo: str) -> int:
    return store.repository_get(repo).latest_version


# -- tag ------------------------------------------------------------------------------
def test_tag_creates_then_moves_one_tag_per_name(store: Store, containers: Containers) -> None:
    solo, loose = containers["solo"], containers["loose"]
    r = tag_command(store, "containers", "1.2", str(solo.digest))
    assert r.summary.added["tags"] == 1 and r.version and r.version.number == 2
    r = tag_command(store, "containers", "1.2", loose.digest)
    assert r.details["previous"] == str(solo.digest)
    v = store.version_get("containers")
    assert v.tags["1.2"] == TagEntry(loose.digest, Origin.MANUAL)
    # the same tag again changes nothing and makes no version
    assert not tag_command(store, "containers", "1.2", loose.digest).changed
    assert versions(store, "containers") == 3
    # each version is the command's (what drift calls manual), not an apply's
    assert [v.operation for v in store.version_list("containers")][-2:] == ["tag 1.2", "tag 1.2"]


def test_tag_an_index_and_errors(store: Store, containers: Containers) -> None:
    multi = containers["multi"]
    assert tag_command(store, "containers", "list", multi.digest).changed
    blob = next(iter(multi.children[0].blobs))
    with pytest.raises(ContentNotFound, match="is a blob"):
        tag_command(store, "containers", "x", blob)
    with pytest.raises(ContentNotFound, match="not a manifest or index in"):
        tag_command(store, "containers", "x", Digest.of(b"elsewhere"))
    with pytest.raises(TagInvalid):
        tag_command(store, "containers", "bad tag", multi.digest)


# -- copy: the recipe --------------------------------------------------------------------
def test_copy_all_manifests_copies_their_blobs_and_no_tags(store: Store, containers: Containers) -> None:
    r = copy_command(store, source="containers", target="containers2", kind="manifest", names="all")
    src = store.version_get("containers")
    dst = store.version_get("containers2")
    assert dst.content.manifests == src.content.manifests
    assert dst.content.blobs == src.content.blobs
    assert not dst.content.indexes and not dst.tags
    assert r.summary.added == {"blobs": len(src.content.blobs), "manifests": 5, "indexes": 0, "tags": 0}
    assert versions(store, "containers2") == 1 and r.details["created_target"] is True


def test_copy_index_brings_its_manifests_and_blobs_and_no_tags(store: Store, containers: Containers) -> None:
    multi = containers["multi"]
    copy_command(store, source="containers", target="c2", kind="index", names=[str(multi.digest)])
    dst = store.version_get("c2")
    assert dst.content.indexes == {multi.digest}
    assert dst.content.manifests == {c.digest for c in multi.children}
    assert {str(b) for b in dst.content.blobs} == set(multi.all_blobs())
    assert not dst.tags


@pytest.mark.parametrize("tag,image", [("latest", "multi"), ("solo", "solo")])
def test_copy_tag_brings_everything(store: Store, containers: Containers, tag: str, image: Literal["multi", "solo"]) -> None:
    img = containers[image]
    r = copy_command(store, source="containers", target="c2", kind="tag", names=[tag])
    dst = store.version_get("c2")
    assert dst.tags == {tag: TagEntry(img.digest, Origin.COPY)}
    assert {str(b) for b in dst.content.blobs} == set(img.all_blobs())
    assert r.summary.added["tags"] == 1
    assert store.check().ok


def test_copy_tag_repoints_an_existing_target_tag(store: Store, containers: Containers) -> None:
    copy_command(store, source="containers", target="c2", kind="tag", names=["solo"])
    tag_command(store, "containers", "solo", containers["loose"].digest)
    copy_command(store, source="containers", target="c2", kind="tag", names=["solo"])
    assert store.version_get("c2").tags["solo"].digest == containers["loose"].digest


def test_copy_unknown_names_change_nothing(store: Store, containers: Containers) -> None:
    gen = store.generation()
    with pytest.raises(ContentNotFound, match="nope"):
        copy_command(store, source="containers", target="c2", kind="tag", names=["solo", "nope"])
    with pytest.raises(ContentNotFound, match="is a index|not a manifest"):
        copy_command(store, source="containers", target="c2", kind="manifest", names=[str(containers["multi"].digest)])
    assert store.repository_find("c2") is None and store.generation() == gen


def test_copy_resolves_in_the_source_and_fails_on_a_missing_reference() -> None:
    """The original looked references up globally and silently copied incomplete images."""
    img = ig.build_image("x")
    graph = RefGraph.from_manifests([img.manifest])
    full = graph.closure([img.digest])
    layer = img.manifest.layers[0].digest
    source = RepoState(ContentSet(full.blobs - {layer}, full.manifests), {"t": TagEntry(img.digest)})
    with pytest.raises(ContentNotFound, match=str(layer)):
        copy_state(source, RepoState(), graph, "tag", ["t"])
    # the target already holding the blob does not matter: resolution is in the source
    with pytest.raises(ContentNotFound):
        copy_state(source, RepoState(ContentSet(blobs=frozenset({layer}))), graph, "manifest", "all")


# -- remove: the recipe --------------------------------------------------------------------
def test_remove_tag_removes_only_the_tag(store: Store, containers: Containers) -> None:
    before = store.version_get("containers")
    r = remove_command(store, "containers", "tag", ["latest"])
    after = store.version_get("containers")
    assert after.content == before.content and set(after.tags) == {"amd64", "solo"}
    assert r.summary.removed == {"blobs": 0, "manifests": 0, "indexes": 0, "tags": 1}


def test_remove_index_keeps_tagged_child_and_removes_the_rest(store: Store, containers: Containers) -> None:
    multi = containers["multi"]
    amd64, others = multi.children[0], multi.children[1:]
    r = remove_command(store, "containers", "index", ["latest"])  # a tag name resolves to its index
    v = store.version_get("containers")
    assert multi.digest not in v.content.indexes and "latest" not in v.tags
    assert amd64.digest in v.content.manifests  # still tagged amd64
    assert not {c.digest for c in others} & v.content.manifests
    # the shared base layer stays: solo and loose use it
    base = narrow(Manifest, others[0].manifest).layers[0].digest
    assert base == containers["solo"].manifest.layers[0].digest and base in v.content.blobs
    assert r.summary.removed["manifests"] == 2 and r.summary.removed["tags"] == 1
    assert store.check().ok


def test_remove_manifest_listed_by_an_index_is_refused(store: Store, containers: Containers) -> None:
    multi = containers["multi"]
    gen = store.generation()
    with pytest.raises(RemovalRefused, match=str(multi.digest)):
        remove_command(store, "containers", "manifest", [str(multi.children[1].digest)])
    assert store.generation() == gen


def test_remove_manifest_removes_its_tags_and_unshared_blobs(store: Store, containers: Containers) -> None:
    solo = containers["solo"]
    r = remove_command(store, "containers", "manifest", [str(solo.digest)])
    v = store.version_get("containers")
    assert "solo" not in v.tags and solo.digest not in v.content.manifests
    base = solo.manifest.layers[0].digest
    assert base in v.content.blobs  # shared with loose
    assert r.summary.removed["blobs"] == len(solo.blobs) - 1
    assert versions(store, "containers") == 2


def test_remove_unknown_names_are_all_listed(store: Store, containers: Containers) -> None:
    with pytest.raises(ContentNotFound, match="nope.*gone|gone.*nope"):
        remove_command(store, "containers", "tag", ["solo", "nope", "gone"])
    assert versions(store, "containers") == 1
