"""The seed recipes for v1 content, replayed through the CLI with tarballs the suite
builds: "Upload v1 Images" (docker save -> upload), the ``--mask-id`` example (five
images, two imported), "v1 Export", then the v1 API of ``reconciler serve`` over HTTP."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import requests

from tests.support.archives import member_bytes
from tests.support.cli import RunCli
from tests.support.serving import run_server
from tests.support.v1images import build_chain, v1_save_tar


def test_v1_recipes_upload_mask_export_serve(run_cli: RunCli, tmp_path: Path) -> None:
    store = tmp_path / "store"
    busybox = build_chain("busybox", length=4)
    tutorial = build_chain("tutorial", length=5)
    busybox_tar = v1_save_tar(tmp_path / "busybox.tar", busybox, modern=True)
    tutorial_tar = v1_save_tar(tmp_path / "tutorial.tar", tutorial)

    # Upload v1 Images: "Docker Image: 4"
    out = run_cli("upload", "busybox", str(busybox_tar), "--v1", store=store, check=True).stdout
    assert "4 v1 images" in out and "1 v1 tag" in out
    shown = json.loads(run_cli("repo", "show", "busybox", "--json", store=store, check=True).stdout)
    assert len(shown["v1_images"]) == 4 and shown["v1_tags"] == {"latest": busybox.leaf}

    # --mask-id: "There are now only two Images imported ... instead of five"
    proc = run_cli("upload", "tutorial", str(tutorial_tar), "--v1", "--mask-id", tutorial.ids[2], "--json",
                   store=store, check=True)
    result = json.loads(proc.stdout)
    assert result["added"]["v1_images"] == 2
    assert sorted(result["details"]["images"]) == sorted(tutorial.ids[3:])
    bad = run_cli("upload", "tutorial", str(tutorial_tar), "--mask-id", tutorial.ids[2], store=store)
    assert bad.returncode != 0 and "--mask-id needs --v1" in bad.stderr

    # v1 Export: the v1 app file and web/<image_id>/{ancestry,json,layer}
    export = tmp_path / "busybox-export.tar"
    out = run_cli("export", "busybox", "--format", "crane-v1", "-o", str(export), store=store, check=True).stdout
    assert "4 v1 images" in out
    with tarfile.open(export) as tf:
        names = set(tf.getnames())
        app = json.loads(member_bytes(tf, "busybox.json"))
    assert app["version"] == 1 and app["tags"] == {"latest": busybox.leaf}
    assert {f"web/{i}/{f}" for i in busybox.ids for f in ("ancestry", "json", "layer")} <= names

    # copy brings ancestors; remove does not cascade; store check covers it all
    run_cli("copy", "v1-image", "--from", "busybox", "--to", "copied", busybox.ids[1], store=store, check=True)
    copied = json.loads(run_cli("repo", "show", "copied", "--json", store=store, check=True).stdout)
    assert sorted(copied["v1_images"]) == sorted(busybox.ids[:2])
    refused = run_cli("remove", "v1-image", "copied", busybox.ids[0], store=store)
    assert refused.returncode != 0 and busybox.ids[1] in refused.stderr
    run_cli("remove", "v1-image", "copied", busybox.ids[1], store=store, check=True)
    assert run_cli("store", "check", store=store).returncode == 0

    # serve: the v1 API a v1 client (or another reconciler's v1 sync) pulls from
    run_cli("publish", "busybox", store=store, check=True)
    with run_server(store, tmp_path / "serve.log") as server, requests.Session() as http:
        ping = http.get(server.url + "/v1/_ping", timeout=10)
        assert ping.json() is True and ping.headers["X-Docker-Registry-Standalone"] == "True"
        tags = http.get(server.url + "/v1/repositories/library/busybox/tags", timeout=10).json()
        assert tags == {"latest": busybox.leaf}
        ancestry = http.get(f"{server.url}/v1/images/{busybox.leaf}/ancestry", timeout=10).json()
        assert ancestry == busybox.ancestry(busybox.leaf)
        layer = http.get(f"{server.url}/v1/images/{busybox.leaf}/layer", timeout=10)
        assert layer.status_code == 200 and layer.content[:2] == b"\x1f\x8b"
        # the imperative v1 sync (repos.yaml: enable_v1) from it into another store
        other = tmp_path / "other"
        out = run_cli("sync", "copy", "--v1", "--feed", server.url, "--upstream-name", "library/busybox",
                      store=other, check=True).stdout
        assert "4 v1 images" in out and "1 v1 tag" in out
        again = run_cli("sync", "copy", "--v1", store=other, check=True).stdout  # stored feed and name
        assert "no changes" in again
    synced = json.loads(run_cli("repo", "show", "copy", "--json", store=other, check=True).stdout)
    assert synced["v1_tags"] == {"latest": busybox.leaf} and synced["feed"] == server.url
