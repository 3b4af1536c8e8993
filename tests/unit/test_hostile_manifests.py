"""Hostile manifests from an upstream (``responses`` + the real ``RegistryClient``):
malformed JSON, unknown media types, unsupported digest algorithms, digests of another
algorithm's length, bad and lying sizes, indexes of 10,001 entries, index "cycles" and
endless index chains. Each sync fails with an error naming the URL, commits nothing and
stores nothing (no row, no file). Uploads of such manifests: tests/unit/test_hostile_uploads.py.

Since one bad tag fails only that tag, the sync itself returns: the tag is in
``tags_failed`` with the reason, and (being the only tag) nothing is committed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ReconcilerError
from reconciler.model import Digest
from reconciler.model import mediatypes as mt
from reconciler.model.manifest import MAX_INDEX_DEPTH, MAX_INDEX_ENTRIES
from reconciler.store.protocol import Store
from tests.support.cli import RunCli
from tests.support.imagegen import Image, build_image, build_index
from tests.unit.test_hostile_uploads import footprint
from tests.unit.test_sync_faults import BASE, NAME, Upstream, run_sync
from tests.unit.test_sync_faults import upstream as upstream  # noqa: F401  (the fixture)

HEX = "ab" * 32
CONFIG = {"mediaType": mt.OCI_CONFIG, "digest": f"sha256:{HEX}", "size": 2}


def _image(**layer: Any) -> bytes:
    desc = {"mediaType": mt.OCI_LAYER, "digest": f"sha256:{HEX}", "size": 2, **layer}
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": CONFIG,
                       "layers": [desc]}).encode()


def _index(entries: int) -> bytes:
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": f"sha256:{HEX}", "size": 2}
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry] * entries}).encode()


HOSTILE: dict[str, tuple[bytes, str, str]] = {
    # name: (body, Content-Type, what the error says)
    "malformed-json": (b'{"schemaVersion": 2, "layers": [', mt.OCI_MANIFEST, "not valid JSON"),
    "json-array": (b"[1, 2]", mt.OCI_MANIFEST, "must be a JSON object"),
    "unknown-media-type": (json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.evil+json"}).encode(),
                           "application/vnd.evil+json", "unsupported manifest media type"),
    "media-type-contradiction": (_image(), mt.DOCKER_SCHEMA2, "but was delivered as"),
    "md5-digest": (_image(digest="md5:" + "0" * 32), mt.OCI_MANIFEST, "unsupported digest algorithm 'md5'"),
    "sha256-of-sha512-length": (_image(digest="sha256:" + "a" * 128), mt.OCI_MANIFEST,
                                "expected 64 lowercase hex characters"),
    "sha512-of-sha256-length": (_image(digest="sha512:" + "a" * 64), mt.OCI_MANIFEST,
                                "expected 128 lowercase hex characters"),
    "negative-size": (_image(size=-1), mt.OCI_MANIFEST, "'size' must be a non-negative integer"),
    "string-size": (_image(size="2"), mt.OCI_MANIFEST, "'size' must be a non-negative integer"),
    "missing-size": (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": CONFIG,
                                 "layers": [{"mediaType": mt.OCI_LAYER, "digest": f"sha256:{HEX}"}]}).encode(),
                     mt.OCI_MANIFEST, "lacks 'size'"),
    "json-nested-100000-deep": (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", mt.OCI_MANIFEST,
                                "nested too deeply"),
    "index-too-many-entries": (_index(MAX_INDEX_ENTRIES + 1), mt.OCI_INDEX,
                               f"index lists {MAX_INDEX_ENTRIES + 1} manifests, more than the limit"),
}


def _serve(upstream: Upstream, body: bytes, content_type: str) -> Digest:
    digest = Digest.of(body)
    headers = {"Docker-Content-Digest": str(digest), "Content-Type": content_type}
    for ref in ("v1", str(digest)):
        upstream.rsps.add("HEAD", f"{BASE}/v2/{NAME}/manifests/{ref}", status=200, headers=headers)
        upstream.rsps.add("GET", f"{BASE}/v2/{NAME}/manifests/{ref}", status=200, body=body, headers=headers)
    return digest


def refused(store: Store, upstream: Upstream, match: str) -> str:
    """The sync of an existing repository fails its tag v1 with ``match`` in the reason,
    and the store is untouched: same generation, same version, no new row or file."""
    store.repository_create("app")
    before, gen = footprint(store), store.generation()
    result = run_sync(store, upstream)
    assert list(result.tags_failed) == ["v1"] and not result.changed
    assert match in result.tags_failed["v1"], result.tags_failed
    assert footprint(store) == before and store.generation() == gen
    assert store.version_get("app").number == 0
    assert upstream.sleeps == []  # a malformed manifest is not a temporary fault: never retried
    return str(result.tags_failed["v1"])


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_manifest_fails_the_sync_and_stores_nothing(store: Store, upstream: Upstream, name: str) -> None:
    body, content_type, what = HOSTILE[name]
    upstream.tags("v1")
    _serve(upstream, body, content_type)
    why = refused(store, upstream, what)
    assert f"{BASE}/v2/{NAME}/manifests/" in why  # where
    assert why.count("; ") >= 1  # and the hint: what next


def test_blob_longer_than_its_descriptor_is_cut_off_and_not_stored(store: Store, upstream: Upstream) -> None:
    """The store stops writing at the declared size: a lying upstream cannot fill the
    disk. (Other, verified blobs of the image may stay, unreferenced, until store gc.)"""
    img = build_image("app")
    layer = img.manifest.layers[0]
    upstream.tags("v1")
    upstream.blob(str(layer.digest), img.blobs[str(layer.digest)] + b"\0" * 1_000_000)
    upstream.image(img, "v1", skip_blobs=(str(layer.digest),))
    store.repository_create("app")
    why = run_sync(store, upstream).tags_failed["v1"]
    assert str(layer.digest) in why
    assert "more than the announced" in why or "mismatch" in why
    assert store.version_get("app").number == 0
    assert not store.blob_has(layer.digest) and not store.manifest_has(img.digest)
    assert not any(f.startswith("tmp/") for f in footprint(store)[2])  # no partial file left
    assert store.check().ok


def test_index_cycle_is_a_digest_mismatch(store: Store, upstream: Upstream) -> None:
    """Digests make a real cycle impossible; an upstream that answers a child's digest
    with its parent's bytes (the only way to fake one) is caught by verification."""
    child = build_image("child", oci=True)
    parent = build_index([child], oci=True)
    upstream.tags("v1")
    upstream.manifest(parent, "v1")
    upstream.rsps.add("GET", f"{BASE}/v2/{NAME}/manifests/{child.digest}", status=200, body=parent.manifest.raw,
                      headers={"Content-Type": mt.OCI_INDEX, "Docker-Content-Digest": str(child.digest)})
    why = refused(store, upstream, "digest mismatch")
    assert str(child.digest) in why and str(parent.digest) in why


@pytest.mark.parametrize("depth,ok", [(MAX_INDEX_DEPTH, True), (MAX_INDEX_DEPTH + 1, False)],
                         ids=["at-limit", "one-deeper"])
def test_index_chains_are_bounded(store: Store, upstream: Upstream, depth: int, ok: bool) -> None:
    img = build_image("leaf", oci=True)
    chain: list[Image] = [img]
    for _ in range(depth):
        chain.append(build_index([chain[-1]], oci=True))
    upstream.tags("v1")
    for i, link in enumerate(chain):
        if i == len(chain) - 1:
            upstream.manifest(link, "v1")
        else:
            upstream.manifest(link)
    for d, data in img.blobs.items():
        upstream.blob(d, data)
    if ok:
        assert run_sync(store, upstream).changed
        assert store.check().ok
    else:
        refused(store, upstream, f"indexes nested more than {MAX_INDEX_DEPTH} deep")


@pytest.mark.parametrize("depth,ok", [(MAX_INDEX_DEPTH, True), (MAX_INDEX_DEPTH + 1, False)],
                         ids=["at-limit", "one-deeper"])
def test_the_plan_bounds_index_chains_too(store: Store, upstream: Upstream, tmp_path: Path, depth: int,
                                          ok: bool) -> None:
    """The plan's refresh GETs the manifests it lacks level by level, before apply's fetch
    ever runs: it had no bound, so a hostile upstream could chain indexes for as long as
    it liked. The same bound now fails that tag in the plan (the others are planned)."""
    from reconciler import api

    chain: list[Image] = [build_image("leaf", oci=True)]
    for _ in range(depth):
        chain.append(build_index([chain[-1]], oci=True))
    upstream.tags("v1")
    for link in chain[:-1]:
        upstream.manifest(link)
    upstream.manifest(chain[-1], "v1")
    yaml_file = tmp_path / "repos.yaml"
    yaml_file.write_text(f"version: 1\nrepositories:\n  app:\n    feed: {BASE}\n    upstream_name: {NAME}\n")
    plan = api.make_plan(store, yaml_file)
    assert plan.errors == ()
    if ok:
        assert plan.failed_tags == ()
    else:
        assert [(f.repo, f.tag) for f in plan.failed_tags] == [("app", "v1")]
        assert f"indexes nested more than {MAX_INDEX_DEPTH} deep" in plan.failed_tags[0].error


@pytest.mark.parametrize("packaging", ["json-file", "skopeo-dir-tar", "oci-layout-tar"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_manifest_upload_stores_nothing(store: Store, tmp_path: Path, name: str, packaging: str) -> None:
    """The same manifests, uploaded: a manifest/index JSON file, a skopeo dir: tarball's
    manifest.json, or an OCI layout's index.json entry pointing at them."""
    from reconciler.apply.content_commands import upload_command as upload
    from reconciler.errors import InvalidInput
    from tests.support import archives as ar

    body, content_type, what = HOSTILE[name]
    if packaging == "json-file":
        path = tmp_path / "m.json"
        path.write_bytes(body)
    elif packaging == "skopeo-dir-tar":
        path = ar.write_tar(tmp_path / "m.tar", {"manifest.json": body,
                                                  "version": b"Directory Transport Version: 1.1\n"})
    else:
        digest = Digest.of(body)
        index = {"schemaVersion": 2, "manifests": [{"mediaType": content_type, "digest": str(digest),
                                                    "size": len(body)}]}
        path = ar.write_tar(tmp_path / "m.tar", {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
                                                  "index.json": json.dumps(index).encode(),
                                                  f"blobs/sha256/{digest.hex}": body})
    before, gen = footprint(store), store.generation()
    with pytest.raises(InvalidInput) as info:
        upload(store, "r", path)
    assert str(path) in info.value.message  # where
    # a contradiction needs a Content-Type, which a file lacks (refused then for its
    # missing blobs), and a JSON array as manifest.json reads as docker save's list
    if name not in ("media-type-contradiction", "json-array"):
        assert what in info.value.message, info.value.message
    assert footprint(store) == before and store.generation() == gen and store.repository_find("r") is None


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


def test_deeply_nested_json_elsewhere_is_a_clear_error(store: Store, upstream: Upstream, tmp_path: Path, run_cli: RunCli) -> None:
    """Python's JSON decoder recurses per level: a tag list, an OCI layout's index.json or
    a saved plan nested 100,000 deep is reported as invalid JSON, not a RecursionError."""
    from reconciler.apply.content_commands import upload_command as upload
    from reconciler.errors import UploadInvalid
    from tests.support import archives as ar

    upstream.rsps.add("GET", f"{BASE}/v2/{NAME}/tags/list", status=200, body=DEEP_JSON)
    store.repository_create("app")
    before, gen = footprint(store), store.generation()
    with pytest.raises(ReconcilerError, match="invalid JSON: nested too deeply") as info:
        run_sync(store, upstream)  # no tag list, no sync at all
    assert f"{BASE}/v2/{NAME}/tags/list" in info.value.message
    assert footprint(store) == before and store.generation() == gen

    layout = ar.write_tar(tmp_path / "l.tar", {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
                                                "index.json": DEEP_JSON})
    with pytest.raises(UploadInvalid, match="index.json is not valid JSON: nested too deeply"):
        upload(store, "r", layout)

    plan = tmp_path / "plan.json"
    plan.write_bytes(DEEP_JSON)
    proc = run_cli("apply", str(plan), store=tmp_path / "cli-store")
    assert proc.returncode == 1 and "not a saved plan: nested too deeply" in proc.stderr
    assert "Traceback" not in proc.stderr
