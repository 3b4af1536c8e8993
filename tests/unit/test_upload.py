"""Upload flows (docs/original-system.md, "Upload") with files built by the suite:
skopeo dir: tarballs, OCI layouts, docker save tarballs, index JSON, hostile tars."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from reconciler.apply.content_commands import upload_command as upload
from reconciler.errors import DigestMismatch, ManifestInvalid, TagInvalid, UploadInvalid
from reconciler.model import Digest, Manifest
from reconciler.ops.formats.tarsafe import Limits
from reconciler.store.protocol import Store
from tests.support import archives as ar
from tests.support import imagegen as ig
from tests.support.narrow import narrow


def unchanged(store: Store, generation: int, repo: str = "r") -> None:
    """A refused upload leaves no repository, no version and no metadata change."""
    assert store.repository_find(repo) is None
    assert store.generation() == generation


@pytest.mark.parametrize("version", ["1.0", "1.1"], ids=["transport-1.0-hex.tar", "transport-1.1-bare-hex"])
@pytest.mark.parametrize("prefix", ["", "./"], ids=["tar-star", "tar-dot"])
def test_skopeo_dir_v2s2_stores_manifest_and_blobs_untagged(store: Store, tmp_path: Path, version: str, prefix: str) -> None:
    img = ig.build_image("busybox")
    path = ar.skopeo_dir_tar(tmp_path / "bb.tar", img, version=version, prefix=prefix)
    result = upload(store, "schema2", path)
    # the recipe: Docker Blob: 2 (layer + config; ours has 2 layers), Docker Manifest: 1, no tags
    assert result.version is not None and result.version.number == 1
    assert result.summary.added == {"blobs": 3, "manifests": 1, "indexes": 0, "tags": 0}
    v = store.version_get("schema2")
    assert v.content.manifests == {img.digest} and not v.tags
    assert store.manifest_get(img.digest).raw == img.manifest.raw  # byte for byte
    assert store.check().ok


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_skopeo_dir_v2s1(store: Store, tmp_path: Path, signed: bool) -> None:
    img = ig.build_schema1("busybox", signed=signed)
    result = upload(store, "schema1", ar.skopeo_dir_tar(tmp_path / "s1.tar", img), tag="latest")
    assert result.summary.added["manifests"] == 1 and result.summary.added["blobs"] == 1
    assert store.version_get("schema1").tags["latest"].digest == img.digest


def test_blobs_already_in_the_repository_need_not_be_in_the_tarball(store: Store, tmp_path: Path) -> None:
    shared = (b"common base layer",)
    first, second = ig.build_image("one", shared=shared), ig.build_image("two", shared=shared)
    upload(store, "r", ar.skopeo_dir_tar(tmp_path / "1.tar", first))
    base = second.manifest.layers[0].digest  # the shared layer
    result = upload(store, "r", ar.skopeo_dir_tar(tmp_path / "2.tar", second, omit=[str(base)]))
    assert result.details["blobs_reused"] == 1
    assert second.digest in store.version_get("r").content.manifests


def test_blob_missing_from_tarball_and_repository_is_listed(store: Store, tmp_path: Path) -> None:
    img = ig.build_image("busybox")
    layer = str(img.manifest.layers[1].digest)
    gen = store.generation()
    with pytest.raises(UploadInvalid, match=layer):
        upload(store, "r", ar.skopeo_dir_tar(tmp_path / "bb.tar", img, omit=[layer]))
    unchanged(store, gen)


def test_corrupted_blob_stores_no_version(store: Store, tmp_path: Path) -> None:
    img = ig.build_image("busybox")
    files = ar.skopeo_dir_files(img)
    victim = img.manifest.layers[0].digest.hex
    files[victim] = files[victim][:-1] + bytes([files[victim][-1] ^ 1])
    with pytest.raises(DigestMismatch, match=victim):
        upload(store, "r", ar.write_tar(tmp_path / "bad.tar", files))
    assert store.repository_find("r") is None


def test_oci_layout_directory_and_archive_with_several_manifests_and_nested_index(store: Store, tmp_path: Path) -> None:
    multi = ig.build_multiarch("multi", oci=True)
    nested = ig.build_index([multi], oci=True)  # an OCI index that lists an index
    single = ig.build_image("single", oci=True)
    entries = [(nested, "registry.example/lib/multi:1.0"), (single, "latest"), (ig.build_image("untagged"), None)]
    d = ar.oci_layout_dir(tmp_path / "layout", entries)
    r1 = upload(store, "from-dir", d)
    r2 = upload(store, "from-tar", ar.write_tar(tmp_path / "layout.tar", ar.oci_layout_files(entries)))
    for repo, r in (("from-dir", r1), ("from-tar", r2)):
        v = store.version_get(repo)
        assert {n: e.digest for n, e in v.tags.items()} == {"1.0": nested.digest, "latest": single.digest}
        assert v.content.indexes == {nested.digest, multi.digest}
        assert len(v.content.manifests) == 5
        assert r.details["format"] == "oci-layout"
    assert store.check().ok


def test_docker_save_makes_schema2_manifests_with_gzip_layers_and_repotags(store: Store, tmp_path: Path) -> None:
    a, b = ig.build_image("alpha"), ig.build_image("beta")
    path = ar.docker_save_tar(tmp_path / "save.tar", [(a, ["lib/alpha:latest", "lib/alpha:3.20"]),
                                                      (b, ["localhost:5000/beta:v1"])])
    upload(store, "saved", path)
    v = store.version_get("saved")
    assert set(v.tags) == {"latest", "3.20", "v1"}
    m = narrow(Manifest, store.manifest_get(v.tags["latest"].digest))
    assert m.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    for layer in m.layers:
        with store.blob_open(layer.digest) as f:
            data = f.read()
        assert data[:2] == b"\x1f\x8b" and layer.media_type.endswith("tar.gzip")
        gzip.decompress(data)  # a valid gzip stream
    # the same input gives the same digests
    upload(store, "again", ar.docker_save_tar(tmp_path / "again.tar", [(a, ["x:latest"])]))
    assert store.version_get("again").tags["latest"].digest == v.tags["latest"].digest
    assert store.check().ok


def test_docker_save_layer_not_matching_diff_id_stores_nothing(store: Store, tmp_path: Path) -> None:
    path = ar.docker_save_tar(tmp_path / "s.tar", [(ig.build_image("a"), ["a:latest"])], corrupt_layer=True)
    gen = store.generation()
    with pytest.raises(DigestMismatch, match="diff_id"):
        upload(store, "r", path)
    unchanged(store, gen)


def test_index_json_needs_its_children_in_the_repository(store: Store, tmp_path: Path) -> None:
    multi = ig.build_multiarch("multi")
    index_file = tmp_path / "list.json"
    index_file.write_bytes(multi.manifest.raw)
    first = multi.children[0]
    upload(store, "r", ar.skopeo_dir_tar(tmp_path / "c0.tar", first))
    gen = store.generation()
    with pytest.raises(UploadInvalid) as info:
        upload(store, "r", index_file)
    for child in multi.children[1:]:
        assert str(child.digest) in info.value.message
    assert str(first.digest) not in info.value.message
    assert store.generation() == gen
    for i, child in enumerate(multi.children[1:]):
        upload(store, "r", ar.skopeo_dir_tar(tmp_path / f"c{i + 1}.tar", child))
    result = upload(store, "r", index_file, tag="latest")
    assert result.summary.added == {"blobs": 0, "manifests": 0, "indexes": 1, "tags": 1}
    assert store.manifest_get(multi.digest).raw == multi.manifest.raw  # byte for byte


def test_index_json_that_is_not_a_manifest_is_refused(store: Store, tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ManifestInvalid):
        upload(store, "r", p)


@pytest.mark.parametrize("files,match", [
    ({"README": b"hi"}, "cannot tell the upload format"),
    ({"manifest.json": b"[]"}, "lists no images"),
    ({"index.json": b'{"manifests": []}'}, "lists no manifests"),
], ids=["no-known-files", "empty-docker-save", "empty-oci-index"])
def test_unrecognised_archives_are_refused(store: Store, tmp_path: Path, files: dict[str, bytes], match: str) -> None:
    with pytest.raises(UploadInvalid, match=match):
        upload(store, "r", ar.write_tar(tmp_path / "x.tar", files))
    assert store.repository_find("r") is None


def test_tag_option_needs_one_image_and_a_valid_name(store: Store, tmp_path: Path) -> None:
    entries = [(ig.build_image("a"), None), (ig.build_image("b"), None)]
    d = ar.oci_layout_dir(tmp_path / "two", entries)
    with pytest.raises(UploadInvalid, match="one image"):
        upload(store, "r", d, tag="latest")
    with pytest.raises(TagInvalid):
        upload(store, "r", ar.skopeo_dir_tar(tmp_path / "a.tar", entries[0][0]), tag="-bad")
    assert store.repository_find("r") is None


HOSTILE = ["absolute", "traversal", "nested-traversal", "symlink-out", "symlink-abs", "hardlink-out",
           "device", "fifo", "huge"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_tars_are_refused_before_anything_is_stored(store: Store, tmp_path: Path, kind: str) -> None:
    img = ig.build_image("busybox")
    path = ar.hostile_tar(tmp_path / "evil.tar", kind, ar.skopeo_dir_files(img))
    gen = store.generation()
    with pytest.raises(UploadInvalid) as info:
        upload(store, "r", path)
    assert "nothing was stored" in (info.value.hint or "")
    unchanged(store, gen)
    assert not store.blob_has(img.manifest.layers[0].digest)


def test_member_and_total_size_limits(store: Store, tmp_path: Path) -> None:
    img = ig.build_image("busybox", payload=4096)
    path = ar.skopeo_dir_tar(tmp_path / "bb.tar", img)
    biggest = max(len(b) for b in img.all_blobs().values())
    with pytest.raises(UploadInvalid, match="byte limit"):
        upload(store, "r", path, limits=Limits(member_bytes=biggest - 1))
    with pytest.raises(UploadInvalid, match="add up to more"):
        upload(store, "r", path, limits=Limits(total_bytes=biggest + 10))
    assert store.repository_find("r") is None
    assert upload(store, "r", path).changed


def test_symlink_inside_the_archive_is_followed(store: Store, tmp_path: Path) -> None:
    """Docker 25's docker save links <id>/layer.tar to blobs/sha256/<hex>; links that stay
    inside the archive are fine."""
    import io
    import tarfile

    img = ig.build_image("busybox")
    files = ar.skopeo_dir_files(img)
    victim = img.manifest.layers[0].digest.hex
    data = files.pop(victim)
    files["real/layer"] = data
    path = ar.write_tar(tmp_path / "l.tar", files)
    with tarfile.open(path, "a") as tf:
        info = tarfile.TarInfo(victim)
        info.type, info.linkname = tarfile.SYMTYPE, "real/layer"
        tf.addfile(info, io.BytesIO(b""))
    assert upload(store, "r", path).changed
    assert Digest.parse(f"sha256:{victim}") in store.version_get("r").content.blobs


def test_inspect_upload_predicts_the_import_and_stores_nothing(store: Store, tmp_path: Path) -> None:
    from reconciler.ops.upload import inspect_upload

    a, b = ig.build_image("alpha"), ig.build_image("beta")
    path = ar.docker_save_tar(tmp_path / "save.tar", [(a, ["lib/alpha:latest"]), (b, ["beta:v1"])])
    gen = store.generation()
    found = inspect_upload(path)
    assert store.generation() == gen and not store.repository_list()  # nothing stored
    assert found.format == "docker-save" and not found.missing
    assert set(found.tags) == {"latest", "v1"} and set(found.blobs) == set(found.content.blobs)
    upload(store, "saved", path)
    v = store.version_get("saved")
    assert found.content == v.content
    assert found.tags == {n: e.digest for n, e in v.tags.items()}
    assert set(found.roots) == {e.digest for e in v.tags.values()}
    assert all(size for size in found.blobs.values())
