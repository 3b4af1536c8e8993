"""Platform subsets end to end: a real distribution registry holding a Docker manifest
list and an OCI index (with BuildKit attestation manifests), ``platforms:`` in repos.yaml
through plan and apply (the real CLI), the store's content and ``store check``, and skopeo
pulling the selected platforms from ``reconciler serve`` (and failing clearly on the
others)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from reconciler.model import Digest, Index, parse_manifest
from reconciler.model import mediatypes as mt
from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.imagegen import Image, ManifestImage, build_image, canonical
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry, require_binary
from tests.support.serving import run_server

pytestmark = pytest.mark.integration

PLATFORMS = (("amd64", None), ("arm64", "v8"), ("ppc64le", None))


def attested_index(name: str, *, oci: bool) -> tuple[Image, dict[str, ManifestImage], dict[str, ManifestImage]]:
    """An index of three platforms; the OCI one also lists a BuildKit attestation manifest
    per platform (``unknown/unknown``, ``vnd.docker.reference.digest``). Returns the index
    and the images and attestations by platform."""
    kids = {f"linux/{a}" + (f"/{v}" if v else ""): build_image(f"{name}-{a}", oci=oci, arch=a, variant=v,
                                                                 shared=(b"base",), payload=4096)
            for a, v in PLATFORMS}
    atts = {p: build_image(f"{name}-att-{p}", oci=True, arch="unknown", layers=1) for p in kids} if oci else {}
    entries = []
    for p, img in kids.items():
        os_, arch, *variant = p.split("/")
        entries.append({"mediaType": img.manifest.media_type, "size": len(img.manifest.raw),
                        "digest": str(img.digest),
                        "platform": {"architecture": arch, "os": os_, **({"variant": variant[0]} if variant else {})}})
    for p, att in atts.items():
        entries.append({"mediaType": att.manifest.media_type, "size": len(att.manifest.raw), "digest": str(att.digest),
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {"vnd.docker.reference.digest": str(kids[p].digest),
                                        "vnd.docker.reference.type": "attestation-manifest"}})
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX if oci else mt.DOCKER_MANIFEST_LIST, "manifests": entries}
    index = parse_manifest(canonical(doc))
    assert isinstance(index, Index)
    return Image(index, {}, [*kids.values(), *atts.values()]), kids, atts


def write_yaml(path: Path, registry: RunningRegistry, upstream: str, platforms: list[str] | None) -> Path:
    lines = [f"      platforms: [{', '.join(platforms)}]"] if platforms else []
    path.write_text("\n".join([
        "version: 1",
        "registries:",
        f"  up: {{url: '{registry.url}', tls_verify: false}}",
        "repositories:",
        "  multi:",
        "      feed: up",
        f"      upstream_name: {upstream}",
        "      mirror: true",
        "      publish: team/multi",
        *lines,
        "  picked:",
        "      copy:",
        "        - {from: multi, tags: [v1], platforms: [linux/arm64]}",
        "      publish: team/picked",
    ]) + "\n")
    return path


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def content(store_path: Path, repo: str) -> tuple[set[Digest], set[Digest], set[Digest]]:
    store = SQLiteStore(store_path)
    try:
        v = store.version_get(repo)
        return set(v.content.manifests), set(v.content.blobs), set(v.absent)
    finally:
        store.close()


@pytest.mark.parametrize("oci", [False, True], ids=["docker-manifest-list", "oci-index-with-attestations"])
def test_platform_subset_keeps_the_index_exact_stores_only_the_selected_platforms_and_serves_them(
        registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli, oci: bool) -> None:
    require_binary("skopeo", "skopeo")
    index, kids, atts = attested_index(repo_name.replace("/", "-"), oci=oci)
    push_image(registry.url, repo_name, index, ["v1"])
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name, ["linux/amd64", "linux/arm64/v8"])
    store = tmp_path / "store"

    plan = run_cli("plan", "-f", str(yaml), store=store)
    assert plan.returncode == 0, plan.stderr
    skipped = kids["linux/ppc64le"]
    # blob bytes, as the plan counts downloads: ppc64le's own (not the base layer all share), its attestation's
    saved = sum(len(b) for d, b in skipped.blobs.items() if d not in {
        d2 for k in ("linux/amd64", "linux/arm64/v8") for d2 in kids[k].blobs})
    if oci:
        saved += sum(len(b) for b in atts["linux/ppc64le"].blobs.values())
    line = next(x for x in plan.stdout.splitlines() if x.strip().startswith("+ tag v1"))
    assert re.search(r"platforms not mirrored: linux/ppc64le \([\d.]+ KiB not downloaded\)", line), plan.stdout
    assert f"{saved / 1024:.1f} KiB" in line, (saved, line)
    # the copy takes one platform of what the mirror holds
    assert "copy tag v1 from multi" in plan.stdout and "platforms not mirrored: linux/amd64" in plan.stdout

    applied = run_cli("apply", "-f", str(yaml), store=store)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    shown = json.loads(run_cli("repo", "show", "multi", "--json", store=store, check=True).stdout)
    assert shown["tags"]["v1"] == str(index.digest)  # the index byte for byte: the same digest
    manifests, blobs, absent = content(store, "multi")
    wanted = [kids["linux/amd64"], kids["linux/arm64/v8"],
              *([atts["linux/amd64"], atts["linux/arm64/v8"]] if oci else [])]
    assert manifests == {img.digest for img in wanted}
    assert blobs == {Digest.parse(d) for img in wanted for d in img.blobs}
    assert absent == {kids["linux/ppc64le"].digest, *([atts["linux/ppc64le"].digest] if oci else [])}
    picked_manifests, _, picked_absent = content(store, "picked")
    assert picked_manifests == {kids["linux/arm64/v8"].digest, *([atts["linux/arm64/v8"].digest] if oci else [])}
    assert kids["linux/amd64"].digest in picked_absent and kids["linux/ppc64le"].digest in picked_absent
    check = run_cli("store", "check", store=store)
    assert check.returncode == 0, check.stdout + check.stderr
    again = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert again.returncode == 0 and again.stdout.rstrip().endswith("No changes."), again.stdout + again.stderr

    with run_server(store, tmp_path / "serve.log") as srv:
        ref = f"docker://{srv.host}/team/multi:v1"
        raw = skopeo("inspect", "--tls-verify=false", "--raw", ref).stdout
        assert Digest.parse("sha256:" + hashlib.sha256(raw.encode()).hexdigest()) == index.digest
        for arch, variant, img in (("amd64", None, kids["linux/amd64"]), ("arm64", "v8", kids["linux/arm64/v8"])):
            extra = ["--override-variant", variant] if variant else []
            skopeo("--override-arch", arch, "--override-os", "linux", *extra, "copy", "--src-tls-verify=false",
                   ref, f"dir:{tmp_path / arch}")
            got = (tmp_path / arch / "manifest.json").read_bytes()
            assert got == img.manifest.raw
        refused = skopeo("--override-arch", "ppc64le", "--override-os", "linux", "copy", "--src-tls-verify=false",
                         ref, f"dir:{tmp_path / 'ppc'}", check=False)
        assert refused.returncode != 0
        assert "platform was not mirrored" in refused.stderr, refused.stderr
        # the copy holds arm64 only
        skopeo("--override-arch", "arm64", "--override-variant", "v8", "copy", "--src-tls-verify=false",
               f"docker://{srv.host}/team/picked:v1", f"dir:{tmp_path / 'picked'}")
        amd = skopeo("--override-arch", "amd64", "copy", "--src-tls-verify=false",
                     f"docker://{srv.host}/team/picked:v1", f"dir:{tmp_path / 'picked-amd'}", check=False)
        assert amd.returncode != 0 and "platform was not mirrored" in amd.stderr, amd.stderr


def test_adding_a_platform_fetches_it_for_tags_already_mirrored_and_removing_platforms_completes_the_index(
        registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    index, kids, _ = attested_index(repo_name.replace("/", "-"), oci=True)
    push_image(registry.url, repo_name, index, ["v1"])
    store = tmp_path / "store"
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name, ["linux/amd64"])
    run_cli("apply", "-f", str(yaml), store=store, check=True)
    assert content(store, "multi")[0] >= {kids["linux/amd64"].digest}
    assert kids["linux/arm64/v8"].digest not in content(store, "multi")[0]

    write_yaml(yaml, registry, repo_name, ["linux/amd64", "linux/arm64"])
    saved = tmp_path / "plan.json"
    plan = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", "--out", str(saved), store=store)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert re.search(r"~ tag v1   \S+   platforms added; \d+ blobs?, [\d.]+ KiB to download; "
                     r"platforms not mirrored: linux/ppc64le", plan.stdout), plan.stdout
    run_cli("apply", str(saved), store=store, check=True)  # the reviewed plan, exactly
    assert kids["linux/arm64/v8"].digest in content(store, "multi")[0]

    write_yaml(yaml, registry, repo_name, None)  # every platform again
    run_cli("apply", "-f", str(yaml), store=store, check=True)
    manifests, _, absent = content(store, "multi")
    assert {k.digest for k in kids.values()} <= manifests and absent == set()
    assert run_cli("store", "check", store=store).returncode == 0
    assert run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store).returncode == 0


def test_a_single_platform_image_of_another_platform_is_refused_with_a_plan_line(
        registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    index, kids, _ = attested_index(repo_name.replace("/", "-"), oci=False)
    push_image(registry.url, repo_name, index, ["v1"])
    push_image(registry.url, repo_name, build_image(f"{repo_name}-s390x", arch="s390x"), ["s390x-only"])
    push_image(registry.url, repo_name, build_image(f"{repo_name}-amd", arch="amd64"), ["amd64-only"])
    store = tmp_path / "store"
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name, ["linux/amd64"])
    plan = run_cli("plan", "-f", str(yaml), store=store)
    assert plan.returncode == 0, plan.stderr
    assert ("tag s390x-only not synced: a single-platform image for linux/s390x, not one of the platforms "
            "linux/amd64") in plan.stdout
    run_cli("apply", "-f", str(yaml), store=store, check=True)
    tags = json.loads(run_cli("repo", "show", "multi", "--json", store=store, check=True).stdout)["tags"]
    assert sorted(tags) == ["amd64-only", "v1"]
    assert run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store).returncode == 0


def test_one_off_sync_with_platform_flags(registry: RunningRegistry, repo_name: str, tmp_path: Path,
                                          run_cli: RunCli) -> None:
    index, kids, atts = attested_index(repo_name.replace("/", "-"), oci=True)
    push_image(registry.url, repo_name, index, ["v1"])
    store = tmp_path / "store"
    out = run_cli("sync", "m", "--feed", registry.url, "--upstream-name", repo_name, "--platform", "linux/arm64/v8",
                  "--json", store=store, check=True)
    result = json.loads(out.stdout)
    assert result["children_skipped"] == 4  # amd64 and ppc64le, and their attestations
    manifests, _, absent = content(store, "m")
    assert manifests == {kids["linux/arm64/v8"].digest, atts["linux/arm64/v8"].digest}
    assert len(absent) == 4
    assert run_cli("store", "check", store=store).returncode == 0
    bad = run_cli("sync", "m", "--platform", "linux", store=store)
    assert bad.returncode == 1
    assert "invalid platform 'linux'" in bad.stderr and "hint:" in bad.stderr


def test_a_bundle_of_a_platform_subset_feeds_the_far_side_with_the_same_subset_and_a_semver_filter(
        registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    index, kids, atts = attested_index(repo_name.replace("/", "-"), oci=True)
    push_image(registry.url, repo_name, index, ["v1", "2.0.0"])
    push_image(registry.url, repo_name, build_image(f"{repo_name}-old", arch="amd64"), ["0.9.0"])
    near = tmp_path / "near"
    run_cli("apply", "-f", str(write_yaml(tmp_path / "near.yaml", registry, repo_name, ["linux/amd64"])),
            store=near, check=True)
    bundle = tmp_path / "transfer.bundle"
    run_cli("export", "--all", "-o", str(bundle), store=near, check=True)

    far = tmp_path / "far"
    far_yaml = tmp_path / "far.yaml"
    far_yaml.write_text("version: 1\nrepositories:\n  multi:\n    feed: bundle:transfer.bundle\n"
                        "    upstream_name: multi\n    tags: {semver: '>=1'}\n    platforms: [linux/amd64]\n")
    plan = run_cli("plan", "-f", str(far_yaml), store=far, check=True)
    assert "3 upstream tags, 2 selected: semver >=1" in plan.stdout, plan.stdout
    run_cli("apply", "-f", str(far_yaml), store=far, check=True)
    shown = json.loads(run_cli("repo", "show", "multi", "--json", store=far, check=True).stdout)
    assert shown["tags"] == {"2.0.0": str(index.digest), "v1": str(index.digest)}
    assert content(far, "multi")[0] == {kids["linux/amd64"].digest, atts["linux/amd64"].digest}
    assert run_cli("store", "check", store=far).returncode == 0

    # a far side that asks for a platform the near side did not mirror: that tag fails, saying which manifest
    far_yaml.write_text(far_yaml.read_text().replace("[linux/amd64]", "[linux/amd64, linux/arm64]"))
    failed = run_cli("apply", "-f", str(far_yaml), store=far)
    assert failed.returncode == 1
    assert (str(kids["linux/arm64/v8"].digest) in failed.stderr or str(atts["linux/arm64/v8"].digest)
            in failed.stderr), failed.stderr
    assert run_cli("store", "check", store=far).returncode == 0
