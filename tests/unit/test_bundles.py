"""Bundles without a registry: what the writer puts in, what the reader refuses, how a
folder of bundles and a delta chain resolve (reconciler/bundle/)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import api
from reconciler.bundle.reader import BundleSource
from reconciler.bundle.verify import verify_bundles
from reconciler.bundle.writer import write_bundle
from reconciler.errors import BundleBaseMissing, InvalidInput, NotFound, RepositoryNotFound
from reconciler.model import Digest
from reconciler.store.sqlite import SQLiteStore
from tests.support.archives import member_bytes
from tests.support.imagegen import build_image, build_multiarch, build_schema1
from tests.support.serving import commit_tags

IMAGES = {"s2": build_image("b-s2"), "list": build_multiarch("b-list"), "old": build_schema1("b-s1")}


@pytest.fixture
def source_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "a")
    version = commit_tags(store, "web", IMAGES)
    store.publish("web", name="team/web", version=version, protected=True)
    commit_tags(store, "other", {"x": build_image("b-other")})
    yield store
    store.close()


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: member_bytes(tar, m) for m in tar.getmembers() if m.isfile()}


def rewrite(path: Path, changes: dict[str, bytes]) -> None:
    files = {**members(path), **changes}
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_bundle_lists_every_repository_and_carries_exact_bytes(source_store: SQLiteStore, tmp_path: Path) -> None:
    result = write_bundle(source_store, tmp_path / "b.tar")
    files = members(tmp_path / "b.tar")
    doc = json.loads(files["bundle.json"])
    assert set(doc["repositories"]) == {"web", "other"}
    web = doc["repositories"]["web"]
    assert (web["publish_name"], web["protected"], web["referrers"]) == ("team/web", True, {})
    assert web["tags"] == {t: str(i.digest) for t, i in IMAGES.items()}
    for img in IMAGES.values():  # schema1, Docker list and schema2 byte for byte
        assert files[f"blobs/sha256/{img.digest.hex}"] == img.manifest.raw
    assert files["bundle.sha256"].decode().startswith(result.digest)
    index = json.loads(files["index.json"])
    assert {d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]} == {
        "web:s2", "web:list", "web:old", "other:x"}
    assert not any(r.problems for r in verify_bundles(tmp_path / "b.tar"))


def test_the_reader_serves_tags_manifests_and_blobs_by_id_or_publish_name(source_store: SQLiteStore,
                                                                          tmp_path: Path) -> None:
    write_bundle(source_store, tmp_path / "b.tar", repo_ids=["web"])
    src = BundleSource(tmp_path / "b.tar")
    assert src.tag_list("web") == src.tag_list("team/web") == ["list", "old", "s2"]
    head = src.manifest_head("web", "list")
    assert head is not None and head.digest == IMAGES["list"].digest and head.media_type == \
        IMAGES["list"].manifest.media_type
    assert src.manifest_get("web", "s2").raw == IMAGES["s2"].manifest.raw
    blob, data = next(iter(IMAGES["s2"].blobs.items()))
    assert src.blob_fetch("web", Digest.parse(blob), lambda chunks: b"".join(chunks)) == data
    assert src.manifest_head("web", "nope") is None
    with pytest.raises(NotFound, match="has no repository 'other' .*it has: web"):
        src.tag_list("other")


def test_an_unknown_repository_is_refused_before_writing(source_store: SQLiteStore, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound, match="'nope'"):
        write_bundle(source_store, tmp_path / "b.tar", repo_ids=["web", "nope"])
    assert not (tmp_path / "b.tar").exists()


@pytest.mark.parametrize("damage", ["manifest", "index", "blob", "gzip"])
def test_a_damaged_bundle_is_refused(source_store: SQLiteStore, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "b.tar"
    write_bundle(source_store, path)
    files = members(path)
    if damage == "manifest":
        rewrite(path, {"bundle.json": files["bundle.json"].replace(b'"protected": true', b'"protected": false')})
    elif damage == "index":
        rewrite(path, {"index.json": files["index.json"] + b" "})
    elif damage == "blob":
        name = f"blobs/sha256/{IMAGES['s2'].digest.hex}"
        rewrite(path, {name: files[name].replace(b"schemaVersion", b"schemaversion")})
    else:
        import gzip

        path.write_bytes(gzip.compress(path.read_bytes()))
    if damage == "blob":
        assert any("does not hash" in p for r in verify_bundles(path) for p in r.problems)
        with pytest.raises(InvalidInput):
            BundleSource(path).manifest_get("web", "s2")
        return
    with pytest.raises(InvalidInput, match={"manifest": "does not match bundle.sha256", "index": "index.json does",
                                            "gzip": "compressed bundle"}[damage]):
        BundleSource(path)


def test_a_delta_carries_only_what_is_new_and_needs_its_base(source_store: SQLiteStore, tmp_path: Path) -> None:
    folder = tmp_path / "bundles"
    folder.mkdir()
    write_bundle(source_store, folder / "1.tar")
    newer = build_image("b-newer")
    commit_tags(source_store, "web", {**IMAGES, "new": newer})
    source_store.publish("web", name="team/web", version=source_store.repository_get("web").latest_version,
                         protected=True)
    delta = write_bundle(source_store, folder / "2.tar", since=folder / "1.tar")
    assert (delta.blobs, delta.manifests) == (len(newer.blobs), 1) and delta.base is not None
    # alone, the delta cannot give what only its base carried
    alone = tmp_path / "alone.tar"
    alone.write_bytes((folder / "2.tar").read_bytes())
    with pytest.raises(BundleBaseMissing, match="is a delta against the bundle sha256:.*apply that bundle"):
        BundleSource(alone).manifest_get("web", "s2")
    assert BundleSource(alone).manifest_get("web", "new").raw == newer.manifest.raw
    # in a folder, the newest is the feed and its base supplies the rest
    both = BundleSource(folder)
    assert both.tag_list("web") == ["list", "new", "old", "s2"]
    assert both.manifest_get("web", "s2").raw == IMAGES["s2"].manifest.raw


def test_sync_from_a_bundle_mirrors_tags_and_records_the_feed(source_store: SQLiteStore, tmp_path: Path) -> None:
    write_bundle(source_store, tmp_path / "b.tar")
    far = SQLiteStore(tmp_path / "far")
    try:
        result = api.sync_repository(far, "web", feed=f"bundle:{tmp_path / 'b.tar'}", upstream_name="team/web")
        assert result.version is not None
        assert {t: e.digest for t, e in far.version_get("web").tags.items()} == {t: i.digest for t, i in
                                                                               IMAGES.items()}
        assert far.repository_get("web").feed == f"bundle:{tmp_path / 'b.tar'}"
        assert far.check().ok
    finally:
        far.close()


def test_repos_yaml_reads_a_bundle_feed_relative_to_itself(tmp_path: Path) -> None:
    from reconciler.desired.loader import load_desired
    from reconciler.errors import ConfigError

    (tmp_path / "bundles").mkdir()
    yaml = tmp_path / "repos.yaml"
    yaml.write_text("version: 1\nrepositories:\n  web: {feed: 'bundle:bundles', upstream_name: team/web, mirror: true}\n")
    spec = load_desired(yaml).repositories["web"]
    assert spec.feed is not None and spec.feed.url == f"bundle:{tmp_path / 'bundles'}" and spec.mirror
    yaml.write_text("version: 1\nrepositories:\n  web: {feed: 'bundle:gone.tar', upstream_name: web, enable_v1: true}\n")
    with pytest.raises(ConfigError) as err:
        load_desired(yaml)
    text = "\n".join(str(d) for d in err.value.diagnostics)
    assert "bundle 'gone.tar' not found" in text and "a bundle carries no v1 images" in text
