"""Hostile upload files are refused before anything is stored: no new blob row, no new
file anywhere under the store (not even a temp file), no new repository or version.

Complements tests/unit/test_upload.py (which checks the generation and one blob) with
the store's whole footprint, compressed variants, decompression bombs, oversized
extended headers and blobs larger than their manifest declares."""

from __future__ import annotations

import bz2
import gzip
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.apply.content_commands import upload_command as upload
from reconciler.errors import UploadInvalid
from reconciler.ops.formats.tarsafe import DEFAULT_LIMITS, Limits
from reconciler.store.protocol import Store
from tests.support import archives as ar
from tests.support import imagegen as ig
from tests.support.backends import local_root, sql_backend
from tests.support.cli import RunCli

MiB = 1024 * 1024
GiB = 1024 * MiB


def footprint(store: Store) -> tuple[int, int, frozenset[str]]:
    """(blob rows, manifest rows, every content or temp file under the store root: the
    SQLite store's directory, the PostgreSQL store's blobs folder)."""
    conn = sql_backend(store)._conn()  # either backend's connection speaks the shared SQL
    blobs = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    manifests = conn.execute("SELECT count(*) FROM manifests").fetchone()[0]
    root = local_root(store)
    files = frozenset(str(p.relative_to(root)) for p in root.rglob("*")
                      if p.is_file() and not p.name.startswith("store.db") and p.suffix != ".lock" and p.name != "lock")
    return blobs, manifests, files


def refused(store: Store, path: Path, match: str, limits: Limits = DEFAULT_LIMITS) -> UploadInvalid:
    before, gen = footprint(store), store.generation()
    with pytest.raises(UploadInvalid, match=match) as info:
        upload(store, "r", path, limits=limits)
    assert footprint(store) == before, "a refused upload left rows or files in the store"
    assert store.generation() == gen and store.repository_find("r") is None
    assert "nothing was stored" in (info.value.hint or "")
    return info.value


def _gzip(path: Path) -> Path:
    out = path.with_suffix(".tar.gz")
    out.write_bytes(gzip.compress(path.read_bytes(), 1))
    return out


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "tar.gz"])
@pytest.mark.parametrize("kind", ar.HOSTILE_KINDS)
def test_hostile_member_leaves_no_trace(store: Store, tmp_path: Path, kind: str, compress: bool) -> None:
    img = ig.build_image("busybox")
    upload(store, "other", ar.skopeo_dir_tar(tmp_path / "ok.tar", ig.build_image("ok")))  # a non-empty store
    path = ar.hostile_tar(tmp_path / "evil.tar", kind, ar.skopeo_dir_files(img))
    refused(store, _gzip(path) if compress else path, match=r"member|link|bytes")


def _gzip_zeros(size: int) -> bytes:
    """``size`` zero bytes as concatenated gzip members (a multi-member stream is one
    gzip file to every reader): a real bomb, built without compressing gigabytes."""
    chunk = gzip.compress(bytes(16 * MiB), 9)
    assert size % (16 * MiB) == 0
    return chunk * (size // (16 * MiB))


def _members(files: dict[str, bytes]) -> bytes:
    """Tar members without the end-of-archive blocks (so more members can follow)."""
    out = b""
    for name, data in files.items():
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out += info.tobuf(tarfile.GNU_FORMAT) + data + bytes(-len(data) % tarfile.BLOCKSIZE)
    return out


def test_gzip_bomb_is_refused_at_its_header(store: Store, tmp_path: Path) -> None:
    """2 GiB of zeros in a ~4 MB .tar.gz: refused when the header declares it, before a
    byte of it is decompressed (ratio 100, floor 1 GiB by default)."""
    img = ig.build_image("busybox")
    head = _members(ar.skopeo_dir_files(img))
    bomb = tarfile.TarInfo("bomb")
    bomb.size = 2 * GiB
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(gzip.compress(head + bomb.tobuf(tarfile.GNU_FORMAT)) + _gzip_zeros(2 * GiB)
                     + gzip.compress(bytes(2 * tarfile.BLOCKSIZE)))
    assert path.stat().st_size < 8 * MiB
    err = refused(store, path, match="decompression bomb")
    assert "bomb" in err.message and str(path) in err.message


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress], ids=["gzip", "bzip2"])
def test_ratio_bound_uses_the_compressed_size(store: Store, tmp_path: Path, compress: Callable[[bytes], bytes]) -> None:
    """An image of zero-filled layers compresses far beyond the ratio: with a low floor
    it is refused; the same file under the default limits is accepted."""
    img = ig.build_image("zeros")
    plain = ar.skopeo_dir_tar(tmp_path / "z.tar", img)
    path = tmp_path / "z.tar.c"
    path.write_bytes(compress(plain.read_bytes()))
    refused(store, path, match="decompression bomb", limits=Limits(ratio=2, ratio_floor=0))
    assert upload(store, "r", path).changed
    assert store.check().ok


def test_oversized_pax_header_is_refused_before_it_is_read(store: Store, tmp_path: Path) -> None:
    """tarfile reads a pax header into memory whole; one declaring 64 MiB is refused first."""
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 64 * MiB
    path = tmp_path / "pax.tar.gz"
    path.write_bytes(gzip.compress(pax.tobuf(tarfile.USTAR_FORMAT)) + _gzip_zeros(64 * MiB))
    refused(store, path, match="extended header of 67108864 bytes")


def _layout_with_blob(img: ig.ManifestImage, data: bytes) -> dict[str, bytes]:
    files = ar.oci_layout_files([(img, "latest")])
    files[f"blobs/sha256/{img.manifest.layers[0].digest.hex}"] = data
    return files


@pytest.mark.parametrize("fmt", ["skopeo-dir", "oci-layout"])
def test_blob_larger_than_its_manifest_declares_is_refused_before_storing(store: Store, tmp_path: Path, fmt: str) -> None:
    img = ig.build_image("busybox", oci=fmt == "oci-layout")
    layer = img.manifest.layers[0]
    grown = img.all_blobs()[str(layer.digest)] + bytes(4 * MiB)
    if fmt == "skopeo-dir":
        files = ar.skopeo_dir_files(img)
        files[layer.digest.hex] = grown
    else:
        files = _layout_with_blob(img, grown)
    path = ar.write_tar(tmp_path / "big.tar", files)
    err = refused(store, path, match="declares")
    assert str(layer.digest) in err.message and str(len(grown)) in err.message and str(layer.size) in err.message
    # plan inspects uploads with the same checks, so it reports this before apply
    from reconciler.ops.upload import inspect_upload

    with pytest.raises(UploadInvalid, match="declares"):
        inspect_upload(path)


def test_index_json_with_too_many_entries_is_refused(store: Store, tmp_path: Path) -> None:
    from reconciler.model.manifest import MAX_INDEX_ENTRIES

    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
             "digest": "sha256:" + "a" * 64}
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": [entry] * (MAX_INDEX_ENTRIES + 1)}
    path = tmp_path / "big-index.json"
    path.write_text(json.dumps(doc))
    before, gen = footprint(store), store.generation()
    with pytest.raises(Exception, match=f"more than the limit of {MAX_INDEX_ENTRIES}"):
        upload(store, "r", path)
    assert footprint(store) == before and store.generation() == gen


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_hostile_upload_declared_in_repos_yaml_refuses_the_whole_plan(tmp_path: Path, run_cli: RunCli, command: str) -> None:
    """A repos.yaml that declares a hostile upload next to a good one: plan and apply exit
    1 naming the file and the member, and the store gets neither repository."""
    from reconciler.store.sqlite import SQLiteStore

    img = ig.build_image("x")
    ar.skopeo_dir_tar(tmp_path / "ok.tar", img)
    ar.hostile_tar(tmp_path / "evil.tar", "symlink-out", ar.skopeo_dir_files(img))
    (tmp_path / "repos.yaml").write_text("version: 1\nrepositories:\n  good: {uploads: [{file: ok.tar, tag: v1}]}\n"
                                         "  bad: {uploads: [{file: evil.tar, tag: v1}]}\n")
    store = SQLiteStore(tmp_path / "store")
    try:
        before = footprint(store), store.generation()
    finally:
        store.close()
    proc = run_cli(command, "-f", str(tmp_path / "repos.yaml"), store=tmp_path / "store")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"error: {tmp_path / 'evil.tar'}: link 'evil-link' -> '../../etc/passwd' points outside" in proc.stderr
    assert "nothing was stored" in proc.stderr
    store = SQLiteStore(tmp_path / "store")
    try:
        assert (footprint(store), store.generation()) == before and not store.repository_list()
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["blob-symlink-out", "blob-symlink-dev-zero", "blobs-dir-symlink-out", "blob-fifo"])
def test_oci_layout_directory_never_reads_outside_itself(store: Store, tmp_path: Path, kind: str) -> None:
    """An OCI layout given as a directory: a link that leads out of it is refused even
    when what it points at holds the right bytes; a FIFO is never opened (no hang)."""
    import os
    import shutil

    img = ig.build_image("busybox", oci=True)
    layout = ar.oci_layout_dir(tmp_path / "layout", [(img, "latest")])
    blob = layout / "blobs" / "sha256" / img.manifest.layers[0].digest.hex
    outside = tmp_path / "outside"
    outside.mkdir()
    if kind == "blob-symlink-out":
        (outside / "copy").write_bytes(blob.read_bytes())  # the right bytes, but not in the layout
        blob.unlink()
        blob.symlink_to(outside / "copy")
    elif kind == "blob-symlink-dev-zero":
        blob.unlink()
        blob.symlink_to("/dev/zero")
    elif kind == "blobs-dir-symlink-out":
        shutil.copytree(layout / "blobs" / "sha256", outside / "sha256")
        shutil.rmtree(layout / "blobs" / "sha256")
        (layout / "blobs" / "sha256").symlink_to(outside / "sha256")
    else:
        blob.unlink()
        os.mkfifo(blob)
    refused(store, layout, match="outside the directory" if "out" in kind or "dev" in kind else "neither in the file")


def _docker_save_with_gzip_layer(path: Path, uncompressed: bytes) -> Path:
    """A docker save tarball whose one layer is stored gzip-compressed (as some tools do)."""
    import hashlib

    diff_id = "sha256:" + hashlib.sha256(uncompressed).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["x/zeros:1"], "Layers": ["l/layer.tar"]}])
    return ar.write_tar(path, {"manifest.json": manifest.encode(), "config.json": config,
                               "l/layer.tar": gzip.compress(uncompressed, 9)})


def test_gzip_layer_bomb_in_docker_save_is_bounded(store: Store, tmp_path: Path) -> None:
    """A gzip'd layer is inflated (to check its diff_id) a chunk at a time and at most to
    the ratio bound: 8 MiB of zeros in 8 KiB is refused under a 2x ratio, accepted by default."""
    path = _docker_save_with_gzip_layer(tmp_path / "save.tar", bytes(8 * MiB))
    err = refused(store, path, match="decompression bomb", limits=Limits(ratio=2, ratio_floor=0))
    assert "l/layer.tar" in err.message
    assert upload(store, "r", path).changed and store.check().ok
