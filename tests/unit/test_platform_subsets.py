"""Platform subsets (pure and store): which index entries a ``PlatformFilter`` follows,
the walk the diff shares with the fetch, and the store's record of children left out on
purpose (every backend: commits, ``store check``, the server's answer, retention)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from reconciler.errors import InvalidInput, StoreError
from reconciler.model import Digest, Index, parse_manifest
from reconciler.model import mediatypes as mt
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.model.platforms import PlatformFilter, parse_platform
from reconciler.ops.cascade import RefGraph
from reconciler.ops.export import export
from reconciler.ops.platforms import skips_under
from reconciler.server import RegistryApp
from reconciler.store.protocol import Store
from tests.support.imagegen import Image, build_image, build_index, canonical, store_image
from tests.support.serving import wsgi_call


def entry(digest: str, platform: dict[str, str] | None, annotations: dict[str, str] | None = None) -> dict[str, object]:
    out: dict[str, object] = {"mediaType": mt.OCI_MANIFEST, "size": 10, "digest": "sha256:" + digest * 64}
    if platform is not None:
        out["platform"] = platform
    if annotations:
        out["annotations"] = annotations
    return out


def index_of(*entries: dict[str, object]) -> Index:
    idx = parse_manifest(canonical({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": list(entries)}))
    assert isinstance(idx, Index)
    return idx


AMD = entry("a", {"os": "linux", "architecture": "amd64"})
ARM64 = entry("b", {"os": "linux", "architecture": "arm64"})            # no variant: v8
ARM64_V8 = entry("c", {"os": "linux", "architecture": "arm64", "variant": "v8"})
ARMV7 = entry("d", {"os": "linux", "architecture": "arm", "variant": "v7"})
ARMV6 = entry("e", {"os": "linux", "architecture": "arm", "variant": "v6"})
AARCH64 = entry("f", {"os": "linux", "architecture": "aarch64"})
WIN = entry("1", {"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2227"})
NONE = entry("2", None)
UNKNOWN = entry("3", {"os": "unknown", "architecture": "unknown"})
ATT_AMD = entry("4", {"os": "unknown", "architecture": "unknown"},
                {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": "sha256:" + "a" * 64})
ATT_ARMV7 = entry("5", {"os": "unknown", "architecture": "unknown"},
                  {"vnd.docker.reference.type": "attestation-manifest",
                   "vnd.docker.reference.digest": "sha256:" + "d" * 64})
ALL = (AMD, ARM64, ARM64_V8, ARMV7, ARMV6, AARCH64, WIN, NONE, UNKNOWN, ATT_AMD, ATT_ARMV7)


def followed(platforms: list[str]) -> str:
    split = PlatformFilter.parse(platforms).split(index_of(*ALL))
    assert {d.digest for d in split.followed} | split.skipped_digests == {d.digest for d in index_of(*ALL).manifests}
    return "".join(str(d.digest)[7] for d in split.followed)


@pytest.mark.parametrize("platforms, kept", [
    (["linux/amd64"], "a234"),                        # amd64, its attestation, the two it cannot judge
    (["linux/arm64"], "bcf23"),                       # every arm64 spelling
    (["linux/arm64/v8"], "bcf23"),                    # v8 is arm64's default variant
    (["linux/arm/v7"], "d235"),
    (["linux/arm"], "de235"),
    (["windows/amd64"], "123"),                       # os.version is not compared
    (["linux/AMD64", "linux/arm/v6"], "ae234"),
    (["linux/x86_64"], "a234"),
], ids=lambda v: str(v))
def test_split_follows_the_selected_platforms_and_their_attestations(platforms: list[str], kept: str) -> None:
    assert followed(platforms) == kept


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "linux/amd64/v8/x", "linux amd64", "unknown/unknown",
                                  "linux/arm64/v8 "[:-1] + "!"])
def test_platform_strings_that_do_not_parse(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_platform(text)
    assert "invalid platform" in info.value.message and "OS/ARCH" in str(info.value.hint)


def test_the_walk_skips_below_nested_indexes_and_keeps_what_another_entry_follows() -> None:
    amd, arm = build_image("w-amd", arch="amd64"), build_image("w-arm", arch="arm64", variant="v8")
    inner = build_index([amd, arm], oci=True)
    outer = index_of({"mediaType": mt.OCI_INDEX, "size": len(inner.manifest.raw), "digest": str(inner.digest)})
    graph = RefGraph.from_manifests([outer, inner.manifest, amd.manifest, arm.manifest])
    indexes = {outer.digest: outer, inner.digest: inner.manifest}
    assert isinstance(inner.manifest, Index)
    skip, entries = skips_under(graph, [outer.digest], indexes, PlatformFilter.parse(["linux/amd64"]))
    assert skip == {arm.digest} and [str(e.platform) for e in entries] == ["linux/arm64/v8"]
    closure = graph.closure([outer.digest], skip)
    assert closure.manifests == {amd.digest} and closure.indexes == {outer.digest, inner.digest}
    assert graph.left_out(closure, skip) == {arm.digest}


def test_store_records_children_left_out_and_refuses_any_other_gap(store: Store) -> None:
    amd, arm = build_image("s-amd", arch="amd64"), build_image("s-arm", arch="arm64", variant="v8")
    idx = build_index([amd, arm])
    store_image(store, idx)
    store.repository_create("r")
    partial = ContentSet(frozenset(Digest.parse(d) for d in amd.blobs), frozenset({amd.digest}),
                         frozenset({idx.digest}))
    tags = {"v1": TagEntry(idx.digest, Origin.SYNC)}
    with pytest.raises(StoreError, match="needs manifest"):
        store.version_commit("r", base=0, content=partial, tags=tags, operation="test")
    # a digest that is not a child of a held index is not recorded (nothing to excuse)
    info = store.version_commit("r", base=0, content=partial, tags=tags, operation="test",
                                absent=[arm.digest, Digest.of(b"unrelated")])
    assert info is not None and info.number == 1
    assert store.version_get("r").absent == {arm.digest}
    assert store.versions_latest()["r"].absent == {arm.digest}
    assert store.version_left_out("r", 1, arm.digest) and not store.version_left_out("r", 1, amd.digest)
    assert store.check().ok, store.check().problems
    # every platform later: the child arrives and the version no longer lists it as absent
    full = partial.union(ContentSet(frozenset(Digest.parse(d) for d in arm.blobs), frozenset({arm.digest})))
    store.version_commit("r", base=1, content=full, tags=tags, operation="test")
    assert store.version_get("r").absent == frozenset()
    assert store.version_get("r", 1).absent == {arm.digest}  # the old version still says what it left out
    assert not store.version_left_out("r", 2, arm.digest)
    assert store.check().ok, store.check().problems
    # removing the child again needs it named as absent (a remaining index lists it)
    with pytest.raises(StoreError, match="still refers to it"):
        store.version_commit("r", base=2, content=partial, tags=tags, operation="test")
    store.version_commit("r", base=2, content=partial, tags=tags, operation="test", absent=[arm.digest])
    assert store.check().ok
    store.versions_drop("r", [1])
    assert store.check().ok, store.check().problems
    store.repository_delete("r")
    assert store.check().ok


def test_server_says_a_child_left_out_was_not_mirrored_and_serves_the_rest(store: Store) -> None:
    amd, arm = build_image("srv-amd", arch="amd64"), build_image("srv-arm", arch="arm64", variant="v8")
    idx = build_index([amd, arm], oci=True)
    store_image(store, idx)
    store.repository_create("r")
    partial = ContentSet(frozenset(Digest.parse(d) for d in amd.blobs), frozenset({amd.digest}),
                         frozenset({idx.digest}))
    info = store.version_commit("r", base=0, content=partial, tags={"v1": TagEntry(idx.digest, Origin.SYNC)},
                                operation="test", absent=[arm.digest])
    assert info is not None
    store.publish("r", name="team/r", version=info.number, protected=False)
    app = RegistryApp(lambda: store)  # not closed here: the fixture owns the store

    def get(ref: str) -> tuple[int, bytes]:
        status, _, body = wsgi_call(app, "GET", f"/v2/team/r/manifests/{ref}", headers={"Accept": mt.ACCEPT_ALL})
        return status, body

    assert get("v1") == (200, idx.manifest.raw)  # the index as it came, listing both platforms
    assert get(str(amd.digest)) == (200, amd.manifest.raw)
    status, body = get(str(arm.digest))
    error = json.loads(body)["errors"][0]
    assert status == 404 and error["code"] == "MANIFEST_UNKNOWN"
    assert "the index lists it, but its platform was not mirrored" in error["message"]
    # any other unknown digest keeps the plain answer
    status, body = get("sha256:" + "0" * 64)
    assert status == 404 and json.loads(body)["errors"][0]["message"] == "manifest unknown"
    status, _, _ = wsgi_call(app, "HEAD", f"/v2/team/r/manifests/{arm.digest}")
    assert status == 404


def _subset(store: Store, oci: bool) -> tuple[Image, Image, Image]:
    """A repository ``r`` holding the arm64 half of a two-platform index, as a sync with
    ``platforms: [linux/arm64]`` leaves it (the amd64 manifest is nowhere in the store)."""
    amd, arm = build_image("x-amd", arch="amd64", oci=oci), build_image("x-arm", arch="arm64", variant="v8", oci=oci)
    idx = build_index([amd, arm], oci=oci)
    store_image(store, arm)
    store.manifest_put(idx.manifest)
    store.repository_create("r")
    held = ContentSet(frozenset(Digest.parse(d) for d in arm.blobs), frozenset({arm.digest}), frozenset({idx.digest}))
    store.version_commit("r", base=0, content=held, tags={"v1": TagEntry(idx.digest, Origin.SYNC)},
                         operation="test", absent=[amd.digest])
    return idx, amd, arm


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: f.read() for m in tar.getmembers() if m.isfile() and (f := tar.extractfile(m)) is not None}


@pytest.mark.parametrize("oci", [False, True], ids=["docker-manifest-list", "oci-index"])
def test_exports_of_a_platform_subset(store: Store, tmp_path: Path, oci: bool) -> None:
    idx, amd, arm = _subset(store, oci)
    # the exact OCI layout: the index byte for byte, only the held platform's content
    export(store, "r", tmp_path / "exact.tar", format="oci")
    exact = _members(tmp_path / "exact.tar")
    assert exact[f"blobs/sha256/{idx.digest.hex}"] == idx.manifest.raw
    assert f"blobs/sha256/{arm.digest.hex}" in exact and f"blobs/sha256/{amd.digest.hex}" not in exact
    # converted for old readers: a Docker list is rebuilt over the platforms held (the other
    # cannot be converted without its bytes); an OCI index needs no conversion and stays as it is
    export(store, "r", tmp_path / "conv.tar", format="oci", convert_docker=True)
    conv = _members(tmp_path / "conv.tar")
    top = json.loads(conv["index.json"])["manifests"][0]
    index_doc = json.loads(conv[f"blobs/sha256/{top['digest'].split(':')[1]}"])
    if oci:
        assert top["digest"] == str(idx.digest)
    else:
        assert index_doc["mediaType"] == mt.OCI_INDEX
        assert [e["platform"]["architecture"] for e in index_doc["manifests"]] == ["arm64"]
    # Crane's static tree: no amd64 fallback for a tag whose amd64 image was not mirrored
    export(store, "r", tmp_path / "crane.tar", format="crane")
    app = json.loads(_members(tmp_path / "crane.tar")["r.json"])
    assert app["manifest_list_amd64_tags"] == {} and app["manifest_list_data"] == [str(idx.digest), "v1"]
