"""v1 through repos.yaml: a v1 upload with ``mask_id`` and a v1 sync (``enable_v1``) from
our own ``reconciler serve`` as the upstream v1 API. Plan shows both, apply does them,
a second plan has no changes, a tag moved upstream is planned, saved, and applied."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from tests.support.cli import RunCli
from tests.support.serving import run_server
from tests.support.v1images import build_chain, v1_save_tar

UPSTREAM = build_chain("busybox", length=5, tags={"latest": 4, "1.0": 1})


def test_v1_upload_and_v1_sync_through_plan_and_apply(run_cli: RunCli, tmp_path: Path) -> None:
    upstream_store, store = tmp_path / "upstream", tmp_path / "store"
    run_cli("upload", "busybox", str(v1_save_tar(tmp_path / "busybox.tar", UPSTREAM)), "--v1",
            store=upstream_store, check=True)
    run_cli("publish", "busybox", store=upstream_store, check=True)
    tutorial = build_chain("tutorial", length=5)
    v1_save_tar(tmp_path / "tutorial.tar", tutorial)

    with run_server(upstream_store, tmp_path / "upstream.log") as server:
        repos = tmp_path / "repos.yaml"
        repos.write_text(f"""version: 1
repositories:
  mirror:
    feed: {server.url}
    upstream_name: busybox
    enable_v1: true
    publish: mirror
  tutorial:
    uploads:
      - {{file: tutorial.tar, v1: true, mask_id: {tutorial.ids[2]}}}
""")
        text = run_cli("plan", "-f", str(repos), store=store, check=True).stdout
        assert "v1 sync busybox (2 v1 tags)" in text, text
        assert "v1 upload tutorial.tar masking" in text and "2 v1 images, 1 v1 tag" in text, text

        out = json.loads(run_cli("apply", "-f", str(repos), "--json", store=store, check=True).stdout)
        assert out["result"]["ok"], out
        assert {a["op"] for a in out["plan"]["actions"]} >= {"v1_sync", "v1_upload", "publish"}
        mirror = json.loads(run_cli("repo", "show", "mirror", "--json", store=store, check=True).stdout)
        assert sorted(mirror["v1_images"]) == sorted(UPSTREAM.ids)
        assert mirror["v1_tags"] == {"latest": UPSTREAM.leaf, "1.0": UPSTREAM.ids[1]}
        shown = json.loads(run_cli("repo", "show", "tutorial", "--json", store=store, check=True).stdout)
        assert sorted(shown["v1_images"]) == sorted(tutorial.ids[3:])

        again = run_cli("plan", "-f", str(repos), "--detailed-exitcode", store=store)
        assert again.returncode == 0, again.stdout + again.stderr

        # the tag moves upstream: the plan says so, the saved plan applies exactly that
        moved = build_chain("busybox", length=5, tags={"latest": 2})
        run_cli("upload", "busybox", str(v1_save_tar(tmp_path / "moved.tar", moved)), "--v1",
                store=upstream_store, check=True)
        run_cli("publish", "busybox", store=upstream_store, check=True)
        saved = tmp_path / "plan.json"
        proc = run_cli("plan", "-f", str(repos), "--out", str(saved), "--detailed-exitcode", store=store)
        assert proc.returncode == 2 and "tag moved upstream" in proc.stdout, proc.stdout + proc.stderr
        action = next(a for a in json.loads(saved.read_text())["actions"] if a["op"] == "v1_sync")
        assert action["v1_tags"]["latest"] == UPSTREAM.ids[2]
        run_cli("apply", str(saved), store=store, check=True)

    mirror = json.loads(run_cli("repo", "show", "mirror", "--json", store=store, check=True).stdout)
    assert mirror["v1_tags"]["latest"] == UPSTREAM.ids[2]
    assert run_cli("store", "check", store=store).returncode == 0
    # what the mirror serves is what the upstream served, byte for byte
    with run_server(store, tmp_path / "mirror.log") as server, requests.Session() as http:
        got = http.get(f"{server.url}/v1/images/{UPSTREAM.leaf}/json", timeout=10)
        assert got.content == UPSTREAM.jsons[UPSTREAM.leaf]
        assert http.get(f"{server.url}/v1/repositories/mirror/tags", timeout=10).json()["1.0"] == UPSTREAM.ids[1]
