"""Crane compatibility mode end to end: a repository synced from a real distribution
registry, exported with ``reconciler export --format crane``, its static tree served by
``http.server`` (as Apache served Pulp's), its app file by ``reconciler serve
--crane-data-dir`` (real gunicorn); skopeo pulls through the 302s and gets the store's
digests. Then the running server picks up a new app file and survives a corrupt one."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from reconciler.model import mediatypes as mt
from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import Image, build_image, build_multiarch
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry
from tests.support.serving import REPO_ROOT, Server, require_binary, run_serve_command
from tests.support.statichost import StaticHost

pytestmark = pytest.mark.integration


def cli(*args: str) -> str:
    env = {**os.environ, "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, f"reconciler {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@dataclass
class World:
    images: dict[str, Image]
    digests: dict[str, str]        # tag -> manifest digest in the store
    crane: Server                  # redirect mode, in front of ``static``
    sender: Server                 # serve-content mode (crane.conf), over the same tree
    static: StaticHost
    data_dir: Path
    static_root: Path              # what ``static`` serves; also both content dirs of ``sender``


@pytest.fixture(scope="module")
def world(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_binary("skopeo", "skopeo")
    root = tmp_path_factory.mktemp("crane")
    images = {"latest": build_image("crane-s2"), "multi": build_multiarch("crane-list"),
              "oci": build_image("crane-oci", oci=True), "ocimulti": build_multiarch("crane-idx", oci=True)}
    for tag, img in images.items():
        push_image(registry.url, "upstream/crane", img, tags=[tag])
    store_dir = root / "store"
    cli("--store", str(store_dir), "sync", "synctest", "--feed", registry.url, "--upstream-name", "upstream/crane")
    cli("--store", str(store_dir), "publish", "synctest", "--name", "pulpdemo/synctest")
    store = SQLiteStore(store_dir)
    try:
        digests = {t: str(e.digest) for t, e in store.version_get("synctest").tags.items()}
    finally:
        store.close()

    web, data_dir = root / "web", root / "app"
    web.mkdir()
    data_dir.mkdir()
    with StaticHost(web) as static:
        tar_path = root / "synctest.tar"
        cli("--store", str(store_dir), "export", "synctest", "-o", str(tar_path), "--format", "crane",
            "--url", f"{static.url}/synctest/")
        with tarfile.open(tar_path) as tar:
            tar.extractall(web / "synctest", filter="data")
        # the app file goes where Crane's data_dir points, away from the static tree
        (web / "synctest" / "synctest.json").rename(data_dir / "synctest.json")
        conf = root / "crane.conf"
        conf.write_text(f"[general]\ndata_dir: {data_dir}\ndata_dir_polling_interval: 1\n"
                        f"[serve_content]\nenable: true\ncontent_dir_v1: {web}\ncontent_dir_v2: {web}\n")
        with run_serve_command(["serve", "--crane-data-dir", str(data_dir), "--crane-poll-interval", "1"],
                               root / "crane.log", workers=1) as crane, \
             run_serve_command(["serve", "--crane-config", str(conf)], root / "sender.log", workers=1) as sender:
            yield World(images, digests, crane, sender, static, data_dir, web)


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)


def test_skopeo_copy_image_through_crane_mode_keeps_the_store_digest(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "img"
    proc = skopeo("copy", "--src-tls-verify=false", f"docker://{world.crane.host}/pulpdemo/synctest:latest",
                  f"dir:{dest}")
    assert proc.returncode == 0, proc.stderr + world.crane.log()
    manifest = (dest / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == world.digests["latest"]
    assert manifest == world.images["latest"].manifest.raw
    for digest, data in world.images["latest"].all_blobs().items():
        assert (dest / digest.split(":")[1]).read_bytes() == data
    # the bytes came from the static host, by way of redirects
    assert "/synctest/manifests/2/latest" in world.static.requests_seen


def test_skopeo_copy_all_of_a_manifest_list(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "multi"
    proc = skopeo("copy", "--all", "--src-tls-verify=false",
                  f"docker://{world.crane.host}/pulpdemo/synctest:multi", f"dir:{dest}")
    assert proc.returncode == 0, proc.stderr + world.crane.log()
    listed = (dest / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(listed).hexdigest() == world.digests["multi"]
    for child in world.images["multi"].children:
        assert (dest / f"{child.digest.hex}.manifest.json").read_bytes() == child.manifest.raw


@pytest.mark.parametrize(("accept", "expected"), [
    (f"{mt.DOCKER_MANIFEST_LIST}, {mt.DOCKER_SCHEMA2}", "list"),
    (mt.DOCKER_SCHEMA2, "amd64"),          # a list-unaware client gets the amd64 child (11.4 step 3)
], ids=["list-aware", "list-unaware"])
def test_negotiation_through_the_redirect(world: World, accept: str, expected: str) -> None:
    with requests.get(f"{world.crane.url}/v2/pulpdemo/synctest/manifests/multi",
                      headers={"Accept": accept}, timeout=10) as resp:
        assert resp.status_code == 200 and resp.history[0].status_code == 302
        body = resp.content
    multi = world.images["multi"]
    want = multi.manifest.raw if expected == "list" else multi.children[0].manifest.raw
    assert body == want


def test_unknown_name_is_cranes_404(world: World) -> None:
    with requests.get(f"{world.crane.url}/v2/nope/manifests/latest", allow_redirects=False, timeout=10) as resp:
        assert resp.status_code == 404
        assert resp.json() == {"errors": [{"code": "404", "message": "Not Found"}]}


def _wait_for(check: Callable[[], object], what: str, server: Server) -> None:
    deadline = time.monotonic() + 30
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within 30 s:\n{server.log()}")
        time.sleep(0.2)


def test_new_app_file_appears_and_a_corrupt_one_is_skipped(world: World) -> None:
    def status(name: str) -> int:
        with requests.get(f"{world.crane.url}/v2/{name}/tags/list", allow_redirects=False, timeout=10) as resp:
            return resp.status_code

    app = json.loads((world.data_dir / "synctest.json").read_text())
    app["repo-registry-id"] = "pulpdemo/copy"
    sub = world.data_dir / "more"
    sub.mkdir()
    (sub / "copy.json").write_text(json.dumps(app))
    _wait_for(lambda: status("pulpdemo/copy") == 302, "the new app file was not served", world.crane)

    (sub / "copy.json").write_text('{"version": 4, "repo-registry-id": ')   # corrupted in place
    _wait_for(lambda: status("pulpdemo/copy") == 404, "the corrupt app file was not dropped", world.crane)
    assert status("pulpdemo/synctest") == 302                               # the others keep serving
    assert f"{sub / 'copy.json'}: not valid JSON" in world.crane.log()


@pytest.mark.parametrize("tag", ["latest", "multi", "oci", "ocimulti"])
def test_serve_content_mode_with_skopeo(world: World, tmp_path: Path, tag: str) -> None:
    """Serve-content mode labels each manifest with its own media type, so the OCI
    manifests and indexes our export files under manifests/2 and manifests/list pull
    too (redirect mode cannot: the static server labels them by directory)."""
    dest = tmp_path / tag
    proc = skopeo("copy", "--all", "--src-tls-verify=false",
                  f"docker://{world.sender.host}/pulpdemo/synctest:{tag}", f"dir:{dest}")
    assert proc.returncode == 0, proc.stderr + world.sender.log()
    img = world.images[tag]
    assert (dest / "manifest.json").read_bytes() == img.manifest.raw
    assert str(img.digest) == world.digests[tag]
    for child in img.children:
        assert (dest / f"{child.digest.hex}.manifest.json").read_bytes() == child.manifest.raw
    with requests.head(f"{world.sender.url}/v2/pulpdemo/synctest/manifests/{tag}", timeout=10,
                       headers={"Accept": ", ".join(sorted(mt.MANIFEST_TYPES))}) as resp:
        assert resp.headers["Docker-Content-Digest"] == world.digests[tag]
        assert resp.headers["Content-Type"] == img.manifest.media_type



def test_v1_app_file_through_both_modes(world: World) -> None:
    """A Pulp v1 publish (app file version 1 + web/<image id>/{ancestry,json,layer}):
    the v1 endpoints answer from the app file; image files redirect to the static host
    (redirect mode) or are sent (serve-content mode)."""
    image_id = "a" * 64
    files = {"ancestry": json.dumps([image_id]).encode(), "json": b'{"id": "' + image_id.encode() + b'"}',
             "layer": b"layer bytes"}
    tree = world.static_root / "busyv1" / image_id
    tree.mkdir(parents=True)
    for name, data in files.items():
        (tree / name).write_bytes(data)
    app = {"type": "pulp-docker-redirect", "version": 1, "repository": "busyv1", "repo-registry-id": "busybox",
           "url": f"{world.static.url}/busyv1/", "protected": False, "images": [{"id": image_id}],
           "tags": {"latest": image_id}}
    (world.data_dir / "busyv1.json").write_text(json.dumps(app))

    def tags(server: Server) -> int:
        with requests.get(f"{server.url}/v1/repositories/library/busybox/tags", timeout=10) as resp:
            return resp.status_code

    for server in (world.crane, world.sender):
        def v1_served(server: Server = server) -> bool:
            return tags(server) == 200

        _wait_for(v1_served, "the v1 app file was not served", server)
        with requests.get(f"{server.url}/v1/repositories/busybox/images", timeout=10) as resp:
            assert resp.json() == [{"id": image_id}] and resp.headers["X-Docker-Endpoints"] == server.host
        with requests.get(f"{server.url}/v1/repositories/busybox/tags/latest", timeout=10) as resp:
            assert resp.json() == image_id and resp.headers["X-Docker-Registry-Version"] == "0.6.6"
        for name, data in files.items():
            with requests.get(f"{server.url}/v1/images/{image_id}/{name}", timeout=10) as resp:
                assert resp.status_code == 200 and resp.content == data
                assert bool(resp.history) == (server is world.crane)   # redirected only in redirect mode
