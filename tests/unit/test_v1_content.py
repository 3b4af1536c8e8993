"""Docker v1 images as content: upload of docker save tarballs (both layouts, --mask-id),
the store's v1 invariants, copy, remove, export crane-v1, check and gc."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import ContentNotFound, InvalidInput, RemovalRefused, StoreError, UploadInvalid
from reconciler.model.content import V1Content
from reconciler.ops import export as export_ops
from reconciler.ops.v1.content import copy_v1, remove_v1
from reconciler.ops.v1.upload import inspect_v1, upload_v1
from reconciler.store.protocol import Store
from tests.support.archives import member_bytes, write_tar
from tests.support.backends import sql_backend
from tests.support.narrow import narrow
from tests.support.v1images import build_chain, v1_save_files, v1_save_tar

CHAIN = build_chain("tutorial", tags={"latest": 4, "base": 1})


@pytest.fixture
def busybox(store: Store, tmp_path: Path) -> Store:
    upload_v1(store, "busybox", v1_save_tar(tmp_path / "busybox.tar", CHAIN))
    return store


@pytest.mark.parametrize("modern", [False, True], ids=["legacy-layout", "manifest-json-layout"])
def test_upload_imports_every_image_with_parents_and_tags(store: Store, tmp_path: Path, modern: bool) -> None:
    result = upload_v1(store, "busybox", v1_save_tar(tmp_path / "b.tar", CHAIN, modern=modern))
    assert result.summary.added == {"v1_images": 5, "v1_tags": 2}
    v1 = store.v1_version_get("busybox")
    assert v1.images == set(CHAIN.ids)
    assert dict(v1.tags) == {"latest": CHAIN.ids[4], "base": CHAIN.ids[1]}
    leaf = store.v1_image_get(CHAIN.leaf)
    assert leaf.json == CHAIN.jsons[CHAIN.leaf]  # byte for byte
    assert list(leaf.ancestry) == CHAIN.ancestry(CHAIN.leaf)
    with store.blob_open(leaf.layer) as f:
        assert gzip.decompress(f.read()) == CHAIN.layers[CHAIN.leaf]
    assert store.check().ok


def test_a_gzipped_layer_without_a_declared_size_records_its_uncompressed_size(store: Store, tmp_path: Path) -> None:
    """An image JSON without ``Size`` takes the layer's size: the uncompressed one (what
    ``Size`` means in v1), also for a layer saved gzip'd, which is stored as it is. The
    gzip'd size was recorded before."""
    import dataclasses

    chain = build_chain("sizes", length=2)
    jsons = {i: json.dumps({k: v for k, v in json.loads(raw).items() if k != "Size"}).encode()
             for i, raw in chain.jsons.items()}
    layers = {i: gzip.compress(layer, mtime=0) for i, layer in chain.layers.items()}
    upload_v1(store, "sizes", v1_save_tar(tmp_path / "s.tar", dataclasses.replace(chain, jsons=jsons, layers=layers)))
    for image_id in chain.ids:
        image = store.v1_image_get(image_id)
        assert image.size == len(chain.layers[image_id]) != len(layers[image_id])
        assert store.blob_size(image.layer) == len(layers[image_id])  # kept as saved


def test_tags_come_from_manifest_json_when_repositories_is_absent(store: Store, tmp_path: Path) -> None:
    path = v1_save_tar(tmp_path / "b.tar", CHAIN, modern=True, repositories=False)
    upload_v1(store, "busybox", path)
    assert dict(store.v1_version_get("busybox").tags) == {"latest": CHAIN.ids[4], "base": CHAIN.ids[1]}


def test_mask_id_skips_the_masked_image_and_all_its_ancestors(store: Store, tmp_path: Path) -> None:
    """The recipe: five images in the tar, masked at the third, two imported."""
    path = v1_save_tar(tmp_path / "tutorial.tar", CHAIN)
    result = upload_v1(store, "tutorial", path, mask_id=CHAIN.ids[2])
    v1 = store.v1_version_get("tutorial")
    assert v1.images == {CHAIN.ids[3], CHAIN.ids[4]}
    assert result.summary.added["v1_images"] == 2
    assert v1.masked == {CHAIN.ids[2]}
    # the tag on a masked image is not imported (it would dangle), and the user is told
    assert dict(v1.tags) == {"latest": CHAIN.leaf}
    assert any("base" in n for n in narrow(list, result.details["notes"]))
    assert store.check().ok
    assert inspect_v1(path, mask_id=CHAIN.ids[2]).images == (CHAIN.ids[3], CHAIN.ids[4])


def test_retagging_replaces_the_v1_tag(busybox: Store, tmp_path: Path) -> None:
    other = build_chain("tutorial", tags={"latest": 2})
    upload_v1(busybox, "busybox", v1_save_tar(tmp_path / "o.tar", other))
    assert busybox.v1_version_get("busybox").tags["latest"] == CHAIN.ids[2]


def test_v1_and_oci_sides_share_version_numbers_and_carry_over(busybox: Store) -> None:
    from reconciler.ops.state import RepoState  # noqa: PLC0415 - only here
    before = busybox.version_get("busybox")
    assert before.number == 1 and not before.content and not before.tags
    busybox.version_commit("busybox", base=1, content=RepoState().content, tags={}, operation="noop")
    remove_v1(busybox, "busybox", "tag", ["base"])
    assert busybox.repository_get("busybox").latest_version == 2
    assert busybox.v1_version_get("busybox", 1).tags.keys() == {"latest", "base"}  # old versions unchanged
    assert busybox.v1_version_get("busybox", 2).tags.keys() == {"latest"}


@pytest.mark.parametrize("content, message", [
    (V1Content(frozenset(CHAIN.ids[3:])), "needs its parent"),
    (V1Content(frozenset(CHAIN.ids), {"x": "0" * 64}), "points at image"),
    (V1Content(frozenset(CHAIN.ids + ("1" * 64,))), "not in the store"),
], ids=["parent-missing", "tag-dangling", "image-unknown"])
def test_store_refuses_an_inconsistent_v1_version(busybox: Store, content: V1Content, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        busybox.v1_commit("busybox", base=1, content=content, operation="bad")
    assert busybox.repository_get("busybox").latest_version == 1


def test_upload_refuses_a_chain_whose_parent_is_nowhere(store: Store, tmp_path: Path) -> None:
    files = v1_save_files(CHAIN)
    for name in [n for n in files if n.startswith(CHAIN.ids[0])]:
        del files[name]
    with pytest.raises(UploadInvalid, match="neither in the tarball") as err:
        upload_v1(store, "x", write_tar(tmp_path / "x.tar", files))
    assert "--mask-id" in (err.value.hint or "")
    assert store.repository_find("x") is None


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.__setitem__("repositories", json.dumps({"a": {}, "b": {}}).encode()), "exactly one repository"),
    (lambda f: f.__setitem__(f"{CHAIN.ids[0]}/json", b"{not json"), "does not parse"),
    (lambda f: f.pop(f"{CHAIN.ids[0]}/layer.tar"), "no layer.tar"),
    (lambda f: [f.pop(n) for n in list(f) if n.endswith("/json")], "no v1 image directories"),
], ids=["two-repositories", "bad-json", "no-layer", "no-images"])
def test_malformed_tarballs_are_refused_and_store_nothing(store: Store, tmp_path: Path, mutate: Callable[[dict[str, bytes]], object],
                                                         message: str) -> None:
    files = v1_save_files(CHAIN)
    mutate(files)
    with pytest.raises(UploadInvalid, match=message):
        upload_v1(store, "x", write_tar(tmp_path / "x.tar", files))
    assert store.repository_find("x") is None


def test_hostile_member_names_are_refused(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("../etc/json")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(UploadInvalid, match=r"\.\."):
        upload_v1(store, "x", path)


def test_mask_id_must_be_an_image_id(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a v1 image id"):
        upload_v1(store, "x", v1_save_tar(tmp_path / "b.tar", CHAIN), mask_id="f38e47")


def test_copy_of_an_image_brings_its_ancestors_and_no_tags(busybox: Store) -> None:
    result = copy_v1(busybox, source="busybox", target="copy", kind="image", names=[CHAIN.ids[2]])
    assert result.summary.added == {"v1_images": 3, "v1_tags": 0}
    v1 = busybox.v1_version_get("copy")
    assert v1.images == set(CHAIN.ids[:3]) and not v1.tags


def test_copy_of_a_tag_brings_the_tag_and_its_chain(busybox: Store) -> None:
    copy_v1(busybox, source="busybox", target="copy", kind="tag", names=["base"])
    v1 = busybox.v1_version_get("copy")
    assert v1.images == set(CHAIN.ids[:2]) and dict(v1.tags) == {"base": CHAIN.ids[1]}


def test_copy_from_a_masked_upload_keeps_the_mask(store: Store, tmp_path: Path) -> None:
    upload_v1(store, "tutorial", v1_save_tar(tmp_path / "t.tar", CHAIN), mask_id=CHAIN.ids[2])
    copy_v1(store, source="tutorial", target="copy", kind="image", names="all")
    assert store.v1_version_get("copy").masked == {CHAIN.ids[2]}
    assert store.check().ok


def test_remove_of_an_image_does_not_cascade_and_drops_its_tags(busybox: Store) -> None:
    result = remove_v1(busybox, "busybox", "image", ["latest"])
    v1 = busybox.v1_version_get("busybox")
    assert v1.images == set(CHAIN.ids[:4])  # the parents stay
    assert dict(v1.tags) == {"base": CHAIN.ids[1]}
    assert result.summary.removed == {"v1_images": 1, "v1_tags": 1}


def test_remove_of_an_image_that_remaining_images_need_is_refused(busybox: Store) -> None:
    with pytest.raises(RemovalRefused, match=CHAIN.ids[3]):
        remove_v1(busybox, "busybox", "image", [CHAIN.ids[2]])
    assert busybox.v1_version_get("busybox").images == set(CHAIN.ids)


def test_remove_of_unknown_names_says_which(busybox: Store) -> None:
    with pytest.raises(ContentNotFound, match="nope"):
        remove_v1(busybox, "busybox", "tag", ["nope"])


def test_export_crane_v1_writes_the_v1_app_file_and_the_web_tree(busybox: Store, tmp_path: Path) -> None:
    out = tmp_path / "busybox.tar"
    result = export_ops.export(busybox, "busybox", out, format="crane-v1", url="https://cdn.example.com/v1/busybox")
    assert result.v1_images == 5 and result.tags == 2
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        app = json.loads(member_bytes(tf, "busybox.json"))
        ancestry = json.loads(member_bytes(tf, f"web/{CHAIN.leaf}/ancestry"))
        image_json = member_bytes(tf, f"web/{CHAIN.leaf}/json")
        layer = member_bytes(tf, f"web/{CHAIN.leaf}/layer")
    assert app == {"type": "pulp-docker-redirect", "version": 1, "repository": "busybox",
                   "repo-registry-id": "busybox", "url": "https://cdn.example.com/v1/busybox/", "protected": False,
                   "images": [{"id": i} for i in sorted(CHAIN.ids)],
                   "tags": {"base": CHAIN.ids[1], "latest": CHAIN.leaf}}
    assert names == {"busybox.json"} | {f"web/{i}/{f}" for i in CHAIN.ids for f in ("ancestry", "json", "layer")}
    assert ancestry == CHAIN.ancestry(CHAIN.leaf)
    assert image_json == CHAIN.jsons[CHAIN.leaf]
    assert gzip.decompress(layer) == CHAIN.layers[CHAIN.leaf]


def test_export_crane_v1_of_a_repository_without_v1_images_says_so(store: Store, tmp_path: Path) -> None:
    store.repository_create("empty")
    with pytest.raises(InvalidInput, match="no v1 images"):
        export_ops.export(store, "empty", tmp_path / "e.tar", format="crane-v1")


def test_store_check_reports_a_missing_layer_blob(busybox: Store) -> None:
    layer = busybox.v1_image_get(CHAIN.leaf).layer
    narrow(Path, sql_backend(busybox).blob_files.path(layer)).unlink()
    problems = busybox.check().problems
    assert any(p.subject == str(layer) and p.kind == "missing" for p in problems)


def test_gc_keeps_layers_of_held_images_and_drops_unheld_ones(busybox: Store) -> None:
    assert busybox.gc().blobs_removed == 0
    assert busybox.check().ok
    layer = busybox.v1_image_get(CHAIN.leaf).layer
    busybox.repository_delete("busybox")
    report = busybox.gc()
    assert report.blobs_removed == 5
    assert not busybox.blob_has(layer)
    with pytest.raises(ContentNotFound):
        busybox.v1_image_get(CHAIN.leaf)


def test_image_publications_follow_the_published_version(busybox: Store, tmp_path: Path) -> None:
    from reconciler.ops.publish import publish

    assert busybox.v1_image_publications(CHAIN.leaf) == []  # not published
    publish(busybox, "busybox", name="pulpdemo/busybox")
    remove_v1(busybox, "busybox", "image", [CHAIN.leaf])  # version 2, not published
    assert [p.name for p in busybox.v1_image_publications(CHAIN.leaf)] == ["pulpdemo/busybox"]
    other = build_chain("other", length=1)
    upload_v1(busybox, "busybox", v1_save_tar(tmp_path / "o.tar", other))
    assert busybox.v1_image_publications(other.leaf) == []  # only in a version after the published one
    publish(busybox, "busybox")
    assert busybox.v1_image_publications(CHAIN.leaf) == []
    assert [p.version for p in busybox.v1_image_publications(other.leaf)] == [3]


def test_bulk_read_of_latest_v1_content_equals_the_per_repository_reads(busybox: Store, tmp_path: Path) -> None:
    # the plan reads every repository's v1 side at once; it must see what v1_version_get sees
    store = busybox
    upload_v1(store, "masked", v1_save_tar(tmp_path / "m.tar", CHAIN), mask_id=CHAIN.ids[2])
    copy_v1(store, source="busybox", target="copied", kind="tag", names=["base"])
    remove_v1(store, "busybox", "tag", ["base"])  # a removed row (removed = latest) is not live
    store.repository_create("oci-only")
    bulk = store.v1_versions_latest()
    assert set(bulk) == {"busybox", "masked", "copied"}  # no v1 content: left out
    for repo_id in ("busybox", "masked", "copied", "oci-only"):
        assert bulk.get(repo_id, V1Content()) == store.v1_version_get(repo_id), repo_id
    assert dict(bulk["busybox"].tags) == {"latest": CHAIN.ids[4]} and bulk["masked"].masked == {CHAIN.ids[2]}
