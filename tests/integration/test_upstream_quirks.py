"""Real registries' quirks (``tests/support/quirkproxy.py``) in front of the real
distribution registry, through the real CLI: a HEAD that says 404/405/403/501 where a GET
works, a HEAD without ``Docker-Content-Digest``, content real images have (Docker manifest
lists of OCI manifests, index entries of unknown media types), one bad tag among good
ones, a pull-rate limit that resets in six hours, tag lists that are ``null`` or ``[]``,
and registries that refuse our tag-list page size.

Each test asserts what the user sees (tags, exit code, messages) and, for a refresh that
changes nothing, how many requests it took: the cost of the quirk, run after run.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.model import mediatypes as mt
from reconciler.model import parse_manifest
from tests.integration.test_upstream_faults import assert_store_clean, tags_of, write_yaml
from tests.support.cli import RunCli
from tests.support.imagegen import Image, ManifestImage, build_image, build_index, canonical
from tests.support.pusher import _Pusher, push_image
from tests.support.quirkproxy import QuirkProxy
from tests.support.registry import RunningRegistry
from tests.support.serving import require_binary, run_server


def kinds(requests_sent: list[str]) -> Counter[str]:
    """``{"GET /v2/": 1, "GET tags": 1, "HEAD manifest": 1, "GET manifest": 5, ...}``."""
    out: Counter[str] = Counter()
    for r in requests_sent:
        method, path = r.split(" ", 1)
        what = ("/v2/" if path == "/v2/" else "tags" if "/tags/list" in path else
                "manifest" if "/manifests/" in path else "blob" if "/blobs/" in path else
                "referrers" if "/referrers/" in path else path)
        out[f"{method} {what}"] += 1
    return out


def push_tags(registry: RunningRegistry, name: str, stem: str, tags: list[str]) -> dict[str, ManifestImage]:
    images = {t: build_image(f"{stem}-{t}") for t in tags}
    for t, img in images.items():
        push_image(registry.url, name, img, [t])
    return images


def sync(run_cli: RunCli, proxy: QuirkProxy, name: str, store: Path, *extra: str,
         repo: str = "app") -> subprocess.CompletedProcess[str]:
    return run_cli("sync", repo, "--feed", proxy.url, "--upstream-name", name, "--no-tls-verify", "--timeout", "5",
                   "--retries", "1", "--json", *extra, store=store)


# -- HEAD cannot be trusted ------------------------------------------------------------------

def test_head_404_is_no_deletion_and_a_mirror_keeps_every_live_tag(
        quirks: QuirkProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    """Nexus answers a manifest HEAD with 404 while GET works. Before, a mirror then took
    every known tag for deleted and removed it (``latest v1 v2 v3`` became ``v9``)."""
    images = push_tags(registry, repo_name, "nexus", ["latest", "v1", "v2", "v3"])
    yaml = write_yaml(tmp_path / "repos.yaml", quirks, {"mirror": repo_name}, mirror=("mirror",))
    store = tmp_path / "store"
    run_cli("apply", "-f", str(yaml), store=store, check=True)

    quirks.emulate("head-404")
    images["v1"] = push_tags(registry, repo_name, "nexus-moved", ["v1"])["v1"]  # a tag moves ...
    images.update(push_tags(registry, repo_name, "nexus", ["v9"]))  # ... and a new one appears
    applied = run_cli("apply", "-f", str(yaml), store=store)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert tags_of(store, "mirror") == {t: str(img.digest) for t, img in images.items()}  # nothing removed

    quirks.forget()
    plan = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert plan.returncode == 0 and "No changes." in plan.stdout, plan.stdout + plan.stderr
    # one HEAD shows HEAD is wrong here; the GET that confirms it and one GET per other tag;
    # one referrers probe (404: no referrers API, so no more lookups)
    assert kinds(quirks.requests()) == {"GET /v2/": 1, "GET tags": 1, "HEAD manifest": 1, "GET manifest": 5,
                                        "GET referrers": 1}

    synced = sync(run_cli, quirks, repo_name, store, "--mirror", repo="mirror")
    assert synced.returncode == 0, synced.stderr
    result = json.loads(synced.stdout)
    assert result["tags_dropped"] == [] and result["tags_removed"] == [] and not result["changed"]


@pytest.mark.parametrize("quirk", ["head-405", "head-403", "head-501"])
def test_a_head_the_registry_refuses_falls_back_to_get(
        quirk: str, quirks: QuirkProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    """Old distribution behind token auth answers HEAD with 405: before, every sync after
    the first (the first GETs its new tags) failed with ``HTTP 405``."""
    images = push_tags(registry, repo_name, quirk, ["a", "b", "c", "d", "e"])
    store = tmp_path / "store"
    quirks.emulate(quirk)
    first = sync(run_cli, quirks, repo_name, store)
    assert first.returncode == 0, first.stderr

    quirks.forget()
    again = sync(run_cli, quirks, repo_name, store)
    assert again.returncode == 0, again.stderr
    assert not json.loads(again.stdout)["changed"]
    assert kinds(quirks.requests()) == {"GET /v2/": 1, "GET tags": 1, "HEAD manifest": 1, "GET manifest": 5}

    images["c"] = push_tags(registry, repo_name, f"{quirk}-moved", ["c"])["c"]
    moved = sync(run_cli, quirks, repo_name, store)
    assert moved.returncode == 0 and json.loads(moved.stdout)["tags_moved"] == ["c"], moved.stderr
    assert tags_of(store, "app") == {t: str(img.digest) for t, img in images.items()}


def test_a_403_to_an_anonymous_client_does_not_blame_credentials(
        quirks: QuirkProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    push_tags(registry, repo_name, "denied", ["a"])
    quirks.add(r"^(GET|HEAD) /v2/.+/manifests/", "status", times=None, status=403, code="DENIED")
    failed = sync(run_cli, quirks, repo_name, tmp_path / "store")
    assert failed.returncode == 1
    assert "refused anonymous access" in failed.stderr and "are valid" not in failed.stderr, failed.stderr


def test_a_head_without_the_digest_header_costs_one_head_not_one_per_tag(
        quirks: QuirkProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    """``Docker-Content-Digest`` is optional. Before, every tag cost a HEAD and a GET on
    every sync (12 requests for 5 tags instead of 7); now the registry is asked by GET
    from the second tag on (8)."""
    push_tags(registry, repo_name, "nodigest", ["a", "b", "c", "d", "e"])
    store = tmp_path / "store"
    quirks.emulate("no-digest-header")
    assert sync(run_cli, quirks, repo_name, store).returncode == 0
    quirks.forget()
    again = sync(run_cli, quirks, repo_name, store)
    assert again.returncode == 0 and not json.loads(again.stdout)["changed"], again.stderr
    assert kinds(quirks.requests()) == {"GET /v2/": 1, "GET tags": 1, "HEAD manifest": 1, "GET manifest": 5}


# -- content real images have ------------------------------------------------------------------

def docker_list_of_oci_manifests(stem: str) -> Image:
    """A Docker manifest list whose children are OCI image manifests (older `buildx
    imagetools create` made these; Docker Hub serves them)."""
    kids: list[Image] = [build_image(f"{stem}-amd64", oci=True), build_image(f"{stem}-arm64", oci=True, arch="arm64")]
    oci = build_index(kids, oci=True)
    doc = json.loads(oci.manifest.raw)
    doc["mediaType"] = mt.DOCKER_MANIFEST_LIST
    return Image(parse_manifest(canonical(doc)), {}, kids)


def index_with_an_unknown_entry(stem: str, registry: RunningRegistry, name: str) -> tuple[Image, bytes]:
    """An OCI index with one image and one entry of a media type no one here knows (it
    points at a blob the registry holds). Returns the index and the unknown entry's bytes."""
    image = build_image(f"{stem}-img", oci=True)
    extra = b'{"spdxVersion": "SPDX-2.3", "name": "an sbom"}'
    idx = build_index([image], oci=True)
    doc = json.loads(idx.manifest.raw)
    doc["manifests"].append({"mediaType": "application/vnd.example.sbom.v1+json", "size": len(extra),
                             "digest": "sha256:" + hashlib.sha256(extra).hexdigest()})
    pusher = _Pusher(registry.url, name)
    try:
        pusher.push_blob(doc["manifests"][-1]["digest"], extra)
    finally:
        pusher.session.close()
    return Image(parse_manifest(canonical(doc)), {}, [image]), extra


def test_real_index_shapes_are_stored_and_served_byte_for_byte(
        quirks: QuirkProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    """Before, a Docker list of OCI manifests was refused ("invalid mediaType ... in a
    Docker manifest list") and so was an index with an entry of an unknown media type;
    the plan then refused every repository."""
    skopeo = require_binary("skopeo", "skopeo")
    mixed = docker_list_of_oci_manifests("mixed")
    unknown, _ = index_with_an_unknown_entry("unknown", registry, repo_name)
    push_image(registry.url, repo_name, mixed, ["mixed"])
    push_image(registry.url, repo_name, unknown, ["sbom"])
    yaml = tmp_path / "repos.yaml"
    yaml.write_text(f"""version: 1
registries:
  up: {{url: "{quirks.url}", tls_verify: false}}
repositories:
  app: {{feed: up, upstream_name: {repo_name}, publish: lib/app}}
""")
    store = tmp_path / "store"
    plan = run_cli("plan", "-f", str(yaml), store=store)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"tag sbom: index {unknown.digest} lists 1 entry of a media type that is not a manifest " \
           "(application/vnd.example.sbom.v1+json): kept in the index as it came, not fetched" in plan.stdout
    applied = run_cli("apply", "-f", str(yaml), store=store)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert tags_of(store, "app") == {"mixed": str(mixed.digest), "sbom": str(unknown.digest)}
    assert_store_clean(store)

    quirks.forget()
    assert run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store).returncode == 0
    assert kinds(quirks.requests()) == {"GET /v2/": 1, "GET tags": 1, "HEAD manifest": 2, "GET referrers": 1}

    with run_server(store, tmp_path / "serve.log", workers=1) as server:
        for tag, img in (("mixed", mixed), ("sbom", unknown)):
            got = requests.get(f"{server.url}/v2/lib/app/manifests/{tag}", headers={"Accept": mt.ACCEPT_ALL},
                               timeout=10)
            assert got.status_code == 200 and got.content == img.manifest.raw  # as it came
            assert got.headers["Content-Type"] == img.manifest.media_type
        # a real client takes the whole list, every platform, as it came (dir: keeps formats)
        out = tmp_path / "copy"
        copied = subprocess.run(
            [skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
             f"docker://{server.host}/lib/app:mixed", f"dir:{out}"], capture_output=True, text=True, timeout=120)
        assert copied.returncode == 0, copied.stderr
        assert (out / "manifest.json").read_bytes() == mixed.manifest.raw
        for child in mixed.children:
            assert (out / f"{child.digest.hex}.manifest.json").read_bytes() == child.manifest.raw


# -- one bad tag --------------------------------------------------------------------------------

def _without_layer_size(img: Image, registry: RunningRegistry, name: str) -> dict[str, object]:
    """``img``'s manifest without its first layer's ``size`` (its blobs pushed)."""
    pusher = _Pusher(registry.url, name)
    try:
        for digest, data in img.blobs.items():
            pusher.push_blob(digest, data)
    finally:
        pusher.session.close()
    doc: dict[str, Any] = json.loads(img.manifest.raw)
    del doc["layers"][0]["size"]
    return doc


def push_broken(registry: RunningRegistry, name: str, tag: str, stem: str) -> None:
    """A schema2 manifest whose layer has no ``size``: the registry stores it, we cannot."""
    raw = canonical(_without_layer_size(build_image(stem), registry, name))
    pusher = _Pusher(registry.url, name)
    try:
        pusher.push_manifest(tag, mt.DOCKER_SCHEMA2, raw)
    finally:
        pusher.session.close()


def test_one_bad_tag_fails_that_tag_not_the_repository_or_the_apply(
        quirks: QuirkProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    app, other = f"{repo_name}-app", f"{repo_name}-other"
    good = push_tags(registry, app, "good", ["good", "bad", "kid"])
    other_images = push_tags(registry, other, "other", ["v1"])
    yaml = write_yaml(tmp_path / "repos.yaml", quirks, {"app": app, "other": other}, mirror=("app", "other"))
    store = tmp_path / "store"
    run_cli("apply", "-f", str(yaml), store=store, check=True)

    push_broken(registry, app, "bad", "broken")  # a known tag moves to a manifest we cannot store
    push_broken(registry, app, "new-bad", "broken-new")  # a new tag that is broken
    push_list_of_broken(registry, app, "kid", "broken-child")  # a known tag moves to a list of one
    added = push_tags(registry, app, "good2", ["fresh"])
    moved = push_tags(registry, other, "other2", ["v1"])

    plan = run_cli("plan", "-f", str(yaml), store=store)
    assert plan.returncode == 1, plan.stdout + plan.stderr
    for tag in ("bad", "kid", "new-bad"):
        assert f"! tag {tag}   FAILED: " in plan.stdout, plan.stdout
        assert f"error: app: tag {tag}: " in plan.stderr
    assert "lacks 'size'" in plan.stdout and "3 tags failed." in plan.stdout

    applied = run_cli("apply", "-f", str(yaml), store=store)
    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert "failed: app/sync_tag/bad: " in applied.stderr
    assert tags_of(store, "app") == {"good": str(good["good"].digest), "bad": str(good["bad"].digest),
                                     "kid": str(good["kid"].digest), "fresh": str(added["fresh"].digest)}
    assert tags_of(store, "other") == {"v1": str(moved["v1"].digest)}
    assert other_images["v1"].digest != moved["v1"].digest
    history = json.loads(run_cli("history", "--json", store=store, check=True).stdout)
    assert history[0]["result"] == "partial"
    assert_store_clean(store)

    quirks.forget()  # what the failed tags cost a plan that changes nothing else
    again = run_cli("plan", "-f", str(yaml), store=store)
    assert again.returncode == 1 and "Plan: 0 to add, 0 to change, 0 to remove. 3 tags failed." in again.stdout
    # 5 HEADs (good, bad, kid, fresh; other's v1), the new tag GOT, the moved ones' manifests GOT by
    # digest; one referrers probe for the registry (404: no referrers API, so the other
    # repository does not ask)
    assert kinds(quirks.requests()) == {"GET /v2/": 1, "GET tags": 2, "HEAD manifest": 5, "GET manifest": 4,
                                        "GET referrers": 1}


def push_list_of_broken(registry: RunningRegistry, name: str, tag: str, stem: str) -> None:
    """A manifest list (the registry stores it) whose one child we cannot store."""
    raw = canonical(_without_layer_size(build_image(stem), registry, name))
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    entries = [{"mediaType": mt.DOCKER_SCHEMA2, "size": len(raw), "digest": digest,
                "platform": {"os": "linux", "architecture": "amd64"}}]
    pusher = _Pusher(registry.url, name)
    try:
        pusher.push_manifest(digest, mt.DOCKER_SCHEMA2, raw)
        pusher.push_manifest(tag, mt.DOCKER_MANIFEST_LIST,
                             canonical({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": entries}))
    finally:
        pusher.session.close()


# -- rate limits, empty lists, page sizes ---------------------------------------------------------

def test_a_rate_limit_that_resets_in_hours_fails_at_once(
        quirks: QuirkProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    """Docker Hub's pull limit answers 429 with ``Retry-After: 21600``. Before, each
    request waited 4 x 120 s and failed anyway."""
    push_tags(registry, repo_name, "limited", ["a", "b", "c"])
    quirks.emulate("pull-rate-limit")
    started = time.monotonic()
    failed = sync(run_cli, quirks, repo_name, tmp_path / "store", "--jobs", "1")
    assert failed.returncode == 1
    assert time.monotonic() - started < 60
    assert "rate limited until " in failed.stderr and " UTC" in failed.stderr, failed.stderr
    assert "hint: the limit resets at " in failed.stderr
    # the first answer settles it: no retry, and no other tag is asked for (one at a time)
    assert kinds(quirks.requests()) == {"GET /v2/": 1, "GET tags": 1, "GET manifest": 1}


@pytest.mark.parametrize("quirk", ["tags-null", "tags-empty"])
def test_an_empty_tag_list_warns_and_creates_nothing_unless_allowed(
        quirk: str, quirks: QuirkProxy, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    """A wrong upstream name on a registry that answers 200 with no tags looks exactly
    like an empty repository: say so, and do not make an empty repository of it."""
    quirks.emulate(quirk)
    store = tmp_path / "store"
    synced = sync(run_cli, quirks, repo_name, store)
    assert synced.returncode == 0, synced.stderr
    assert f"upstream {repo_name} lists no tags" in synced.stderr
    assert "repository app was not created" in synced.stderr
    assert json.loads(run_cli("repo", "list", "--json", store=store, check=True).stdout) == []
    allowed = sync(run_cli, quirks, repo_name, store, "--allow-empty")
    assert allowed.returncode == 0, allowed.stderr
    assert [r["id"] for r in json.loads(run_cli("repo", "list", "--json", store=store, check=True).stdout)] == ["app"]
    quirks.forget()
    assert sync(run_cli, quirks, repo_name, store).returncode == 0  # no change: the list, nothing else
    assert kinds(quirks.requests()) == {"GET /v2/": 1, "GET tags": 1}

    yaml = write_yaml(tmp_path / "repos.yaml", quirks, {"web": repo_name})
    plan = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"web: upstream {repo_name} lists no tags, so the repository is not created" in plan.stdout
    assert "No changes." in plan.stdout
    yaml = write_yaml(tmp_path / "repos.yaml", quirks, {"web": repo_name}, extra=", allow_empty: true")
    plan = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert plan.returncode == 2 and "+ web" in plan.stdout, plan.stdout + plan.stderr


@pytest.mark.parametrize("quirk,pages", [("page-size-100", ["n=1000", "n=100"]),
                                         ("no-page-size", ["n=1000", "n=100", ""])])
def test_a_refused_page_size_is_retried_smaller_then_without(
        quirk: str, pages: list[str], quirks: QuirkProxy, registry: RunningRegistry, repo_name: str,
        tmp_path: Path, run_cli: RunCli) -> None:
    images = push_tags(registry, repo_name, quirk, ["a", "b"])
    quirks.emulate(quirk)
    synced = sync(run_cli, quirks, repo_name, tmp_path / "store")
    assert synced.returncode == 0, synced.stderr
    assert tags_of(tmp_path / "store", "app") == {t: str(i.digest) for t, i in images.items()}
    asked = [r.partition("?")[2] for r in quirks.requests() if "/tags/list" in r]
    assert asked == pages
    quirks.forget()  # a run that changes nothing learns the page size again, then HEADs
    assert sync(run_cli, quirks, repo_name, tmp_path / "store").returncode == 0
    assert kinds(quirks.requests()) == {"GET /v2/": 1, "GET tags": len(pages), "HEAD manifest": 2}
