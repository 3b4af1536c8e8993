"""Uploads of files made by the real skopeo from a real distribution registry (the
recipe's `skopeo copy --format v2s2|v2s1 docker://... dir:` then `tar -cf x.tar *`, and
`oci-archive:`), and the done-when flow through the CLI: upload, tag, copy to a second
repository, remove there; the first repository stays intact and `store check` is clean."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

import pytest

from reconciler.model import Manifest
from reconciler.store.protocol import Store
from reconciler.store.sqlite import SQLiteStore
from tests.support import imagegen as ig
from tests.support.cli import RunCli
from tests.support.narrow import narrow
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry, require_binary

BUSYBOX = "lib/busybox"
MULTI = "lib/multi"


class Upstream(TypedDict):
    """The images pushed to the session registry, by repository."""

    busybox: ig.ManifestImage
    multi: ig.IndexImage


@pytest.fixture(scope="module")
def upstream(registry: RunningRegistry) -> Iterator[Upstream]:
    images: Upstream = {"busybox": ig.build_image("busybox"), "multi": ig.build_multiarch("multi")}
    push_image(registry.url, BUSYBOX, images["busybox"], ["latest"])
    push_image(registry.url, MULTI, images["multi"], ["1.0"])
    yield images


def skopeo(*args: str) -> None:
    binary = require_binary("skopeo", "skopeo")
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"skopeo {' '.join(args)} failed: {proc.stderr}"


def skopeo_dir_tarball(registry: RunningRegistry, name: str, fmt: str, tmp_path: Path) -> Path:
    """The recipe: skopeo copy --format FMT docker://... dir:D; cd D && tar -cf ../x.tar *"""
    d = tmp_path / f"dir-{fmt}"
    skopeo("copy", "--src-tls-verify=false", "--format", fmt, f"docker://{registry.host}/{name}", f"dir:{d}")
    out = tmp_path / f"{fmt}.tar"
    tar = require_binary("tar", "tar")
    subprocess.run([tar, "-cf", str(out), *sorted(p.name for p in d.iterdir())], cwd=d, check=True)
    return out


@pytest.mark.parametrize("fmt,media_type", [
    ("v2s2", "application/vnd.docker.distribution.manifest.v2+json"),
    ("v2s1", "application/vnd.docker.distribution.manifest.v1+json"),
])
def test_upload_real_skopeo_dir_tarball(registry: RunningRegistry, upstream: Upstream, store: Store, tmp_path: Path, run_cli: RunCli,
                                        fmt: str, media_type: str) -> None:
    path = skopeo_dir_tarball(registry, f"{BUSYBOX}:latest", fmt, tmp_path)
    store.close()
    proc = run_cli("upload", "schema", str(path), "--tag", "latest", "--json", store=tmp_path / "store", check=True)
    result = json.loads(proc.stdout)
    assert result["details"]["format"] == "skopeo-dir"
    assert result["added"]["manifests"] == 1 and result["added"]["tags"] == 1
    s = SQLiteStore(tmp_path / "store")
    try:
        v = s.version_get("schema")
        m = narrow(Manifest, s.manifest_get(v.tags["latest"].digest))
        assert m.media_type.startswith(media_type.rsplit("+", 1)[0])
        layers = {str(d.digest) for d in m.layers}
        assert layers == {str(d.digest) for d in upstream["busybox"].manifest.layers}
        if fmt == "v2s2":
            assert m.digest == upstream["busybox"].digest  # stored byte for byte
        assert s.check().ok
    finally:
        s.close()


def test_upload_real_oci_archive_of_an_index(registry: RunningRegistry, upstream: Upstream, store: Store, tmp_path: Path) -> None:
    from reconciler.apply.content_commands import upload_command as upload

    archive = tmp_path / "multi.tar"
    skopeo("copy", "--src-tls-verify=false", "--all", f"docker://{registry.host}/{MULTI}:1.0",
           f"oci-archive:{archive}:example.org/multi:1.0")
    result = upload(store, "multi", archive)
    v = store.version_get("multi")
    assert result.details["format"] == "oci-layout"
    assert set(v.tags) == {"1.0"} and len(v.content.indexes) == 1 and len(v.content.manifests) == 3
    assert store.check().ok
    # the same content as an OCI layout directory
    layout = tmp_path / "layout"
    skopeo("copy", "--src-tls-verify=false", "--all", f"docker://{registry.host}/{MULTI}:1.0", f"oci:{layout}:1.0")
    assert not upload(store, "multi", layout).changed  # nothing new: same digests, same tag


def test_done_when_flow_through_the_cli(registry: RunningRegistry, upstream: Upstream, tmp_path: Path, run_cli: RunCli) -> None:
    """An image uploaded from a skopeo v2s2 tarball, tagged, copied to a second repository
    and removed there leaves the first repository intact and `store check` clean."""
    path = skopeo_dir_tarball(registry, f"{BUSYBOX}:latest", "v2s2", tmp_path)
    st = tmp_path / "store"
    digest = str(upstream["busybox"].digest)
    out = run_cli("upload", "schema2", str(path), store=st, check=True).stdout
    assert "schema2: version 1" in out and "1 manifest, 3 blobs" in out
    run_cli("tag", "schema2", "latest", digest, store=st, check=True)
    before = json.loads(run_cli("repo", "show", "schema2", "--json", store=st, check=True).stdout)
    copied = json.loads(run_cli("copy", "tag", "--from", "schema2", "--to", "other", "latest", "--json",
                                store=st, check=True).stdout)
    assert copied["added"] == {"blobs": 3, "manifests": 1, "indexes": 0, "tags": 1}
    removed = json.loads(run_cli("remove", "manifest", "other", digest, "--json", store=st, check=True).stdout)
    assert removed["removed"] == {"blobs": 3, "manifests": 1, "indexes": 0, "tags": 1}
    after = json.loads(run_cli("repo", "show", "schema2", "--json", store=st, check=True).stdout)
    assert after == before
    other = json.loads(run_cli("repo", "show", "other", "--json", store=st, check=True).stdout)
    assert other["counts"] == {"blobs": 0, "manifests": 0, "indexes": 0, "tags": 0}
    check = run_cli("store", "check", store=st)
    assert check.returncode == 0, check.stdout + check.stderr
    # errors: exit 1 with a message and a hint, and no new version
    bad = run_cli("tag", "schema2", "x", "sha256:" + "0" * 64, store=st)
    assert bad.returncode == 1 and "error:" in bad.stderr and "hint:" in bad.stderr
    history = json.loads(run_cli("repo", "history", "schema2", "--json", store=st, check=True).stdout)
    assert [h["number"] for h in history] == [0, 1, 2]
