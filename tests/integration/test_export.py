"""``reconciler export``: the Crane tree and app file (docs/original-system.md, "Crane app
files and the static tree"), and an OCI layout tar that skopeo accepts with the store's
digests."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.apply.content_commands import upload_command as upload
from reconciler.model import mediatypes as mt
from reconciler.ops.export import export
from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.imagegen import Image, ManifestImage, build_image, build_index, build_multiarch, build_schema1
from tests.support.serving import commit_tags, require_binary

pytestmark = pytest.mark.integration


#: the store, its tagged images by tag, the untagged image, the directory
Exported = tuple[SQLiteStore, dict[str, Image], ManifestImage, Path]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    root = tmp_path_factory.mktemp("export")
    store = SQLiteStore(root / "store")
    imgs = {
        "s2": build_image("exp-s2"),
        "oci": build_image("exp-oci", oci=True),
        "latest": build_multiarch("exp-list"),                 # Docker list with an amd64 child
        "idx": build_multiarch("exp-idx", oci=True),           # OCI index
        "old": build_schema1("exp-s1"),
    }
    untagged = build_image("exp-untagged")
    commit_tags(store, "synctest", imgs, extra=(untagged,))
    store.publish("synctest", name="pulpdemo/synctest", version=1, protected=True)
    yield store, imgs, untagged, root
    store.close()


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def read(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        with f:
            return f.read()


def test_crane_export_layout_and_app_file(repo: Exported, tmp_path: Path) -> None:
    store, imgs, untagged, _ = repo
    out = tmp_path / "synctest.tar"
    result = export(store, "synctest", out, format="crane", url="https://pulp.example.com/pulp/docker/v2/synctest/")
    assert (result.version, result.tags) == (1, 5)
    got = members(out)
    manifests = {m.digest: m for img in (*imgs.values(), untagged) for m in img.all_manifests()}
    blobs = {d: b for img in (*imgs.values(), untagged) for d, b in img.all_blobs().items()}
    where = {mt.DOCKER_SCHEMA2: "2", mt.OCI_MANIFEST: "2", mt.DOCKER_MANIFEST_LIST: "list", mt.OCI_INDEX: "list",
             mt.DOCKER_SCHEMA1_SIGNED: "1"}
    expected = {"synctest.json", "tags/list"}
    expected |= {f"blobs/{d}" for d in blobs}
    expected |= {f"manifests/{where[m.media_type]}/{d}" for d, m in manifests.items()}
    expected |= {f"manifests/{where[img.manifest.media_type]}/{tag}" for tag, img in imgs.items()}
    assert set(got) == expected
    for tag, img in imgs.items():
        link = got[f"manifests/{where[img.manifest.media_type]}/{tag}"]
        assert link.issym() and link.linkname == str(img.digest)
    for d, m in manifests.items():
        assert read(out, f"manifests/{where[m.media_type]}/{d}") == m.raw
    for name, data in blobs.items():
        assert read(out, f"blobs/{name}") == data
    assert json.loads(read(out, "tags/list")) == {"name": "pulpdemo/synctest", "tags": sorted(imgs)}

    app = json.loads(read(out, "synctest.json"))
    s2_digests = sorted(str(d) for d, m in manifests.items() if where[m.media_type] == "2")
    list_digests = sorted(str(d) for d, m in manifests.items() if where[m.media_type] == "list")
    amd64 = imgs["latest"].children[0].manifest
    assert app == {
        "type": "pulp-docker-redirect", "version": 4, "repository": "synctest",
        "repo-registry-id": "pulpdemo/synctest", "url": "https://pulp.example.com/pulp/docker/v2/synctest/",
        "protected": True,
        "schema2_data": s2_digests + ["oci", "s2"],
        "manifest_list_data": list_digests + ["idx", "latest"],
        "manifest_list_amd64_tags": {"idx": [str(imgs["idx"].children[0].digest), 2],
                                     "latest": [str(amd64.digest), 2]},
    }
    # schema1 is served from manifests/1: listed in neither array
    # (docs/original-system.md, "App file versions")
    assert "old" not in app["schema2_data"] + app["manifest_list_data"]


def test_crane_export_extracts_safely(repo: Exported, tmp_path: Path) -> None:
    store, imgs, _, _ = repo
    out = tmp_path / "t.tar"
    export(store, "synctest", out)
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path / "x", filter="data")  # the strict filter: links stay inside
    assert (tmp_path / "x/manifests/list/latest").read_bytes() == imgs["latest"].manifest.raw


@pytest.mark.parametrize(("tag", "convert"), [("oci", False), ("idx", False), ("oci", True), ("idx", True),
                                             ("s2", True), ("latest", True)])
def test_oci_export_accepted_by_skopeo(repo: Exported, tmp_path: Path, tag: str, convert: bool) -> None:
    """OCI tags come out byte-exact either way; with --convert-docker, Docker tags in OCI
    form with every layer unchanged (skopeo 1.9 skips Docker types in index.json)."""
    require_binary("skopeo", "skopeo")
    store, imgs, _, root = repo
    archive = root / f"oci-{convert}.tar"
    if not archive.exists():
        export(store, "synctest", archive, format="oci", convert_docker=convert)
    img = imgs[tag]
    dest = tmp_path / "dir"
    proc = subprocess.run(["skopeo", "copy", "--all", "--preserve-digests", f"oci-archive:{archive}:{tag}",
                           f"dir:{dest}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    copied = (dest / "manifest.json").read_bytes()
    if img.manifest.media_type.startswith("application/vnd.oci."):
        assert copied == img.manifest.raw
        for child in img.children:
            assert (dest / f"{child.digest.hex}.manifest.json").read_bytes() == child.manifest.raw
    else:
        assert json.loads(copied)["mediaType"] in (mt.OCI_MANIFEST, mt.OCI_INDEX)
    for d, data in img.all_blobs().items():
        assert (dest / d.split(":")[1]).read_bytes() == data


def test_oci_layout_keeps_every_digest(repo: Exported, tmp_path: Path) -> None:
    """Every tag, Docker schema2, manifest list and schema1 included, keeps its exact bytes,
    media type and digest (a signature or a digest pin still holds on the far side)."""
    store, imgs, untagged, _ = repo
    out = tmp_path / "o.tar"
    export(store, "synctest", out, format="oci")
    assert json.loads(read(out, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(read(out, "index.json"))
    refs = {d["annotations"]["org.opencontainers.image.ref.name"]: d for d in index["manifests"]}
    assert set(refs) == set(imgs)
    for tag, img in imgs.items():
        assert (refs[tag]["digest"], refs[tag]["mediaType"]) == (str(img.digest), img.manifest.media_type)
        assert read(out, f"blobs/sha256/{img.digest.hex}") == img.manifest.raw
        for child in img.children:
            assert read(out, f"blobs/sha256/{child.digest.hex}") == child.manifest.raw
    assert read(out, f"blobs/sha256/{untagged.digest.hex}") == untagged.manifest.raw  # the whole version
    names = set(members(out))
    assert not _reachable(out, names) - names


def test_converted_oci_layout_index(repo: Exported, tmp_path: Path) -> None:
    store, imgs, _, _ = repo
    out = tmp_path / "o.tar"
    export(store, "synctest", out, format="oci", convert_docker=True)
    index = json.loads(read(out, "index.json"))
    refs = {d["annotations"]["org.opencontainers.image.ref.name"]: d for d in index["manifests"]}
    assert set(refs) == set(imgs) - {"old"}  # schema1 has no OCI form
    for tag in ("oci", "idx"):
        assert refs[tag]["digest"] == str(imgs[tag].digest)
        assert read(out, f"blobs/sha256/{imgs[tag].digest.hex}") == imgs[tag].manifest.raw
    assert {d["mediaType"] for d in refs.values()} == {mt.OCI_MANIFEST, mt.OCI_INDEX}
    names = set(members(out))
    for d in refs.values():  # everything index.json points at is in the tar
        assert f"blobs/sha256/{d['digest'].split(':')[1]}" in names


def test_failed_export_leaves_no_file(repo: Exported, tmp_path: Path, run_cli: RunCli) -> None:
    store, _, _, root = repo
    out = tmp_path / "keep.tar"
    out.write_bytes(b"old")
    bad = run_cli("export", "synctest", "-o", str(out), "--version", "9", store=root / "store")
    assert bad.returncode == 1 and "no version 9" in bad.stderr
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["keep.tar"]
    ok = run_cli("export", "synctest", "-o", str(out), "--json", store=root / "store", check=True)
    assert json.loads(ok.stdout)["tags"] == 5 and tarfile.is_tarfile(out)


def test_crane_default_url_is_under_the_repository_id(repo: Exported, tmp_path: Path) -> None:
    """Pulp's default redirect URL is https://HOST/pulp/docker/v2/<repo id>/ (the web
    directory is named by repo id, 10.1/10.3), not by the registry name."""
    store, _, _, _ = repo
    export(store, "synctest", tmp_path / "d.tar")
    url = json.loads(read(tmp_path / "d.tar", "synctest.json"))["url"]
    assert url.startswith("https://") and url.endswith("/pulp/docker/v2/synctest/")


def test_crane_url_gets_its_trailing_slash(repo: Exported, tmp_path: Path) -> None:
    """Crane appends 'manifests/...' to url as a string: without the slash every redirect
    would point at .../synctestmanifests/..."""
    store, _, _, _ = repo
    export(store, "synctest", tmp_path / "s.tar", url="https://cdn.example.com/v2/synctest")
    assert json.loads(read(tmp_path / "s.tar", "synctest.json"))["url"] == "https://cdn.example.com/v2/synctest/"


def _reachable(out: Path, names: set[str]) -> set[str]:
    """Every blob path an OCI layout's index.json reaches (walking indexes and manifests
    that are present), so that the caller can see which of them are missing."""
    todo = list(json.loads(read(out, "index.json"))["manifests"])
    seen: set[str] = set()
    while todo:
        desc = todo.pop()
        path = f"blobs/sha256/{desc['digest'].split(':')[1]}"
        seen.add(path)
        if path not in names:
            continue
        doc = json.loads(read(out, path)) if desc["mediaType"] in mt.INDEX_TYPES | mt.IMAGE_MANIFEST_TYPES else {}
        todo += doc.get("manifests", [])
        seen |= {f"blobs/sha256/{d['digest'].split(':')[1]}" for d in [*doc.get("layers", []), doc.get("config")] if d}
    return seen


def test_oci_index_with_docker_children_is_complete(tmp_path: Path) -> None:
    """An OCI index may point at Docker schema2 manifests. The layout must hold exactly
    what its index.json reaches, or skopeo and containerd refuse it."""
    require_binary("skopeo", "skopeo")
    store = SQLiteStore(tmp_path / "store")
    try:
        kids = [build_image("mixed-amd64", arch="amd64"), build_image("mixed-arm64", arch="arm64", variant="v8")]
        mixed = build_index(kids, oci=True)
        commit_tags(store, "mixed", {"multi": mixed})
        out = tmp_path / "mixed.tar"
        export(store, "mixed", out, format="oci")
    finally:
        store.close()
    names = set(members(out))
    missing = _reachable(out, names) - names
    assert not missing
    proc = subprocess.run(["skopeo", "copy", "--all", f"oci-archive:{out}:multi", f"oci:{tmp_path / 'copy'}:multi"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_export_file_mode_follows_the_umask(repo: Exported, tmp_path: Path) -> None:
    """The tar is written to a private temporary file and renamed; it must still end up
    with the mode any other new file gets (a web server user has to read a Crane tree)."""
    store, _, _, _ = repo
    old = os.umask(0o022)
    try:
        export(store, "synctest", tmp_path / "m.tar")
        export(store, "synctest", tmp_path / "m.oci.tar", format="oci")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.tar").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "m.oci.tar").stat().st_mode) == 0o644


def test_oci_export_round_trips_through_upload_with_every_digest(repo: Exported, tmp_path: Path) -> None:
    """The far side of an air gap: uploading the exact export gives every tag its digest."""
    store, imgs, _, _ = repo
    out = tmp_path / "o.tar"
    export(store, "synctest", out, format="oci")
    far = SQLiteStore(tmp_path / "far")
    try:
        upload(far, "synctest", out)
        assert {t: e.digest for t, e in far.version_get("synctest").tags.items()} == {
            t: img.digest for t, img in imgs.items()}
        assert far.check().ok
    finally:
        far.close()
